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

from lnn_ros.engine.outcome import Outcome
from lnn_ros.runtime.records import Stream


def counter_name(stream: Stream, outcome: Outcome) -> str:
    """The reported name of a counter: ``<stream>_<outcome>``."""
    return f"{stream.value}_{outcome.value}"


class Counters(Counter[tuple[Stream, Outcome]]):
    """A :class:`collections.Counter` over ``(stream, outcome)``; missing keys read 0."""

    def add(self, stream: Stream, outcome: Outcome) -> None:
        """Count one message of ``stream`` that ended ``outcome``."""
        self[stream, outcome] += 1

    def as_dict(self) -> dict[str, int]:
        """Every non-zero counter by its reported name, in a stable order (stream, then outcome)."""
        order = {s: i for i, s in enumerate(Stream)}
        outcomes = {o: i for i, o in enumerate(Outcome)}
        keys = sorted((k for k, v in self.items() if v), key=lambda k: (order[k[0]], outcomes[k[1]]))
        return {counter_name(stream, outcome): self[stream, outcome] for stream, outcome in keys}


DROPPED_NAMES = frozenset(counter_name(s, o) for s in Stream for o in Outcome if o.dropped)
"""Counters of messages received but not used (summed as ``dropped`` in diagnostics)."""

RESET_NAMES = frozenset(
    {"explicit_resets"} | {counter_name(s, o) for s in Stream for o in (Outcome.GAP_RESET, Outcome.NONFINITE_OUTPUT)}
)
"""Counters of state resets: explicit ones (service, watchdog recoveries), gaps, non-finite outputs."""
