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
    """``sensor_msgs/Image`` (or ``CompressedImage``) -> :class:`ImageFrame` stamped ``stamp``.

    ``data`` is viewed without a copy when it is a contiguous buffer (rclpy's ``array.array``,
    rosbags' uint8 arrays, bytes); anything else (a list, a strided array) is copied to uint8.
    """
    if not hasattr(msg, "encoding"):
        return compressed_frame(msg, stamp)
    return ImageFrame(
        stamp, int(msg.height), int(msg.width), str(msg.encoding), int(msg.step), _buffer(msg.data), bool(msg.is_bigendian)
    )


def _buffer(values: Any) -> memoryview:
    try:
        data = memoryview(values)
    except TypeError:
        data = None
    if data is None or not data.c_contiguous:
        data = np.ascontiguousarray(values, dtype=np.uint8).data
    return data


def compressed_format(text: str) -> str:
    """A ``CompressedImage.format`` -> ``jpeg``, ``png`` or the text itself (then refused as an encoding).

    image_transport writes ``jpeg`` / ``png`` or ``"<encoding>; jpeg compressed <encoding>"``;
    ``compressedDepth`` streams are not images of a camera bundle and are left unrecognised.
    """
    lowered = str(text).lower()
    if "compresseddepth" in lowered:
        return lowered
    if "jpeg" in lowered or "jpg" in lowered:
        return "jpeg"
    if "png" in lowered:
        return "png"
    return lowered


def compressed_frame(msg: Any, stamp: int) -> ImageFrame:
    """``sensor_msgs/CompressedImage`` -> :class:`ImageFrame` (encoding ``jpeg`` / ``png``, size 0 until decoded)."""
    return ImageFrame(stamp, 0, 0, compressed_format(msg.format), 0, _buffer(msg.data))


def command(msg: Any, stamp: int) -> Command:
    """``geometry_msgs/TwistStamped`` or ``Twist`` -> :class:`Command` stamped ``stamp``."""
    twist = getattr(msg, "twist", msg)
    linear, angular = twist.linear, twist.angular
    return Command(
        stamp,
        (float(linear.x), float(linear.y), float(linear.z), float(angular.x), float(angular.y), float(angular.z)),
    )
