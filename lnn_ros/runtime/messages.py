"""ROS messages -> records, for any object with the message's fields: rclpy messages in the
node, rosbags' decoded messages in the bag tools. One implementation, so the node and a replay
read a message the same way.

Image pixels are passed on as a ``memoryview`` of the message's buffer (no copy); the decoder
reads them through numpy views.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lnn_ros.runtime.records import Command, ImageFrame, ImuSample
from lnn_ros.units import NS_PER_S


def stamp_ns(header: Any) -> int:
    """``std_msgs/Header`` stamp (``builtin_interfaces/Time``) as integer nanoseconds."""
    stamp = header.stamp
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def imu_sample(msg: Any, stamp: int) -> ImuSample:
    """``sensor_msgs/Imu`` -> :class:`ImuSample` stamped ``stamp`` (orientation as x, y, z, w)."""
    w, a, q = msg.angular_velocity, msg.linear_acceleration, msg.orientation
    return ImuSample(
        stamp,
        np.array((w.x, w.y, w.z), dtype=np.float64),
        np.array((a.x, a.y, a.z), dtype=np.float64),
        np.array((q.x, q.y, q.z, q.w), dtype=np.float64),
    )


def image_frame(msg: Any, stamp: int) -> ImageFrame:
    """``sensor_msgs/Image`` -> :class:`ImageFrame` stamped ``stamp``, sharing the message's pixel buffer."""
    return ImageFrame(stamp, int(msg.height), int(msg.width), str(msg.encoding), int(msg.step), memoryview(msg.data))


def command(msg: Any, stamp: int) -> Command:
    """``geometry_msgs/TwistStamped`` or ``Twist`` -> :class:`Command` stamped ``stamp``."""
    twist = getattr(msg, "twist", msg)
    linear, angular = twist.linear, twist.angular
    return Command(
        stamp,
        (float(linear.x), float(linear.y), float(linear.z), float(angular.x), float(angular.y), float(angular.z)),
    )
