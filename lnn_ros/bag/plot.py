"""``commands.png``: predicted vs recorded commands over time, one panel per Twist-mapped output."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lnn_ros.runtime.records import Command
from lnn_ros.units import NS_PER_S


def plot_commands(
    path: Path,
    published: Sequence[tuple[Command, int]],
    recorded: Sequence[Command],
    axes: Sequence[tuple[str, str, int]],
    title: str = "",
) -> Path:
    """Draw predicted (line) and recorded (steps: valid until the next one) commands; returns ``path``.

    Time is seconds since the first stamp of either series.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predicted_ns = np.array([c.stamp_ns for c, _ in published], dtype=np.int64)
    predicted = np.array([c.twist for c, _ in published], dtype=np.float64).reshape(-1, 6)
    order = np.argsort([r.stamp_ns for r in recorded], kind="stable")
    recorded_ns = np.array([recorded[i].stamp_ns for i in order], dtype=np.int64)
    recorded_twist = np.array([recorded[i].twist for i in order], dtype=np.float64).reshape(-1, 6)
    origin = min([int(a[0]) for a in (predicted_ns, recorded_ns) if len(a)] or [0])
    figure, panels = plt.subplots(len(axes), 1, sharex=True, figsize=(10, 2.2 * len(axes) + 0.6), squeeze=False)
    for panel, (name, twist_field, index) in zip(panels[:, 0], axes):
        if len(recorded_ns):
            panel.step((recorded_ns - origin) / NS_PER_S, recorded_twist[:, index], where="post", label="recorded", color="0.4")
        panel.plot((predicted_ns - origin) / NS_PER_S, predicted[:, index], label="predicted", color="tab:blue", linewidth=1.0)
        panel.set_ylabel(f"{name}\n({twist_field})")
        panel.grid(True, alpha=0.3)
    panels[0, 0].legend(loc="upper right")
    panels[-1, 0].set_xlabel("time since first stamp [s]")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
