"""ROS messages <-> runtime records, doing no per-message work that can be avoided.

Image pixels are passed on as a ``memoryview`` of the message's buffer (no copy); the
decoder reads them through numpy views.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import Image, Imu

from lnn_ros.runtime.records import Command, ImageFrame, ImuSample

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return stamp.sec * NS_PER_S + stamp.nanosec


def ns_to_stamp(stamp_ns: int, out: Time) -> Time:
    """Write integer nanoseconds into ``out`` (a ``builtin_interfaces/Time``) and return it."""
    out.sec, out.nanosec = divmod(stamp_ns, NS_PER_S)
    return out


def imu_sample(msg: Imu) -> ImuSample:
    """``sensor_msgs/Imu`` -> :class:`ImuSample` (orientation as x, y, z, w)."""
    w, a, q = msg.angular_velocity, msg.linear_acceleration, msg.orientation
    return ImuSample(
        stamp_to_ns(msg.header.stamp),
        np.array((w.x, w.y, w.z)),
        np.array((a.x, a.y, a.z)),
        np.array((q.x, q.y, q.z, q.w)),
    )


def image_frame(msg: Image) -> ImageFrame:
    """``sensor_msgs/Image`` -> :class:`ImageFrame` sharing the message's pixel buffer."""
    return ImageFrame(
        stamp_to_ns(msg.header.stamp), msg.height, msg.width, msg.encoding, msg.step, memoryview(msg.data)
    )


def fill_twist_stamped(msg: TwistStamped, command: Command) -> TwistStamped:
    """Write ``command`` (stamp and twist) into ``msg``, which keeps its frame_id; returns it."""
    ns_to_stamp(command.stamp_ns, msg.header.stamp)
    linear, angular = msg.twist.linear, msg.twist.angular
    linear.x, linear.y, linear.z, angular.x, angular.y, angular.z = command.twist
    return msg
