"""Δt from header stamps: the one stamp rule, for the driver stream and for every held stream.

Rules (each tested):

* no previous stamp -> ``INITIALISED`` (Δt unknown, no step);
* Δt == 0 -> ``DUPLICATE``; -``max_gap_s`` <= Δt < 0 -> ``OUT_OF_ORDER`` (the last stamp is kept);
* |Δt| > ``max_gap_s`` -> ``GAP_RESET`` (the stamp becomes the new start). A jump *back* by more
  than the gap is a restarted clock (a replayed bag, a re-synchronised time source, or recovery
  from one bogus future stamp) and is treated like a jump forward: without this, one message
  stamped minutes ahead would make every later message "out of order" until real time caught up.
  The engine resets the state on it; a held stream (camera, vector, or the IMU when another
  stream drives) just takes the new value
  and counts a jump back as ``CLOCK_RESTART``.
* otherwise ``STEPPED`` with the raw Δt (the engine clamps it to the trained range).
"""

from __future__ import annotations

from lnn_ros.engine.outcome import Outcome
from lnn_ros.units import NS_PER_S, seconds_to_ns


class StampClock:
    """Classifies a stream of ``stamp_ns`` against its last accepted stamp.

    Args:
        max_gap_s: the largest |Δt| that continues the stream.

    Raises:
        ValueError: ``max_gap_s`` is not > 0.
    """

    def __init__(self, max_gap_s: float) -> None:
        if not max_gap_s > 0:
            raise ValueError(f"max_gap_s must be > 0, got {max_gap_s!r}.")
        self.max_gap_ns = seconds_to_ns(max_gap_s)
        self.last_stamp_ns: int | None = None

    def forget(self) -> None:
        """The next stamp starts a new stream (used by an explicit reset)."""
        self.last_stamp_ns = None

    def classify(self, stamp_ns: int) -> Outcome:
        """The rule's verdict on ``stamp_ns`` without accepting it (see the module docstring)."""
        last = self.last_stamp_ns
        if last is None:
            return Outcome.INITIALISED
        delta_ns = stamp_ns - last
        if delta_ns == 0:
            return Outcome.DUPLICATE
        if -self.max_gap_ns <= delta_ns < 0:
            return Outcome.OUT_OF_ORDER
        if abs(delta_ns) > self.max_gap_ns:
            return Outcome.GAP_RESET
        return Outcome.STEPPED

    def continue_stream(self, stamp_ns: int) -> float | None:
        """The common case of :meth:`advance`, cheaply: if ``stamp_ns`` is ``STEPPED`` (0 < Δt <= the
        gap), accept it and return Δt in seconds; otherwise return None and change nothing (call
        :meth:`advance` for the verdict)."""
        last = self.last_stamp_ns
        if last is None:
            return None
        delta_ns = stamp_ns - last
        if 0 < delta_ns <= self.max_gap_ns:
            self.last_stamp_ns = stamp_ns
            return delta_ns / NS_PER_S
        return None

    def advance(self, stamp_ns: int) -> tuple[Outcome, float]:
        """Classify ``stamp_ns`` and accept it unless dropped; returns (outcome, dt_s)."""
        last = self.last_stamp_ns
        outcome = self.classify(stamp_ns)
        dt_s = 0.0 if last is None else (stamp_ns - last) / NS_PER_S
        if outcome is Outcome.DUPLICATE:
            return outcome, 0.0
        if outcome is not Outcome.OUT_OF_ORDER:
            self.last_stamp_ns = stamp_ns
        return outcome, dt_s
