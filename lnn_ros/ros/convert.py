"""rclpy messages <-> records: the stamp conversions and the command message the node fills in place.

Message -> record conversion is :mod:`lnn_ros.runtime.messages`, shared with the bag tools.
"""

from __future__ import annotations

from builtin_interfaces.msg import Time
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import CompressedImage, Image, Imu

from lnn_ros.runtime import messages
from lnn_ros.runtime.records import Command, ImageFrame, ImuSample
from lnn_ros.units import NS_PER_S


def stamp_to_ns(stamp: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return stamp.sec * NS_PER_S + stamp.nanosec


def ns_to_stamp(stamp_ns: int, out: Time) -> Time:
    """Write integer nanoseconds into ``out`` (a ``builtin_interfaces/Time``) and return it."""
    out.sec, out.nanosec = divmod(stamp_ns, NS_PER_S)
    return out


def imu_sample(msg: Imu) -> ImuSample:
    """``sensor_msgs/Imu`` -> :class:`ImuSample` (orientation as x, y, z, w)."""
    return messages.imu_sample(msg, stamp_to_ns(msg.header.stamp))


def image_frame(msg: Image | CompressedImage) -> ImageFrame:
    """``sensor_msgs/Image`` or ``CompressedImage`` -> :class:`ImageFrame` sharing the message's buffer."""
    return messages.image_frame(msg, stamp_to_ns(msg.header.stamp))


def fill_twist_stamped(msg: TwistStamped, command: Command) -> TwistStamped:
    """Write ``command`` (stamp and twist) into ``msg``, which keeps its frame_id; returns it."""
    ns_to_stamp(command.stamp_ns, msg.header.stamp)
    linear, angular = msg.twist.linear, msg.twist.angular
    linear.x, linear.y, linear.z, angular.x, angular.y, angular.z = command.twist
    return msg
