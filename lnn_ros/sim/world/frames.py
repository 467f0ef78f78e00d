"""Frame conventions and the few rotations the simulator needs (plain numpy, no scipy in hot paths).

World: x east-ish, y north-ish, z up (rotorpy, ROS ENU). Body: x forward, y left, z up (FLU,
ROS REP 103). Quaternions are (x, y, z, w) and rotate body vectors into the world frame.
Heading frame: the body frame with roll and pitch removed (yaw only); velocity commands live there.
"""

from __future__ import annotations

import math

import numpy as np


def quat_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrix R (body to world) of a unit quaternion (x, y, z, w)."""
    x, y, z, w = q_xyzw
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_entries(qx: float, qy: float, qz: float, qw: float) -> tuple[float, ...]:
    """Row-major entries (r00, r01, ..., r22) of R of a quaternion (x, y, z, w), normalised first.

    Normalises like scipy's ``Rotation.from_quat`` (rotorpy's dynamics see the non-unit
    quaternions of intermediate Runge-Kutta stages); Python floats, for the hot paths.
    """
    n = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
    x, y, z, w = qx / n, qy / n, qz / n, qw / n
    return (
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    )  # fmt: skip


def yaw_of_quat(q_xyzw: np.ndarray) -> float:
    """Yaw (heading of body x about world z, rad in (-pi, pi]) of a quaternion (x, y, z, w)."""
    x, y, z, w = q_xyzw
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def quat_from_yaw(yaw_rad: float) -> np.ndarray:
    """Quaternion (x, y, z, w) of a pure yaw rotation."""
    return np.array([0.0, 0.0, math.sin(yaw_rad / 2), math.cos(yaw_rad / 2)])


def wrap_angle(angle_rad: float) -> float:
    """``angle_rad`` wrapped into [-pi, pi)."""
    return (angle_rad + math.pi) % (2 * math.pi) - math.pi


def heading_to_world(vector_h: np.ndarray, yaw_rad: float) -> np.ndarray:
    """Rotate a heading-frame vector (x forward, y left, z up) into the world frame."""
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    return np.array([c * vector_h[0] - s * vector_h[1], s * vector_h[0] + c * vector_h[1], vector_h[2]])


def world_to_heading(vector_w: np.ndarray, yaw_rad: float) -> np.ndarray:
    """Rotate a world-frame vector into the heading frame of yaw ``yaw_rad``."""
    return heading_to_world(vector_w, -yaw_rad)
