"""Converting between rosbags message objects and lnn_ros records, without ROS.

The type store is rosbags' built-in ROS 2 Humble store (the robot target); the message
layouts used here (Imu, Image, Twist(Stamped), DiagnosticArray, Clock) are the same in every
ROS 2 release since Humble, so the CDR bytes are those rclpy produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from lnn_ros.bag.errors import BagError
from lnn_ros.bag.topics import (
    DIAGNOSTIC_ARRAY_TYPE,
    IMAGE_TYPE,
    IMU_TYPE,
    TWIST_STAMPED_TYPE,
)
from lnn_ros.runtime.records import ImageFrame, ImuSample
from lnn_ros.units import NS_PER_S

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

_INT32_MAX = 2**31 - 1


@lru_cache(maxsize=1)
def default_typestore() -> Typestore:
    """rosbags' ROS 2 Humble type store (cached)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


# ---------------------------------------------------------------- records -> messages
def check_stamp(stamp: int) -> tuple[int, int]:
    """``(sec, nanosec)`` of a stamp that ``builtin_interfaces/Time`` can hold, else BagError."""
    sec, nanosec = divmod(int(stamp), NS_PER_S)
    if not 0 <= sec <= _INT32_MAX:
        raise BagError(f"A header stamp must lie in 0 .. 2**31 - 1 seconds, got {stamp!r} ns.")
    return sec, nanosec


def _header(stamp: int, frame_id: str, typestore: Typestore) -> Any:
    sec, nanosec = check_stamp(stamp)
    types = typestore.types
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def _vector3(values: Sequence[float] | np.ndarray, typestore: Typestore) -> Any:
    return typestore.types["geometry_msgs/msg/Vector3"](x=float(values[0]), y=float(values[1]), z=float(values[2]))


def imu_message(sample: ImuSample, frame_id: str, typestore: Typestore) -> Any:
    """:class:`ImuSample` -> ``sensor_msgs/Imu`` (covariances zero: "unknown but present")."""
    q = sample.orientation
    zeros = np.zeros(9, dtype=np.float64)
    return typestore.types[IMU_TYPE](
        header=_header(sample.stamp_ns, frame_id, typestore),
        orientation=typestore.types["geometry_msgs/msg/Quaternion"](
            x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])
        ),
        orientation_covariance=zeros,
        angular_velocity=_vector3(sample.angular_velocity, typestore),
        angular_velocity_covariance=zeros,
        linear_acceleration=_vector3(sample.linear_acceleration, typestore),
        linear_acceleration_covariance=zeros,
    )


def image_message(frame: ImageFrame, frame_id: str, typestore: Typestore) -> Any:
    """:class:`ImageFrame` -> ``sensor_msgs/Image`` (little-endian pixel data)."""
    return typestore.types[IMAGE_TYPE](
        header=_header(frame.stamp_ns, frame_id, typestore),
        height=frame.height,
        width=frame.width,
        encoding=frame.encoding,
        is_bigendian=0,
        step=frame.step,
        data=np.frombuffer(bytes(frame.data), dtype=np.uint8),
    )


def twist_stamped_message(stamp: int, twist: Sequence[float], frame_id: str, typestore: Typestore) -> Any:
    """Stamp and six values (linear xyz, angular xyz) -> ``geometry_msgs/TwistStamped``."""
    if len(twist) != 6:
        raise BagError(f"A twist needs 6 values (linear xyz, angular xyz), got {len(twist)}: {twist!r}.")
    body = typestore.types["geometry_msgs/msg/Twist"](
        linear=_vector3(twist[:3], typestore), angular=_vector3(twist[3:], typestore)
    )
    return typestore.types[TWIST_STAMPED_TYPE](header=_header(stamp, frame_id, typestore), twist=body)


def diagnostic_array_message(
    stamp: int, name: str, hardware_id: str, level: int, message: str, values: dict[str, str], typestore: Typestore
) -> Any:
    """One ``diagnostic_msgs/DiagnosticArray`` holding a single status with key/value pairs."""
    types = typestore.types
    status = types["diagnostic_msgs/msg/DiagnosticStatus"](
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[types["diagnostic_msgs/msg/KeyValue"](key=k, value=v) for k, v in values.items()],
    )
    return types[DIAGNOSTIC_ARRAY_TYPE](header=_header(stamp, "", typestore), status=[status])
