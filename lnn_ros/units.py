"""Time units: every stamp and duration inside lnn_ros is integer nanoseconds or float seconds.

The one place the conversion constants live. Names carry their unit (``stamp_ns``, ``dt_s``,
``latency_ms``); values cross from one unit to the other only through these constants.
"""

from __future__ import annotations

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


def seconds_to_ns(seconds: float) -> int:
    """``seconds`` as integer nanoseconds, rounded to the nearest nanosecond."""
    return int(round(float(seconds) * NS_PER_S))  # noqa: RUF046  (numpy 1.x scalars round to floats)
