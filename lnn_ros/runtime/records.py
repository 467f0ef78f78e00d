"""Plain records passed into and out of the runtime (the shapes a ROS adapter or a bag reader fills).

``ImuSample`` mirrors ``sensor_msgs/Imu``, ``ImageFrame`` mirrors ``sensor_msgs/Image`` and
``Command`` is what becomes a ``geometry_msgs/TwistStamped``. The simulator produces the same two
input records (:mod:`lnn_ros.sim.records` re-exports them), so its events go to a runner as is.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

import numpy as np

from lnn_ros.bundle.manifest import IMAGE_ENCODINGS

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

    def to_array(self) -> np.ndarray:
        """The pixels as a uint8 array of shape (height, width, channels), row padding skipped.

        A view of ``data`` (read-only when ``data`` is ``bytes``), not a copy.

        Raises:
            ValueError: the encoding is not ``rgb8``, ``bgr8`` or ``mono8``, or ``data`` is not
                ``height * step`` bytes of rows at least ``width * channels`` long.
        """
        channels = IMAGE_ENCODINGS.get(self.encoding)
        if channels is None:
            raise ValueError(f"Image encoding {self.encoding!r} is not one of {sorted(IMAGE_ENCODINGS)}.")
        flat = np.frombuffer(self.data, dtype=np.uint8)
        row_bytes = self.width * channels
        if self.step < row_bytes or flat.size != self.step * self.height:
            raise ValueError(
                f"A {self.width}x{self.height} {self.encoding} frame needs step >= {row_bytes} and "
                f"step * height bytes; got step {self.step} and {flat.size} bytes."
            )
        return flat.reshape(self.height, self.step)[:, :row_bytes].reshape(self.height, self.width, channels)


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
