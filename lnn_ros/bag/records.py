"""Plain records the bag subsystem adds to the runtime's ``ImuSample`` / ``ImageFrame``."""

from __future__ import annotations

from typing import NamedTuple, Union

import numpy as np

from lnn_ros.bag.topics import BagStream
from lnn_ros.runtime.records import ImageFrame, ImuSample


class TwistSample(NamedTuple):
    """One recorded velocity command (a pilot's or an expert's ``cmd_vel``).

    Attributes:
        stamp_ns: header stamp (log time for an unstamped ``Twist``), integer nanoseconds.
        twist: ``linear.x, linear.y, linear.z, angular.x, angular.y, angular.z`` as float64,
            shape (6,), in the order of :data:`lnn_ros.bundle.manifest.TWIST_FIELDS`.
    """

    stamp_ns: int
    twist: np.ndarray


Record = Union[ImuSample, ImageFrame, TwistSample]


class BagMessage(NamedTuple):
    """One decoded message of a bag.

    Attributes:
        stream: which input stream it belongs to.
        log_time_ns: the bag's log time (arrival time at the recorder for ``ros2 bag record``).
        record: the decoded record; its ``stamp_ns`` is the header stamp.
    """

    stream: BagStream
    log_time_ns: int
    record: Record
