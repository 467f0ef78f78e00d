"""Plain records passed between the simulator and a controller (the same shapes a ROS bridge fills).

``ImuSample`` and ``ImageFrame`` are the runtime's records (:mod:`lnn_ros.runtime.records`,
mirroring ``sensor_msgs/Imu`` and ``sensor_msgs/Image``), so sensor events go to a
:class:`~lnn_ros.runtime.PolicyRunner` as they are. In the simulator they mean:

* ``ImuSample``: ``stamp_ns`` is sim time (integer nanoseconds since the episode start);
  ``angular_velocity`` is the gyro in the body frame (x forward, y left, z up), rad/s;
  ``linear_acceleration`` the specific force (acceleration minus gravity) in the body frame,
  m/s^2, about (0, 0, +9.81) at hover; ``orientation`` the body-to-world attitude quaternion
  (x, y, z, w), world z up.
* ``ImageFrame``: ``stamp_ns`` is the capture time in sim time; ``encoding`` is ``"rgb8"``,
  ``step`` is ``width * 3`` and ``data`` is ``bytes`` (``to_array()`` gives the read-only
  (height, width, 3) pixels).

``VelocityCommand`` mirrors a ``geometry_msgs/Twist`` in the heading frame (see its docstring).
"""

from __future__ import annotations

from typing import NamedTuple, Union

import numpy as np

from lnn_ros.runtime.records import ImageFrame, ImuSample

__all__ = ["HOVER", "ImageFrame", "ImuSample", "SensorEvent", "VelocityCommand"]

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
