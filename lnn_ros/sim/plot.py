"""A one-page picture of an episode (matplotlib is imported only when plotting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lnn_ros.sim.episode import EpisodeResult

COMMAND_LABELS = ("vx (m/s)", "vy (m/s)", "vz (m/s)", "yaw rate (rad/s)")


def plot_episode(result: EpisodeResult, path_png: str | Path, success_radius_m: float | None = None) -> Path:
    """Write a PNG: top view with headings, distance and altitude over time, commands over time.

    Args:
        result: the episode to draw.
        path_png: output file (parent folders are created).
        success_radius_m: draw this circle around the target in the top view when given.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traj = result.trajectory
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    top, dist, alt, cmd = axes[0, 0], axes[0, 1], axes[1, 0], axes[1, 1]

    top.plot(traj.position[:, 0], traj.position[:, 1], color="tab:blue", lw=1.5, label="path")
    every = max(1, len(traj.t_s) // 12)
    top.quiver(
        traj.position[::every, 0],
        traj.position[::every, 1],
        np.cos(traj.yaw_rad[::every]),
        np.sin(traj.yaw_rad[::every]),
        color="tab:gray",
        width=0.004,
        scale=20,
        label="heading",
    )
    top.plot(*result.start_position[:2], "go", ms=8, label="start")
    top.plot(*result.target_position[:2], "o", color="red", ms=10, label="target")
    if success_radius_m is not None:
        top.add_patch(plt.Circle(tuple(result.target_position[:2]), success_radius_m, color="red", fill=False, ls="--"))
    top.set_aspect("equal", adjustable="datalim")
    top.set_xlabel("x (m)")
    top.set_ylabel("y (m)")
    top.set_title("top view")
    top.legend(loc="best", fontsize=8)

    distance = np.linalg.norm(traj.position - result.target_position, axis=1)
    dist.plot(traj.t_s, distance, color="tab:purple")
    if success_radius_m is not None:
        dist.axhline(success_radius_m, color="red", ls="--", lw=1, label="success radius")
    if result.time_to_reach_s is not None:
        dist.axvline(result.time_to_reach_s, color="green", ls=":", lw=1, label="reached")
    dist.set_xlabel("t (s)")
    dist.set_ylabel("distance to target (m)")
    dist.set_title("distance")
    if dist.get_legend_handles_labels()[0]:
        dist.legend(loc="best", fontsize=8)

    alt.plot(traj.t_s, traj.position[:, 2], label="altitude")
    alt.axhline(result.target_position[2], color="red", ls="--", lw=1, label="target height")
    alt.set_xlabel("t (s)")
    alt.set_ylabel("z (m)")
    alt.set_title("altitude")
    alt.legend(loc="best", fontsize=8)

    for i, label in enumerate(COMMAND_LABELS):
        cmd.plot(traj.t_s, traj.command[:, i], lw=1, label=label)
    cmd.set_xlabel("t (s)")
    cmd.set_title("commands (heading frame)")
    cmd.legend(loc="best", fontsize=8)

    if result.reached:
        status = "reached"
    else:
        status = f"crashed ({result.crash_reason})" if result.crashed else "not reached"
    fig.suptitle(
        f"seed {result.seed}, variant {result.variant.value}: {status}, "
        f"final distance {result.final_distance_m:.2f} m"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
