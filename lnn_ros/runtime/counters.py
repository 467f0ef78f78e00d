"""Message counters keyed by ``(stream, outcome)``: one name per event, wherever it is reported.

``counters[Stream.CAMERA, Outcome.OUT_OF_ORDER]`` is reported as ``camera_out_of_order`` in
diagnostics, ``summary.json`` and the demo. Meanings of the less obvious keys:

* ``<stream>_received``: messages that arrived (before any check);
* ``<driver>_stepped``: steps that produced a command;
* ``<held>_waiting``: driver messages skipped because the held stream had no value yet;
* ``camera_encoded``: frames that went through the encoder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from lnn_ros.engine.outcome import Outcome
from lnn_ros.runtime.records import Stream


def counter_name(stream: Stream, outcome: Outcome) -> str:
    """The reported name of a counter: ``<stream>_<outcome>``."""
    return f"{stream.value}_{outcome.value}"


class Counters(Counter[tuple[Stream, Outcome]]):
    """A :class:`collections.Counter` over ``(stream, outcome)``; missing keys read 0.

    Args:
        reported: keys reported even while zero (a diagnostics reader sees "0 dropped", and the
            set of keys does not change while the node runs); any other key appears once counted.
    """

    def __init__(self, reported: Iterable[tuple[Stream, Outcome]] = ()) -> None:
        super().__init__()
        for key in reported:
            self[key] = 0

    def add(self, stream: Stream, outcome: Outcome) -> None:
        """Count one message of ``stream`` that ended ``outcome``."""
        self[stream, outcome] += 1

    def as_dict(self) -> dict[str, int]:
        """Every reported or counted key by its reported name, in a stable order (stream, then outcome)."""
        keys = sorted(self, key=lambda k: (_STREAM_ORDER[k[0]], _OUTCOME_ORDER[k[1]]))
        return {counter_name(stream, outcome): self[stream, outcome] for stream, outcome in keys}


def reported_keys(streams: Iterable[Stream], driver: Stream) -> list[tuple[Stream, Outcome]]:
    """The counters a runner over ``streams`` (stepped by ``driver``) reports from the start."""
    keys: list[tuple[Stream, Outcome]] = []
    for stream in streams:
        keys += [(stream, o) for o in (Outcome.RECEIVED, Outcome.DUPLICATE, Outcome.OUT_OF_ORDER, Outcome.NONFINITE_INPUT)]
        if stream is driver:
            keys += [(stream, o) for o in (Outcome.STEPPED, Outcome.INITIALISED, Outcome.GAP_RESET, Outcome.NONFINITE_OUTPUT)]
        else:
            keys += [(stream, o) for o in (Outcome.HELD, Outcome.CLOCK_RESTART, Outcome.WAITING)]
        if stream is Stream.CAMERA:
            keys += [(stream, o) for o in (Outcome.ENCODED, Outcome.WRONG_ENCODING, Outcome.WRONG_SIZE, Outcome.MALFORMED)]
    return keys


_STREAM_ORDER = {s: i for i, s in enumerate(Stream)}
_OUTCOME_ORDER = {o: i for i, o in enumerate(Outcome)}


DROPPED_NAMES = frozenset(counter_name(s, o) for s in Stream for o in Outcome if o.dropped)
"""Counters of messages received but not used (summed as ``dropped`` in diagnostics)."""

RESET_NAMES = frozenset(
    {"explicit_resets"} | {counter_name(s, o) for s in Stream for o in (Outcome.GAP_RESET, Outcome.NONFINITE_OUTPUT)}
)
"""Counters of state resets: explicit ones (service, watchdog recoveries), gaps, non-finite outputs."""
