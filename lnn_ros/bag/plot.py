"""``commands.png``: predicted vs recorded commands over time, one panel per Twist-mapped output."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lnn_ros.units import NS_PER_S

MAX_POINTS = 4_000
"""A longer series is drawn as its envelope: the minimum and the maximum of each of
``MAX_POINTS / 2`` buckets, in time order. The figure is 1000 pixels wide (10 in at 100 dpi),
so 2000 buckets are two per pixel column: finer detail would not show. More points cost memory
in matplotlib's renderer for nothing (its peak grew from 29 to 88 MB with 20 000 points per
series between a 1-minute and a 60-minute bag, ``results/scaling``)."""


class Envelope:
    """The points of a series of known length ``count`` to draw, picked as its chunks come in:
    all of them up to ``limit``, else the first and the last point, the minimum and the maximum
    of each of ``limit / 2`` buckets and the points after the last whole bucket; for ``k``
    columns at once (one panel each), in time order.

    Memory: the picked points and less than one bucket of carried rows, whatever ``count``.
    """

    def __init__(self, count: int, columns: int, limit: int = MAX_POINTS) -> None:
        self.count = count
        buckets = max(1, limit // 2)
        self._size = 1 if count <= limit else count // buckets  # a bucket of one row: every row is picked
        self._body = count if count <= limit else buckets * self._size  # rows in whole buckets; the rest are all picked
        self._columns = columns
        self._seen = 0  # rows added
        self._done = 0  # rows picked from; the carried rows follow
        self._carry_x = np.zeros(0, np.int64)
        self._carry_y = np.zeros((0, columns))
        self._picked: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(columns)]

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """The next rows: positions ``x`` [n] (e.g. stamps) and values ``y`` [n, k]."""
        y = np.asarray(y, dtype=np.float64).reshape(len(x), self._columns)
        every = np.arange(len(x))
        if self._seen == 0 and len(x):
            self._pick_all(every[:1], x, y, 0)
        if self._seen + len(x) == self.count and len(x):
            self._pick_all(every[-1:], x, y, self._seen)
        self._seen += len(x)
        x = np.concatenate([self._carry_x, x])
        y = np.concatenate([self._carry_y, y])
        in_body = int(np.clip(self._body - self._done, 0, len(x)))
        whole = in_body - in_body % self._size
        if whole:
            body = y[:whole].reshape(whole // self._size, self._size, self._columns)
            starts = np.arange(0, whole, self._size)[:, None]
            for extreme in (np.argmin(body, axis=1), np.argmax(body, axis=1)):
                rows = starts + extreme  # [buckets, k]
                for column in range(self._columns):
                    self._pick(column, self._done + rows[:, column], x[rows[:, column]], y[rows[:, column], column])
        self._pick_all(np.arange(in_body, len(x)), x, y, self._done)  # after the last whole bucket
        self._carry_x, self._carry_y = x[whole:in_body].copy(), y[whole:in_body].copy()
        self._done += whole + (len(x) - in_body)

    def points(self, column: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Column ``column``'s picked points: row numbers, positions and values, in row order."""
        parts = self._picked[column]
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        rows, xs, ys = (np.concatenate(p) for p in zip(*parts))
        rows, first = np.unique(rows, return_index=True)
        return rows, xs[first], ys[first]

    def _pick_all(self, rows: np.ndarray, x: np.ndarray, y: np.ndarray, first_row: int) -> None:
        for column in range(self._columns):
            self._pick(column, first_row + rows, x[rows], y[rows, column])

    def _pick(self, column: int, rows: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        if len(rows):
            self._picked[column].append((np.asarray(rows, np.int64), np.array(x), np.array(y, dtype=np.float64)))


def envelope(values: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of the points to draw for ``values`` [N] (:class:`Envelope` of one column, all at once)."""
    picked = Envelope(len(values), 1, limit)
    picked.add(np.arange(len(values)), np.asarray(values).reshape(-1, 1))
    return picked.points(0)[0]


def plot_commands(
    path: Path,
    predicted: Envelope,
    recorded: Envelope | None,
    axes: Sequence[tuple[str, str, int]],
    title: str = "",
) -> Path:
    """Draw predicted (line) and recorded (steps: valid until the next one) commands; returns ``path``.

    ``predicted``: the predictions' envelope (positions: stamps in publishing order; one column
    per entry of ``axes``); ``recorded``: the recorded commands' envelope in stamp order, or None.
    Time is seconds since the first stamp of either series.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [e for e in (predicted, recorded) if e is not None and e.count]
    origin = min(int(e.points(0)[1][0]) for e in series) if series and axes else 0
    # Agg rasterises a path of 500 vertices at a time: the envelope's tall zigzags otherwise hold
    # cells for the whole path at once (for a 200 Hz sinusoid its peak grew 15 -> 37 MB from 10 to 180 minutes).
    with plt.rc_context({"agg.path.chunksize": 500}):
        figure, panels = plt.subplots(len(axes), 1, sharex=True, figsize=(10, 2.2 * len(axes) + 0.6), squeeze=False)
        for column, (panel, (name, twist_field, _)) in enumerate(zip(panels[:, 0], axes)):
            if recorded is not None and recorded.count:
                _, stamps_ns, values = recorded.points(column)
                panel.step((stamps_ns - origin) / NS_PER_S, values, where="post", label="recorded", color="0.4")
            _, stamps_ns, values = predicted.points(column)
            panel.plot((stamps_ns - origin) / NS_PER_S, values, label="predicted", color="tab:blue", linewidth=1.0)
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
