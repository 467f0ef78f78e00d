"""``lnn_node``'s clock and timers on a bag's log time, for replay.

The node runs :class:`~lnn_ros.runtime.LiveLoop` on its ROS clock with two timers: the
failsafe tick every ``1 / failsafe_rate_hz`` and the diagnostics report every
``diagnostics_period_s``. Replay runs the same loop with a :class:`LogClock`: the clock is the
log time of the message being handled (``ros2 bag record`` logs the arrival time), and before
each message :meth:`LogClock.advance` yields the timer ticks due up to that message's log time,
in time order (at equal times the failsafe tick first), with the clock set to each tick's time.
Both timers start at the first message.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum

from lnn_ros.units import NS_PER_S


class Timer(Enum):
    """The node's timers."""

    FAILSAFE = "failsafe"  # LiveLoop.tick(): hover while the watchdog is not OK
    DIAGNOSTICS = "diagnostics"  # LiveLoop.report() -> /diagnostics


class LogClock:
    """A clock that stands still between messages and runs the node's timers when it advances.

    Args:
        failsafe_rate_hz: rate of the failsafe timer.
        diagnostics_period_s: period of the diagnostics timer.
    """

    def __init__(self, failsafe_rate_hz: float, diagnostics_period_s: float) -> None:
        self._now_ns = 0
        self._failsafe_period_ns = round(NS_PER_S / failsafe_rate_hz)
        self._diagnostics_period_ns = round(diagnostics_period_s * NS_PER_S)
        self._next_failsafe_ns: int | None = None
        self._next_diagnostics_ns: int | None = None

    def now_ns(self) -> int:
        """The clock (the ``now_ns`` of :class:`~lnn_ros.runtime.LiveLoop`)."""
        return self._now_ns

    def advance(self, now_ns: int) -> Iterator[Timer]:
        """Yield each timer tick due up to ``now_ns`` (the next message's log time), then set the clock.

        While the caller handles a tick the clock reads that tick's time. The clock never goes
        back: a log time before the clock (possible in stamp order) leaves it where it is.
        """
        if self._next_failsafe_ns is None or self._next_diagnostics_ns is None:
            self._next_failsafe_ns = now_ns + self._failsafe_period_ns
            self._next_diagnostics_ns = now_ns + self._diagnostics_period_ns
        while min(self._next_failsafe_ns, self._next_diagnostics_ns) <= now_ns:
            if self._next_failsafe_ns <= self._next_diagnostics_ns:
                self._now_ns = self._next_failsafe_ns
                yield Timer.FAILSAFE
                self._next_failsafe_ns += self._failsafe_period_ns
            else:
                self._now_ns = self._next_diagnostics_ns
                yield Timer.DIAGNOSTICS
                self._next_diagnostics_ns += self._diagnostics_period_ns
        self._now_ns = max(self._now_ns, now_ns)
