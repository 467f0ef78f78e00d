"""Plain records passed into and out of the runtime (the shapes a ROS adapter or a bag reader fills).

``ImuSample`` mirrors ``sensor_msgs/Imu``, ``ImageFrame`` mirrors ``sensor_msgs/Image`` and
``Command`` is what becomes a ``geometry_msgs/TwistStamped``. The field names of the two input
records are shared with :mod:`lnn_ros.sim.records`, so a simulator record can be passed as is.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

import numpy as np

Twist = tuple[float, float, float, float, float, float]
"""linear x, y, z then angular x, y, z (the order of ``lnn_ros.bundle.manifest.TWIST_FIELDS``)."""

ZERO_TWIST: Twist = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


class Stream(Enum):
    """An input stream of a policy."""

    IMU = "imu"
    CAMERA = "camera"
    VECTOR = "vector"


class ImuSample(NamedTuple):
    """One IMU message.

    Attributes:
        stamp_ns: header stamp, integer nanoseconds.
        angular_velocity: rad/s, shape (3,).
        linear_acceleration: m/s^2, shape (3,).
        orientation: quaternion x, y, z, w, shape (4,).
    """

    stamp_ns: int
    angular_velocity: np.ndarray
    linear_acceleration: np.ndarray
    orientation: np.ndarray


class ImageFrame(NamedTuple):
    """One camera image as ``sensor_msgs/Image`` carries it.

    Attributes:
        stamp_ns: header stamp (capture time), integer nanoseconds.
        height: rows.
        width: columns.
        encoding: ``rgb8``, ``bgr8`` or ``mono8`` (anything else is rejected and counted).
        step: bytes per row, ``>= width * channels`` (rows may be padded).
        data: ``height * step`` bytes, row-major; any buffer (``bytes``, ``memoryview``,
            ``array.array``) is read without copying.
    """

    stamp_ns: int
    height: int
    width: int
    encoding: str
    step: int
    data: bytes | memoryview


class Command(NamedTuple):
    """One policy output, ready to publish.

    Attributes:
        stamp_ns: stamp of the sensor message whose step produced it.
        values: the clamped model outputs, shape (O,), in manifest order (a copy).
        twist: the outputs mapped to Twist fields by the manifest's ``twist_field``
            (linear x, y, z, angular x, y, z); fields no output maps to are 0.0.
    """

    stamp_ns: int
    values: np.ndarray
    twist: Twist
