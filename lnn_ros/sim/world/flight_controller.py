"""Velocity + yaw-rate set-points to motor speeds, through rotorpy's SE(3) controller.

rotorpy's own ``cmd_vel`` control abstraction cannot yaw (its desired heading is fixed to world
x), and a camera drone must turn toward what it looks at, so this module plays the role of an
autopilot's offboard velocity mode on top of rotorpy's ``SE3Control``:

    p_ref' = v_w,  v_w = R_z(yaw) v_h           (heading-frame command to world frame)
    psi_ref' = r
    |p_ref - p| <= leash,  |psi_ref - psi| <= yaw_leash      (anti wind-up)
    SE3Control(x=p_ref, x_dot=v_w, x_ddot=0, yaw=psi_ref, yaw_dot=r) -> motor speeds

Tracking the integrated reference gives the velocity loop integral action (wind is rejected in
steady state, like a PX4 velocity controller) while the leash keeps it from winding up.
"""

from __future__ import annotations

import numpy as np

from lnn_ros.sim.world._rotorpy import SE3Control
from lnn_ros.sim.world.frames import heading_to_world, wrap_angle, yaw_of_quat

_ZERO3 = np.zeros(3)


class VelocityTracker:
    """Holds the position / yaw reference and turns a held command into rotorpy motor speeds.

    Args:
        quad_params: rotorpy vehicle parameter dict.
        position: start position (world, m); the reference starts there.
        yaw_rad: start yaw; the yaw reference starts there.
        leash_m: largest distance between the position reference and the vehicle.
        yaw_leash_rad: largest gap between the yaw reference and the vehicle's yaw.
    """

    def __init__(
        self,
        quad_params: dict,
        position: np.ndarray,
        yaw_rad: float,
        leash_m: float = 0.3,
        yaw_leash_rad: float = 0.5,
    ) -> None:
        self._se3 = SE3Control(quad_params)
        self.position_ref = np.array(position, dtype=float)
        self.yaw_ref = float(yaw_rad)
        self.leash_m = leash_m
        self.yaw_leash_rad = yaw_leash_rad

    def motor_speeds(self, state: dict, command: np.ndarray, dt_s: float) -> np.ndarray:
        """Motor speeds (rad/s) to hold over the next ``dt_s``; advances the references by ``dt_s``.

        Args:
            state: rotorpy state dict (x, v, q, w, ...).
            command: ``[vx, vy, vz, yaw_rate]`` in the heading frame (m/s, rad/s).
            dt_s: length of the coming physics step.
        """
        yaw = yaw_of_quat(state["q"])
        velocity_w = heading_to_world(command[:3], yaw)
        flat = {
            "x": self.position_ref,
            "x_dot": velocity_w,
            "x_ddot": _ZERO3,
            "x_dddot": _ZERO3,
            "x_ddddot": _ZERO3,
            "yaw": self.yaw_ref,
            "yaw_dot": float(command[3]),
        }
        speeds = self._se3.update(0.0, state, flat)["cmd_motor_speeds"]
        self._advance(state["x"], yaw, velocity_w, float(command[3]), dt_s)
        return speeds

    def _advance(self, position: np.ndarray, yaw: float, velocity_w: np.ndarray, yaw_rate: float, dt_s: float) -> None:
        offset = self.position_ref + velocity_w * dt_s - position
        distance = float(np.linalg.norm(offset))
        if distance > self.leash_m:
            offset *= self.leash_m / distance
        self.position_ref = position + offset
        yaw_gap = wrap_angle(self.yaw_ref + yaw_rate * dt_s - yaw)
        self.yaw_ref = yaw + float(np.clip(yaw_gap, -self.yaw_leash_rad, self.yaw_leash_rad))
