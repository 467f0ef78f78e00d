"""What the runtime did with one message: a closed set shared by the runner, watchdog and diagnostics."""

from __future__ import annotations

from enum import Enum


class Outcome(Enum):
    """The fate of the last message given to a :class:`~lnn_ros.runtime.policy.PolicyRunner`."""

    STEPPED = "stepped"  # the policy stepped and produced a command
    INITIALISED = "initialised"  # first driver stamp (or first after a reset): clock started, no command
    GAP_RESET = "gap_reset"  # driver stamp gap above max_gap_s: state reset, clock restarted
    NONFINITE_OUTPUT = "nonfinite_output"  # the graph produced NaN/Inf: state reset, no command
    HELD = "held"  # a held stream's value (embedding, vector, IMU) was stored
    WAITING = "waiting"  # driver message before every held stream had a first value
    UNUSED = "unused"  # a stream the bundle does not read
    DUPLICATE = "duplicate"  # same stamp as the last accepted message of that stream: dropped
    OUT_OF_ORDER = "out_of_order"  # older than the last accepted message of that stream: dropped
    NONFINITE_INPUT = "nonfinite_input"  # NaN/Inf in a used field: dropped, state untouched
    WRONG_ENCODING = "wrong_encoding"  # image encoding not accepted by the manifest: dropped
    WRONG_SIZE = "wrong_size"  # image width/height differ from the manifest: dropped
    MALFORMED = "malformed"  # image step/data length inconsistent: dropped

    @property
    def valid(self) -> bool:
        """Whether the message was usable input: a sign of life of *its stream* for the watchdog.

        It says nothing about the policy: ``INITIALISED``, ``GAP_RESET`` and ``NONFINITE_OUTPUT``
        are valid input but produce no command. That the policy flies is watched separately:
        :class:`~lnn_ros.runtime.LiveLoop` feeds the watchdog's ``"command"`` pseudo-stream
        only when a command was computed, so inputs that keep coming without commands (every
        stamp a gap, a graph returning NaN) end in failsafe with ``stale: command``.
        """
        return self in _VALID


_VALID = frozenset(
    {
        Outcome.STEPPED,
        Outcome.INITIALISED,
        Outcome.GAP_RESET,
        Outcome.NONFINITE_OUTPUT,
        Outcome.HELD,
        Outcome.WAITING,
        Outcome.UNUSED,
    }
)
