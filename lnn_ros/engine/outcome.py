"""What became of one message: the closed set shared by the engine, the runtime and diagnostics.

The engine returns one of the stamp / step outcomes for every input it is given; the runtime
adds the outcomes of fusing streams (held values, waiting, images that do not fit). Counters
are keyed by ``(stream, outcome)`` (:class:`lnn_ros.runtime.counters.Counters`), so a name
such as ``camera_out_of_order`` means the same thing wherever it appears.
"""

from __future__ import annotations

from enum import Enum


class Outcome(Enum):
    """The fate of one message (or, for ``RECEIVED``, the fact that it arrived)."""

    RECEIVED = "received"  # a message of the stream arrived (counted before anything else)
    STEPPED = "stepped"  # the policy stepped and produced an output
    INITIALISED = "initialised"  # first driver stamp (or first after a reset): clock started, no output
    GAP_RESET = "gap_reset"  # driver stamp more than max_gap_s away: state reset, clock restarted
    NONFINITE_OUTPUT = "nonfinite_output"  # the graph produced NaN/Inf: state reset, no output
    HELD = "held"  # a held stream's value (embedding, vector, IMU) was stored for the next steps
    CLOCK_RESTART = "clock_restart"  # a held stream jumped back by more than max_gap_s: taken as new start
    ENCODED = "encoded"  # a camera frame went through the encoder graph
    WAITING = "waiting"  # a driver message skipped because this (held) stream has no value yet
    UNUSED = "unused"  # a stream the bundle does not read
    DUPLICATE = "duplicate"  # same stamp as the stream's last accepted message: dropped
    OUT_OF_ORDER = "out_of_order"  # up to max_gap_s older than the stream's last accepted message: dropped
    NONFINITE_INPUT = "nonfinite_input"  # NaN/Inf in a used field: dropped, state untouched
    WRONG_ENCODING = "wrong_encoding"  # image encoding not accepted by the manifest: dropped
    WRONG_SIZE = "wrong_size"  # image width/height differ from the manifest: dropped
    MALFORMED = "malformed"  # image step/data length inconsistent: dropped

    # Members are singletons: hash by identity in C (they key per-message counters).
    __hash__ = object.__hash__

    @property
    def valid(self) -> bool:
        """Whether the message was usable input: a sign of life of *its stream* for the watchdog.

        It says nothing about the policy: ``INITIALISED``, ``GAP_RESET`` and ``NONFINITE_OUTPUT``
        are valid input but produce no command. That the policy flies is watched separately
        (the watchdog's ``Stream.COMMAND``, fed only when a command was computed).
        """
        return self in _VALID

    @property
    def dropped(self) -> bool:
        """The message was discarded without touching the state or a held value."""
        return self in _DROPPED


_VALID = frozenset(
    {
        Outcome.STEPPED,
        Outcome.INITIALISED,
        Outcome.GAP_RESET,
        Outcome.NONFINITE_OUTPUT,
        Outcome.HELD,
        Outcome.CLOCK_RESTART,
        Outcome.WAITING,
        Outcome.UNUSED,
    }
)
_DROPPED = frozenset(
    {
        Outcome.DUPLICATE,
        Outcome.OUT_OF_ORDER,
        Outcome.NONFINITE_INPUT,
        Outcome.WRONG_ENCODING,
        Outcome.WRONG_SIZE,
        Outcome.MALFORMED,
    }
)
