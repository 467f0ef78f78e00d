"""``command_rate_hz``: publish policy commands at most at a set rate, without ROS.

The policy still steps on every message (its state needs every sample); only publishing is
thinned. Decisions use the command's stamp (the sensor time base), so the choice of which
commands go out does not depend on executor timing: with a 200 Hz IMU and ``command_rate_hz:
50`` every fourth command is published, even when the stamps jitter by a fraction of a period.
"""

from __future__ import annotations

NS_PER_S = 1_000_000_000


class RateLimit:
    """Pass at most one stamp per period; ``rate_hz == 0`` passes every stamp.

    A stamp passes when it reaches the next due time; the due time then moves on by one period
    from where it was (not from the stamp), so jitter does not accumulate into a slower rate, but
    never to a time already reached (a late stamp is not followed by a catch-up burst). A
    stamp more than a period past the due time (a gap) or before the last passed one (a
    reset, a bag looping) restarts the schedule from that stamp.

    Args:
        rate_hz: the maximum rate (0 = no limit).
        tolerance: a stamp this fraction of a period early still passes (absorbs sensor jitter).
    """

    def __init__(self, rate_hz: float, tolerance: float = 0.1) -> None:
        self.period_ns = round(NS_PER_S / rate_hz) if rate_hz > 0 else 0
        self._slack_ns = round(self.period_ns * tolerance)
        self._due_ns: int | None = None
        self._last_ns: int | None = None

    def passes(self, stamp_ns: int) -> bool:
        """Whether the command stamped ``stamp_ns`` is published (and if so, count it)."""
        if self.period_ns == 0:
            return True
        due, last = self._due_ns, self._last_ns
        if due is None or last is None or stamp_ns < last or stamp_ns - due > self.period_ns:
            self._due_ns, self._last_ns = stamp_ns + self.period_ns, stamp_ns
            return True
        if stamp_ns >= due - self._slack_ns:
            # On from the due time (jitter does not slow the rate), but never to a due time already
            # reached: after a lost period the next command waits a whole period, no catch-up burst.
            next_due = due + self.period_ns
            self._due_ns, self._last_ns = (next_due if next_due > stamp_ns else stamp_ns + self.period_ns), stamp_ns
            return True
        return False

    def reset(self) -> None:
        """Forget the schedule (the next stamp passes)."""
        self._due_ns = self._last_ns = None
