"""One-page pictures of a flight: an episode in process (:func:`plot_episode`) and a flight over
ROS 2 from the demo (:func:`plot_flight`). matplotlib is imported only when plotting."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # plotting a ROS flight needs neither rotorpy nor the simulator node's log at import
    from lnn_ros.sim.ros.flight_log import FlightRecord
    from lnn_ros.sim.world.episode import EpisodeResult

COMMAND_LABELS = ("vx (m/s)", "vy (m/s)", "vz (m/s)", "yaw rate (rad/s)")


def draw_top_view(
    ax: Any,
    position: np.ndarray,
    yaw_rad: np.ndarray,
    start_position: np.ndarray,
    target_position: np.ndarray,
    success_radius_m: float | None,
    *,
    arrows: int,
    title: str,
) -> None:
    """Top view of a flight: path, about ``arrows`` heading arrows, start, target, success circle."""
    import matplotlib.pyplot as plt

    ax.plot(position[:, 0], position[:, 1], color="tab:blue", lw=1.5, label="path")
    every = max(1, len(position) // arrows)
    ax.quiver(
        position[::every, 0],
        position[::every, 1],
        np.cos(yaw_rad[::every]),
        np.sin(yaw_rad[::every]),
        color="tab:gray",
        width=0.004,
        scale=20,
        label="heading",
    )
    ax.plot(*start_position[:2], "go", ms=8, label="start")
    ax.plot(*target_position[:2], "o", color="red", ms=10, label="target")
    if success_radius_m is not None:
        ax.add_patch(plt.Circle(tuple(target_position[:2]), success_radius_m, color="red", fill=False, ls="--"))
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)


def draw_commands(ax: Any, t_s: np.ndarray, command: np.ndarray, *, title: str, xlabel: str) -> None:
    """The four velocity commands over time."""
    for i, label in enumerate(COMMAND_LABELS):
        ax.plot(t_s, command[:, i], lw=1, label=label)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)


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

    draw_top_view(
        top,
        traj.position,
        traj.yaw_rad,
        result.start_position,
        result.target_position,
        success_radius_m,
        arrows=12,
        title="top view",
    )

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

    draw_commands(cmd, traj.t_s, traj.command, title="commands (heading frame)", xlabel="t (s)")

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


def plot_flight(record: FlightRecord, summary: dict[str, Any], path_png: str | Path) -> Path:
    """Write a PNG: top view, distance to the target, commands flown, latency histogram.

    Args:
        record: the flight's arrays (from the simulator node's ``record_path``).
        summary: the simulator node's JSON summary (title and percentile lines).
        path_png: output file (parent folders are created).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    top, dist, cmd, hist = axes[0, 0], axes[0, 1], axes[1, 0], axes[1, 1]

    position = record.position
    draw_top_view(
        top,
        position,
        record.yaw_rad,
        record.start_position,
        record.target_position,
        record.success_radius_m,
        arrows=15,
        title="trajectory (top view)",
    )

    distance = np.linalg.norm(position - record.target_position, axis=1)
    dist.plot(record.t_s, distance, color="tab:purple", label="distance to target")
    dist.plot(record.t_s, position[:, 2], color="tab:green", lw=1, label="altitude")
    dist.axhline(record.success_radius_m, color="red", ls="--", lw=1, label="success radius")
    reach = summary["flight"].get("time_to_reach_s")
    if reach is not None:
        dist.axvline(reach, color="green", ls=":", lw=1, label="reached")
    dist.set_xlabel("sim time (s)")
    dist.set_ylabel("m")
    dist.set_title("distance and altitude")
    dist.legend(loc="best", fontsize=8)

    draw_commands(
        cmd, record.t_s, record.command, title="commands flown (cmd_vel from lnn_node, heading frame)", xlabel="sim time (s)"
    )

    latency = record.latency_ms
    if latency.size:
        bins = np.logspace(np.log10(max(latency.min(), 1e-3)), np.log10(latency.max() * 1.05), 50)
        hist.hist(latency, bins=bins, color="tab:blue")
        hist.set_xscale("log")
        ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500) if bins[0] <= t <= max(bins[-1], 5.5)]
        hist.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        hist.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        hist.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        stats = summary["latency_ms"]
        for key, style in (("p50", "-"), ("p99", "--"), ("max", ":")):
            if stats.get(key) is not None:
                hist.axvline(stats[key], color="black", ls=style, lw=1, label=f"{key} {stats[key]:.2f} ms")
        deadline = summary["deadline"]["deadline_ms"]
        hist.axvline(deadline, color="red", lw=1, label=f"deadline {deadline:g} ms")
        hist.legend(loc="best", fontsize=8)
    hist.set_xlabel("sensor publish -> command arrival (ms)")
    hist.set_ylabel("commands")
    hist.set_title(f"latency over DDS ({latency.size} commands)")

    flight = summary["flight"]
    status = "reached the target" if flight["reached"] else ("crashed" if flight["crashed"] else "did not reach the target")
    deadline = summary["deadline"]
    fig.suptitle(
        f"seed {summary['seed']}, variant {summary['variant']}: {status}, final distance "
        f"{flight['final_distance_m']:.2f} m; missed deadlines {deadline['missed']}/{deadline['checked']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
