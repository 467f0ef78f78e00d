"""The middleware's reception time of a message, where rclpy hands it to the callback.

rclpy since Iron calls a subscription callback that takes two arguments with the message and
its ``MessageInfo`` (``source_timestamp``: the publisher's send time, ``received_timestamp``:
the subscriber's middleware reception time, both ns of the system clock). Latency measured
from ``received_timestamp`` counts the time the message waited for the executor, which a
timer started inside the callback misses. Humble's rclpy has no message info: there the
callbacks take the message only and latency starts when the callback starts (said once in the
node's log).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rclpy.subscription import Subscription

# rclpy calls a two-argument callback with (message, message info) since Iron, where Subscription
# got its CallbackType enum (Jazzy 7.1.6 has the enum but no importable MessageInfo type); Humble has neither.
HAS_MESSAGE_INFO = hasattr(Subscription, "CallbackType")

NO_MESSAGE_INFO = (
    "This rclpy has no subscription message info (ROS 2 Humble): latency is measured from the start of "
    "each callback, not from the middleware's reception, so time spent waiting for the executor is not counted."
)

EVENTS_NO_MESSAGE_INFO = (
    "executor 'events': rclpy's EventsExecutor cannot pass message info to callbacks, so latency is measured "
    "from the start of each callback, not from the middleware's reception."
)


def received_perf_ns(info: Mapping[str, Any]) -> int:
    """``info['received_timestamp']`` (system clock) as a ``time.perf_counter_ns`` reading.

    Falls back to now when the middleware gave no reception time (0) or one in the future.
    """
    now_perf = time.perf_counter_ns()
    received = info.get("received_timestamp") or 0
    if received <= 0:
        return now_perf
    return now_perf - max(0, time.time_ns() - int(received))


def hop_ns(info: Mapping[str, Any]) -> int | None:
    """``received_timestamp - source_timestamp`` (publish -> reception), or None if either is missing."""
    source, received = info.get("source_timestamp") or 0, info.get("received_timestamp") or 0
    if source <= 0 or received <= 0:
        return None
    return int(received) - int(source)
