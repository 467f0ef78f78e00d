"""One decoded bag message: the runtime's record with its stream and log time."""

from __future__ import annotations

from typing import NamedTuple

from lnn_ros.runtime.records import Command, ImageFrame, ImuSample, Stream

Record = ImuSample | ImageFrame | Command


class BagMessage(NamedTuple):
    """One decoded message of a bag.

    Attributes:
        stream: which input stream it belongs to.
        log_time_ns: the bag's log time (arrival time at the recorder for ``ros2 bag record``).
        record: the decoded record; its ``stamp_ns`` is the header stamp.
    """

    stream: Stream
    log_time_ns: int
    record: Record
