"""``commands.png``: predicted vs recorded commands over time, one panel per Twist-mapped output."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lnn_ros.units import NS_PER_S

MAX_POINTS = 20_000
"""A longer series is drawn as its envelope: the minimum and the maximum of each of
``MAX_POINTS / 2`` buckets, in time order (an hour of 200 Hz commands would otherwise be 720 000
points per panel, hundreds of MB in matplotlib, and no more visible than the envelope)."""


def envelope(values: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of the points to draw for ``values`` [N]: all of them up to ``limit``, else the
    first and last point and the minimum and maximum of each bucket, sorted."""
    count = len(values)
    if count <= limit:
        return np.arange(count)
    buckets = max(1, limit // 2)
    size = count // buckets
    body = values[: buckets * size].reshape(buckets, size)
    starts = np.arange(buckets) * size
    picked = np.concatenate([starts + np.argmin(body, axis=1), starts + np.argmax(body, axis=1), [0, count - 1],
                             np.arange(buckets * size, count)])
    return np.unique(picked)


def plot_commands(
    path: Path,
    predicted_ns: np.ndarray,
    predicted: np.ndarray,
    recorded_ns: np.ndarray,
    recorded: np.ndarray,
    axes: Sequence[tuple[str, str, int]],
    title: str = "",
) -> Path:
    """Draw predicted (line) and recorded (steps: valid until the next one) commands; returns ``path``.

    ``predicted_ns`` [N] with twists ``predicted`` [N, 6]; ``recorded_ns`` [M] (any order) with
    ``recorded`` [M, 6]. Time is seconds since the first stamp of either series. Series longer
    than :data:`MAX_POINTS` are drawn as their envelope (:func:`envelope`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predicted_ns = np.asarray(predicted_ns, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1, 6)
    order = np.argsort(recorded_ns, kind="stable")
    recorded_ns = np.asarray(recorded_ns, dtype=np.int64)[order]
    recorded = np.asarray(recorded, dtype=np.float64).reshape(-1, 6)[order]
    origin = min([int(a[0]) for a in (predicted_ns, recorded_ns) if len(a)] or [0])
    figure, panels = plt.subplots(len(axes), 1, sharex=True, figsize=(10, 2.2 * len(axes) + 0.6), squeeze=False)
    for panel, (name, twist_field, index) in zip(panels[:, 0], axes):
        if len(recorded_ns):
            shown = envelope(recorded[:, index])
            panel.step((recorded_ns[shown] - origin) / NS_PER_S, recorded[shown, index], where="post", label="recorded", color="0.4")
        shown = envelope(predicted[:, index])
        panel.plot((predicted_ns[shown] - origin) / NS_PER_S, predicted[shown, index], label="predicted", color="tab:blue", linewidth=1.0)
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
