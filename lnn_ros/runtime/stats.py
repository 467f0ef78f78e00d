"""Rolling statistics for diagnostics: percentiles over the last N samples, and message rates.

Both keep a ring buffer allocated once; recording a sample is one store and one increment.
Percentiles are computed (``numpy.percentile``) only when a report is built, never per message.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# np.percentile imports numpy.ma on its first call (about 7 ms, 9 ms with the call): imported
# here, at start-up, so the node's first diagnostics report does not stall its executor mid-flight.
import numpy.ma

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

    def values(self) -> np.ndarray:
        """The samples in the window (a view; order not preserved once it wrapped)."""
        return self._ring[: min(self.count, len(self._ring))]

    def summary(self) -> Summary:
        window = self.values()
        if window.size == 0:
            return Summary(self.count, float("nan"), float("nan"), float("nan"))
        p50, p99 = np.percentile(window, (50.0, 99.0))
        return Summary(self.count, float(p50), float(p99), float(window.max()))


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
