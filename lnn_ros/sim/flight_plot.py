"""The demo's one-page picture of a flight over ROS 2 (matplotlib is imported only when plotting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lnn_ros.sim.flight_log import FlightRecord
from lnn_ros.sim.plot import draw_commands, draw_top_view


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
