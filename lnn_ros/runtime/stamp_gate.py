"""Header stamps judged against the clock they arrive on: :class:`StampGate`, one per input stream.

The engine's stamp rule (:class:`~lnn_ros.engine.clock.StampClock`) compares a stream's stamps
with each other only, so one message stamped ahead makes the real ones "out of order" until
real time catches up, and a stream stamped 10 s in the past flies. The gate runs first, on the
message's *offset* ``now - stamp`` (arrival on the node clock minus header stamp; the transport
latency when both share a time base), and rejects (the runner never sees the message), in
this order:

* ``TOO_OLD``: offset > ``max_age_s`` (old data, a replayed bag on the wall clock);
* ``FROM_FUTURE``: offset < -``max_future_s`` (stamped ahead of the node clock);
* ``FROM_FUTURE`` too, when the stamp jumps ahead of *the stream's own time base* by more than
  ``tolerance_s``: the base is the lowest recent offset (it follows a slow drift up and any
  change down that is gradual); a message ``tolerance_s`` below it is a bogus stamp, so it is
  dropped and cannot poison the engine's clock. This works even with the node-clock checks off
  (sensors on another time base). If ``REBASE_AFTER`` consecutive messages agree on a new base
  ahead (a restarted driver, a stepped sensor clock) the gate takes it;
* ``MIXED_TIME_BASE`` (among messages that passed the node-clock checks, before the time-base
  check): consecutive offsets jump by more than ``tolerance_s`` often (at least
  ``MIXED_MIN_SWITCHES`` times and in ``MIXED_MIN_FRACTION`` of the messages of a
  ``MIXED_WINDOW_S`` window): two publishers on different time bases share the topic. Every
  message of the stream is dropped until a whole window is clean, so the watchdog fails safe
  and the report says why (a stall, one bad stamp or a bad stamp every 0.45 s at 200 Hz are
  two jumps each, far below the threshold).

Each of ``max_age_s``, ``max_future_s``, ``tolerance_s`` set to 0 turns its check off.

Transport losses: the stamps of accepted messages show the gaps. With an expected period (a
parameter, or learnt as the median of the first ``LEARN_GAPS`` stamp gaps), each forward gap
of ``k`` periods (rounded) up to ``max_gap_s`` counts ``k - 1`` messages as ``<stream>_missed``;
longer gaps are outages (gap resets, watchdog) rather than losses.

Per message: integer arithmetic on a few attributes; no allocation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# np.median (the gates learn a stream's rate with it) imports numpy.ma on its first call (7 ms to
# import, 14 ms for the call): imported here, at start-up, so that no message callback pays it
# mid-flight. (np.percentile does the same; the node's first diagnostics report paid it and was
# the demo's worst latency, docs/latency.md.)
import numpy.ma

from lnn_ros.engine.outcome import Outcome
from lnn_ros.runtime.counters import Counters
from lnn_ros.runtime.records import Stream
from lnn_ros.units import NS_PER_S, seconds_to_ns

MIXED_WINDOW_S = 0.5
MIXED_MIN_SWITCHES = 6
MIXED_MIN_FRACTION = 0.1
REBASE_AFTER = 5
LEARN_GAPS = 64
_RELAX_SHIFT = 8  # the base follows an upward drift of the offset by 1/256 of it per message


@dataclass(frozen=True)
class StampLimits:
    """Settings of a :class:`StampGate` (the node parameters of the same names); 0 turns a check off.

    Attributes:
        max_age_s: a stamp older than the node clock by more than this is rejected.
        max_future_s: a stamp ahead of the node clock by more than this is rejected.
        tolerance_s: a stamp ahead of its stream's time base by more than this is rejected;
            also the offset jump that counts as a switch of time base.
        expected_rate_hz: the stream's nominal rate, for ``<stream>_missed`` (0: learnt from the stamps).
        max_gap_s: stamp gaps above this are outages, not losses (the engine's ``max_gap_s``).
    """

    max_age_s: float = 0.5
    max_future_s: float = 0.1
    tolerance_s: float = 0.1
    expected_rate_hz: float = 0.0
    max_gap_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_age_s", "max_future_s", "tolerance_s", "expected_rate_hz"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"StampLimits.{name} must be >= 0 (0 turns it off), got {value!r}.")
        if not self.max_gap_s > 0:
            raise ValueError(f"StampLimits.max_gap_s must be > 0, got {self.max_gap_s!r}.")


class StampGate:
    """Judges one stream's header stamps against the arrival clock; counts what it rejects.

    Args:
        stream: the stream (counter names ``<stream>_too_old`` ...).
        limits: the checks.
        counters: where rejected and missed messages are counted (the runner's).
    """

    def __init__(self, stream: Stream, limits: StampLimits, counters: Counters) -> None:
        self.stream = stream
        self.limits = limits
        self._counters = counters
        self._max_age_ns = seconds_to_ns(limits.max_age_s)
        self._max_future_ns = seconds_to_ns(limits.max_future_s)
        self._tolerance_ns = seconds_to_ns(limits.tolerance_s)
        self._max_gap_ns = seconds_to_ns(limits.max_gap_s)
        self._window_ns = seconds_to_ns(MIXED_WINDOW_S)
        # Counter keys built once (hashing an Enum costs more than the count); reported from the start.
        self._too_old_key = (stream, Outcome.TOO_OLD)
        self._from_future_key = (stream, Outcome.FROM_FUTURE)
        self._mixed_key = (stream, Outcome.MIXED_TIME_BASE)
        self._missed_key = (stream, Outcome.MISSED)
        self.received_key = (stream, Outcome.RECEIVED)  # counted by the caller for a message it drops here
        for key in (self._too_old_key, self._from_future_key, self._mixed_key, self._missed_key):
            counters.setdefault(key, 0)
        self._base_ns: int | None = None  # the stream's time base: its lowest recent offset
        self._previous_ns: int | None = None  # offset of the previous message
        self._ahead_run = 0
        self._ahead_ns = 0
        self._window_end_ns: int | None = None
        self._window_messages = 0
        self._window_switches = 0
        self._window_clean = True
        self.mixed = False  # the stream is on several time bases right now
        self.mixed_entries = 0
        self.rebases = 0
        self.last_stamp_ns: int | None = None  # newest accepted stamp
        self.period_ns = 0 if limits.expected_rate_hz == 0 else round(NS_PER_S / limits.expected_rate_hz)
        self._learn = np.zeros(LEARN_GAPS, dtype=np.int64) if self.period_ns == 0 else None
        self._learnt = 0

    @property
    def expected_rate_hz(self) -> float:
        """The rate the missed-message estimate assumes (0.0 while it is being learnt)."""
        return NS_PER_S / self.period_ns if self.period_ns else 0.0

    def check(self, stamp_ns: int, now_ns: int) -> Outcome | None:
        """The verdict on a message stamped ``stamp_ns`` arriving at ``now_ns``: None (accepted) or why it is dropped.

        A rejection is counted here (``<stream>_too_old`` ...); an accepted message updates the
        stream's time base and its missed-message estimate.
        """
        offset = now_ns - stamp_ns
        if self._max_age_ns and offset > self._max_age_ns:
            return self._reject(Outcome.TOO_OLD, self._too_old_key)
        if self._max_future_ns and -offset > self._max_future_ns:
            return self._reject(Outcome.FROM_FUTURE, self._from_future_key)
        tolerance = self._tolerance_ns
        if tolerance:
            self._track_switches(offset, now_ns)
            if self.mixed:
                return self._reject(Outcome.MIXED_TIME_BASE, self._mixed_key)
        base = self._base_ns
        if tolerance and base is not None and offset < base - tolerance:  # ahead of the stream's own time base
            run = self._ahead_run
            run = run + 1 if run and abs(offset - self._ahead_ns) <= tolerance else 1
            self._ahead_ns = offset
            if run < REBASE_AFTER:
                self._ahead_run = run
                return self._reject(Outcome.FROM_FUTURE, self._from_future_key)
            self.rebases += 1  # that many agree: the stream's time base moved
            base = offset
        self._ahead_run = 0
        if base is None or offset < base:
            base = offset
        else:
            base += (offset - base) >> _RELAX_SHIFT
        self._base_ns = base
        self._count_missed(stamp_ns)
        return None

    def accept_run(self, stamps_ns: np.ndarray, now_ns: np.ndarray) -> Callable[[], None] | None:
        """For a run of messages known in advance (a bag replay): a commit if :meth:`check` would accept them all.

        ``stamps_ns`` and ``now_ns`` (int64, one per message, in order). If every message would
        pass every check with no time-base switch (offsets within the age and future limits,
        consecutive offsets and the time base within ``tolerance_s`` of each other, stamps
        increasing), returns a function that leaves the gate exactly as :meth:`check` called on
        each would (time base, switch window, missed messages, learnt period); else None, and
        the caller checks them one by one. Nothing changes until the commit is called.
        """
        count = len(stamps_ns)
        if count == 0:
            return _nothing
        offsets = now_ns - stamps_ns
        lowest, highest = int(offsets.min()), int(offsets.max())
        if (self._max_age_ns and highest > self._max_age_ns) or (self._max_future_ns and -lowest > self._max_future_ns):
            return None
        last = self.last_stamp_ns
        steps = np.diff(stamps_ns)
        if (last is not None and int(stamps_ns[0]) <= last) or (count > 1 and int(steps.min()) <= 0):
            return None
        tolerance = self._tolerance_ns
        offset_list: list[int] = offsets.tolist()
        base = self._base_ns
        if tolerance:
            previous = self._previous_ns
            if self.mixed or (previous is not None and abs(offset_list[0] - previous) > tolerance):
                return None
            if count > 1 and int(np.abs(np.diff(offsets)).max()) > tolerance:
                return None
            if lowest < (highest if base is None else max(base, highest)) - tolerance:  # the base never exceeds the highest offset
                return None
        if base is None or lowest < base or highest - base >= 1 << _RELAX_SHIFT:
            for offset in offset_list:  # the time base, as check() moves it
                if base is None or offset < base:
                    base = offset
                else:
                    base += (offset - base) >> _RELAX_SHIFT
        # else every step adds (offset - base) >> _RELAX_SHIFT == 0: the base stays
        window = self._window_end_ns, self._window_messages, self._window_switches, self._window_clean
        if tolerance:
            window = self._windows_after(now_ns)
        period, learn, learnt = self.period_ns, self._learn, self._learnt
        gaps = steps if last is None else np.concatenate([[int(stamps_ns[0]) - last], steps])
        if len(gaps) and int(gaps.max()) > self._max_gap_ns:
            gaps = gaps[gaps <= self._max_gap_ns]
        if learn is not None:
            learn = learn.copy()
            used = 0
            for gap in gaps.tolist():  # _learn_period until the period is known
                if period:
                    break
                learn[learnt] = gap
                learnt += 1
                used += 1
                if learnt == len(learn):
                    period = int(np.median(learn))
            gaps = gaps[used:]
        missed = 0
        if period and len(gaps):
            missed = int(np.maximum((gaps + period // 2) // period - 1, 0).sum())
        stamp = int(stamps_ns[-1])
        previous_offset = offset_list[-1]

        def commit() -> None:
            self._base_ns = base
            self._ahead_run = 0
            if tolerance:
                self._previous_ns = previous_offset
                self._window_end_ns, self._window_messages, self._window_switches, self._window_clean = window
            self.last_stamp_ns = stamp
            self.period_ns = period
            self._learn = None if period else learn
            self._learnt = learnt
            if missed:
                self._counters[self._missed_key] += missed

        return commit

    def _windows_after(self, now_ns: np.ndarray) -> tuple[int | None, int, int, bool]:
        """The switch window (end, messages, switches, clean) after ``now_ns``, with no switch among them."""
        end, messages, switches, clean = self._window_end_ns, self._window_messages, self._window_switches, self._window_clean
        span = self._window_ns
        if len(now_ns) > 1 and (np.diff(now_ns) < 0).any():  # a clock that steps back: message by message
            for now in now_ns.tolist():
                if end is None or now >= end or now < end - span:
                    end, messages, switches, clean = now + span, 0, 0, True
                messages += 1
            return end, messages, switches, clean
        index, count = 0, len(now_ns)
        while index < count:  # one pass per window: its messages are those before its end
            now = int(now_ns[index])
            if end is None or now >= end or now < end - span:
                end, messages, switches, clean = now + span, 0, 0, True
            stop = max(index + 1, int(np.searchsorted(now_ns, end, side="left")))
            messages += stop - index
            index = stop
        return end, messages, switches, clean

    # ------------------------------------------------------------------ internals
    def _reject(self, outcome: Outcome, key: tuple[Stream, Outcome]) -> Outcome:
        self._counters[key] += 1
        return outcome

    def _track_switches(self, offset: int, now_ns: int) -> None:
        previous = self._previous_ns
        self._previous_ns = offset
        end = self._window_end_ns
        if end is None or now_ns >= end or now_ns < end - self._window_ns:  # a new window (or the clock stepped back)
            if self.mixed and self._window_clean:
                self.mixed = False
            self._window_end_ns = now_ns + self._window_ns
            self._window_messages = 0
            self._window_switches = 0
            self._window_clean = True
        self._window_messages += 1
        if previous is None or abs(offset - previous) <= self._tolerance_ns:
            return
        switches = self._window_switches + 1
        self._window_switches = switches
        if switches >= MIXED_MIN_SWITCHES and switches >= MIXED_MIN_FRACTION * self._window_messages:
            self._window_clean = False
            if not self.mixed:
                self.mixed = True
                self.mixed_entries += 1

    def _count_missed(self, stamp_ns: int) -> None:
        last = self.last_stamp_ns
        if last is not None and stamp_ns <= last:
            return  # duplicates and older stamps are the stamp rule's business
        self.last_stamp_ns = stamp_ns
        if last is None:
            return
        gap = stamp_ns - last
        if gap > self._max_gap_ns:
            return  # an outage, not a loss
        period = self.period_ns
        if period == 0:
            self._learn_period(gap)
            return
        missed = (gap + period // 2) // period - 1
        if missed > 0:
            self._counters[self._missed_key] += missed

    def _learn_period(self, gap: int) -> None:
        learn = self._learn
        if learn is None:
            return
        learn[self._learnt] = gap
        self._learnt += 1
        if self._learnt == len(learn):
            self.period_ns = int(np.median(learn))
            self._learn = None


def _nothing() -> None:
    """The commit of an empty run."""
