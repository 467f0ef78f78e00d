"""Δt from header stamps: the rules for first, duplicate, older and far-apart stamps."""

from __future__ import annotations

from enum import Enum

NS_PER_S = 1_000_000_000


class StepStatus(Enum):
    """What the engine did with one input."""

    STEPPED = "stepped"  # state advanced by dt_s, output produced
    INITIALISED = "initialised"  # first input (or first after a reset): stamp recorded, no output
    DUPLICATE = "duplicate"  # same stamp as the last step: dropped
    OUT_OF_ORDER = "out_of_order"  # older than the last step: dropped
    GAP_RESET = "gap_reset"  # gap above max_gap_s: state reset, stamp recorded, no output
    NONFINITE_INPUT = "nonfinite_input"  # NaN/Inf in the features: rejected, state and stamp untouched
    NONFINITE_OUTPUT = "nonfinite_output"  # the graph produced NaN/Inf: state reset, no output


class StampClock:
    """Turns a stream of ``stamp_ns`` into Δt (seconds) and a :class:`StepStatus`.

    Rules (each documented in the README, each tested):

    * no previous stamp -> ``INITIALISED`` (Δt unknown, no step);
    * Δt == 0 -> ``DUPLICATE``; -``max_gap_s`` <= Δt < 0 -> ``OUT_OF_ORDER`` (the last stamp is kept);
    * |Δt| > ``max_gap_s`` -> ``GAP_RESET`` (the caller resets the state; the stamp becomes the new
      start). A jump *back* by more than the gap is a restarted clock (a replayed bag, a
      re-synchronised time source, or recovery from one bogus future stamp) and is treated like
      a jump forward: without this, one message stamped minutes ahead would make every later
      message "out of order" until real time caught up.
    * otherwise ``STEPPED`` with the raw Δt (the engine clamps it to the trained range).
    """

    def __init__(self, max_gap_s: float) -> None:
        if not max_gap_s > 0:
            raise ValueError(f"max_gap_s must be > 0, got {max_gap_s!r}.")
        self.max_gap_ns = int(round(max_gap_s * NS_PER_S))
        self.last_stamp_ns: int | None = None

    def forget(self) -> None:
        """The next stamp starts a new stream (used by an explicit reset)."""
        self.last_stamp_ns = None

    def advance(self, stamp_ns: int) -> tuple[StepStatus, float]:
        """Classify ``stamp_ns`` against the last accepted stamp; returns (status, dt_s)."""
        last = self.last_stamp_ns
        if last is None:
            self.last_stamp_ns = stamp_ns
            return StepStatus.INITIALISED, 0.0
        delta_ns = stamp_ns - last
        if delta_ns == 0:
            return StepStatus.DUPLICATE, 0.0
        if -self.max_gap_ns <= delta_ns < 0:
            return StepStatus.OUT_OF_ORDER, delta_ns / NS_PER_S
        self.last_stamp_ns = stamp_ns
        if abs(delta_ns) > self.max_gap_ns:
            return StepStatus.GAP_RESET, delta_ns / NS_PER_S
        return StepStatus.STEPPED, delta_ns / NS_PER_S
