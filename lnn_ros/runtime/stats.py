"""Rolling statistics for diagnostics: percentiles over the last N samples, and message rates.

Both keep a ring buffer allocated once; recording a sample is one store and one increment.
Percentiles are computed (one ``numpy.partition``) only when a report is built, never per message.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from lnn_ros.units import NS_PER_S


class Summary(NamedTuple):
    """Percentiles of the samples in the window (NaN when it is empty)."""

    samples: int  # samples ever recorded
    p50: float
    p99: float
    max: float


class RollingWindow:
    """The last ``capacity`` float samples.

    Raises:
        ValueError: ``capacity`` < 1.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"RollingWindow capacity must be >= 1, got {capacity!r}.")
        self._ring = np.zeros(capacity, dtype=np.float64)
        self.count = 0

    def add(self, value: float) -> None:
        self._ring[self.count % len(self._ring)] = value
        self.count += 1

    def extend(self, values: np.ndarray) -> None:
        """:meth:`add` of each of ``values``, in order, at once."""
        self.count = _extend_ring(self._ring, self.count, values)

    def values(self) -> np.ndarray:
        """The samples in the window (a view; order not preserved once it wrapped)."""
        return self._ring[: min(self.count, len(self._ring))]

    def summary(self) -> Summary:
        """p50, p99 (numpy's default linear interpolation) and max of the window.

        One ``np.partition`` on the order statistics they need, not ``np.percentile`` (which
        costs about 60 µs a call here, most of it overhead): a diagnostics report summarises
        five or six windows on the node's executor, so this is time an IMU message may wait.
        """
        window = self.values()
        size = window.size
        if size == 0:
            return Summary(self.count, float("nan"), float("nan"), float("nan"))
        last = size - 1
        ranks = [(q * last, math.floor(q * last)) for q in (0.5, 0.99)]
        kth = sorted({min(i, last) for _, low in ranks for i in (low, low + 1)} | {last})
        ordered = np.partition(window, kth)
        p50, p99 = (_lerp(float(ordered[low]), float(ordered[min(low + 1, last)]), rank - low) for rank, low in ranks)
        return Summary(self.count, p50, p99, float(ordered[last]))


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's interpolation between neighbours (exact at both ends)."""
    return b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t


class RateMeter:
    """Message rate from the arrival times of the last ``capacity`` messages.

    Raises:
        ValueError: ``capacity`` < 2.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError(f"RateMeter capacity must be >= 2, got {capacity!r}.")
        self._ring = np.zeros(capacity, dtype=np.int64)
        self.count = 0

    def tick(self, now_ns: int) -> None:
        self._ring[self.count % len(self._ring)] = now_ns
        self.count += 1

    def extend(self, times_ns: np.ndarray) -> None:
        """:meth:`tick` at each of ``times_ns``, in order, at once."""
        self.count = _extend_ring(self._ring, self.count, times_ns)

    def rate_hz(self, now_ns: int, window_s: float) -> float:
        """Arrivals per second over the ``window_s`` seconds before ``now_ns``.

        Arrivals after ``now_ns`` (recorded before the clock stepped back) are not recent: they
        are not counted. If every held arrival is inside the window (the ring is too short for
        it), the rate is the ring's arrivals over the time since its oldest one.
        """
        filled = min(self.count, len(self._ring))
        times = self._ring[:filled]
        recent = int(np.count_nonzero((times > now_ns - int(window_s * NS_PER_S)) & (times <= now_ns)))
        if filled == len(self._ring) and recent == filled:
            span_ns = now_ns - int(times.min())
            return 0.0 if span_ns <= 0 else filled * NS_PER_S / span_ns
        return recent / window_s


def _extend_ring(ring: np.ndarray, count: int, values: np.ndarray) -> int:
    """Store ``values`` in ``ring`` as one store each after ``count`` stores would; returns the new count."""
    size = len(ring)
    added = len(values)
    first = count
    if added > size:  # only the last ``size`` survive
        values = values[-size:]
        first += added - size
    ring[(first + np.arange(len(values))) % size] = values
    return count + added
