"""Plain records passed between the simulator and a controller (the same shapes a ROS bridge fills).

``ImuSample`` and ``ImageFrame`` mirror ``sensor_msgs/Imu`` and ``sensor_msgs/Image``; the runtime
package will own them later, so their field names are fixed. ``VelocityCommand`` mirrors a
``geometry_msgs/Twist`` in the heading frame (see its docstring).
"""

from __future__ import annotations

from typing import NamedTuple, Union

import numpy as np


class ImuSample(NamedTuple):
    """One IMU reading, stamped in sim time.

    Attributes:
        stamp_ns: sample time, integer nanoseconds since the episode start.
        angular_velocity: gyro, body frame (x forward, y left, z up), rad/s, shape (3,).
        linear_acceleration: specific force (acceleration minus gravity), body frame, m/s^2,
            shape (3,); at hover it reads about (0, 0, +9.81).
        orientation: body-to-world attitude quaternion (x, y, z, w), world z up, shape (4,).
    """

    stamp_ns: int
    angular_velocity: np.ndarray
    linear_acceleration: np.ndarray
    orientation: np.ndarray


class ImageFrame(NamedTuple):
    """One camera image, stamped in sim time (capture time).

    Attributes:
        stamp_ns: capture time, integer nanoseconds since the episode start.
        height: rows.
        width: columns.
        encoding: pixel format, ``"rgb8"``.
        step: bytes per row (``width * 3`` for rgb8).
        data: row-major pixel bytes, ``height * step`` long.
    """

    stamp_ns: int
    height: int
    width: int
    encoding: str
    step: int
    data: bytes

    def to_array(self) -> np.ndarray:
        """The pixels as a read-only uint8 array of shape (height, width, 3)."""
        return np.frombuffer(self.data, dtype=np.uint8).reshape(self.height, self.width, 3)


SensorEvent = Union[ImuSample, ImageFrame]


class VelocityCommand(NamedTuple):
    """A velocity set-point in the heading frame, as a flight controller's offboard mode takes it.

    The heading frame is the body frame with roll and pitch removed: x forward (horizontal,
    along the current yaw), y left, z up (world up). So "fly toward what the camera sees" is
    +x whatever the world yaw, and a policy never needs the absolute yaw.

    Attributes:
        vx_mps: forward speed, m/s.
        vy_mps: leftward speed, m/s.
        vz_mps: upward speed, m/s.
        yaw_rate_rps: yaw rate about world z (counter-clockwise seen from above), rad/s.
    """

    vx_mps: float
    vy_mps: float
    vz_mps: float
    yaw_rate_rps: float

    def as_array(self) -> np.ndarray:
        """``[vx, vy, vz, yaw_rate]`` as float64, shape (4,)."""
        return np.array(self, dtype=np.float64)


HOVER = VelocityCommand(0.0, 0.0, 0.0, 0.0)
