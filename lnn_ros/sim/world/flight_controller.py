"""Velocity + yaw-rate set-points to motor speeds, through rotorpy's SE(3) controller.

rotorpy's own ``cmd_vel`` control abstraction cannot yaw (its desired heading is fixed to world
x), and a camera drone must turn toward what it looks at, so this module plays the role of an
autopilot's offboard velocity mode on top of rotorpy's ``SE3Control``:

    p_ref' = v_w,  v_w = R_z(yaw) v_h           (heading-frame command to world frame)
    psi_ref' = r
    |p_ref - p| <= leash,  |psi_ref - psi| <= yaw_leash      (anti wind-up)
    SE3Control(x=p_ref, x_dot=v_w, x_ddot=0, yaw=psi_ref, yaw_dot=r) -> motor speeds

``SE3Control.update`` itself is slow (scipy ``Rotation`` and numpy calls on 3-vectors, ~0.5 ms);
:func:`se3_motor_speeds` is its ``cmd_motor_speeds`` on Python floats, same gains, same formulas.

Tracking the integrated reference gives the velocity loop integral action (wind is rejected in
steady state, like a PX4 velocity controller) while the leash keeps it from winding up.
"""

from __future__ import annotations

import math

import numpy as np

from lnn_ros.sim.world._rotorpy import SE3Control
from lnn_ros.sim.world.frames import heading_to_world, rotation_entries, wrap_angle, yaw_of_quat

_ZERO3 = np.zeros(3)


def se3_motor_speeds(se3: SE3Control, state: dict, flat_output: dict) -> np.ndarray:
    """``se3.update(t, state, flat_output)["cmd_motor_speeds"]``, computed on Python floats.

    With p, v, R, w the state and (p_d, v_d, a_d, psi_d, r_d) the flat output::

        F = m (-K_p (p - p_d) - K_d (v - v_d) + a_d + g e3),   u1 = F . R e3
        b3d = F / |F|,  b2d = b3d x c1 / |b3d x c1|,  c1 = (cos psi_d, sin psi_d, 0),  b1d = b2d x b3d
        e_R = vee((R_d^T R - R^T R_d) / 2),   u2 = J (-k_R e_R - k_w (w - r_d e3)) + w x J w
        speeds = sign(f) sqrt(|f|),  f = TM_to_f (u1, u2) / k_eta
    """
    mass, g = se3.mass, se3.g
    kpx, kpy, kpz = se3.kp_pos.tolist()
    kdx, kdy, kdz = se3.kd_pos.tolist()
    x, y, z = state["x"].tolist()
    vx, vy, vz = state["v"].tolist()
    wx, wy, wz = state["w"].tolist()
    px, py, pz = np.asarray(flat_output["x"], dtype=float).tolist()
    dx, dy, dz = np.asarray(flat_output["x_dot"], dtype=float).tolist()
    ax, ay, az = np.asarray(flat_output["x_ddot"], dtype=float).tolist()
    fx = mass * (-kpx * (x - px) - kdx * (vx - dx) + ax + 0.0)
    fy = mass * (-kpy * (y - py) - kdy * (vy - dy) + ay + 0.0)
    fz = mass * (-kpz * (z - pz) - kdz * (vz - dz) + az + g)
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = rotation_entries(*state["q"].tolist())
    u1 = fx * r02 + fy * r12 + fz * r22
    norm = math.sqrt(fx * fx + fy * fy + fz * fz)
    b3x, b3y, b3z = fx / norm, fy / norm, fz / norm
    yaw = float(flat_output["yaw"])
    c1x, c1y = math.cos(yaw), math.sin(yaw)
    b2x, b2y, b2z = -b3z * c1y, b3z * c1x, b3x * c1y - b3y * c1x  # b3d x c1 (c1z = 0)
    norm = math.sqrt(b2x * b2x + b2y * b2y + b2z * b2z)
    b2x, b2y, b2z = b2x / norm, b2y / norm, b2z / norm
    b1x, b1y, b1z = b2y * b3z - b2z * b3y, b2z * b3x - b2x * b3z, b2x * b3y - b2y * b3x
    # (R_d^T R)_ij = b_i . (column j of R); e_R = (m21 - m12, m02 - m20, m10 - m01) / 2.
    m01 = b1x * r01 + b1y * r11 + b1z * r21
    m02 = b1x * r02 + b1y * r12 + b1z * r22
    m10 = b2x * r00 + b2y * r10 + b2z * r20
    m12 = b2x * r02 + b2y * r12 + b2z * r22
    m20 = b3x * r00 + b3y * r10 + b3z * r20
    m21 = b3x * r01 + b3y * r11 + b3z * r21
    ex, ey, ez = -0.5 * (m12 - m21), 0.5 * (m02 - m20), -0.5 * (m01 - m10)
    kp_att, kd_att = float(se3.kp_att), float(se3.kd_att)
    yaw_rate = float(flat_output["yaw_dot"])
    ox = -kp_att * ex - kd_att * wx
    oy = -kp_att * ey - kd_att * wy
    oz = -kp_att * ez - kd_att * (wz - yaw_rate)
    (i00, i01, i02), (i10, i11, i12), (i20, i21, i22) = se3.inertia.tolist()
    jx, jy, jz = i00 * wx + i01 * wy + i02 * wz, i10 * wx + i11 * wy + i12 * wz, i20 * wx + i21 * wy + i22 * wz
    tm = (
        u1,
        i00 * ox + i01 * oy + i02 * oz + (wy * jz - wz * jy),
        i10 * ox + i11 * oy + i12 * oz + (wz * jx - wx * jz),
        i20 * ox + i21 * oy + i22 * oz + (wx * jy - wy * jx),
    )
    k_eta = se3.k_eta
    speeds = []
    for row in se3.TM_to_f.tolist():
        f = sum(a * b for a, b in zip(row, tm)) / k_eta
        speeds.append(math.copysign(math.sqrt(abs(f)), f) if f != 0 else 0.0)
    return np.array(speeds)


class VelocityTracker:
    """Holds the position / yaw reference and turns a held command into rotorpy motor speeds.

    Args:
        quad_params: rotorpy vehicle parameter dict.
        position: start position (world, m); the reference starts there.
        yaw_rad: start yaw; the yaw reference starts there.
        leash_m: largest distance between the position reference and the vehicle.
        yaw_leash_rad: largest gap between the yaw reference and the vehicle's yaw.
        reference: call rotorpy's ``SE3Control.update`` instead of :func:`se3_motor_speeds`.
    """

    def __init__(
        self,
        quad_params: dict,
        position: np.ndarray,
        yaw_rad: float,
        leash_m: float = 0.3,
        yaw_leash_rad: float = 0.5,
        reference: bool = False,
    ) -> None:
        self._se3 = SE3Control(quad_params)
        self.position_ref = np.array(position, dtype=float)
        self.yaw_ref = float(yaw_rad)
        self.leash_m = leash_m
        self.yaw_leash_rad = yaw_leash_rad
        self.reference = reference

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
        if self.reference:
            speeds = self._se3.update(0.0, state, flat)["cmd_motor_speeds"]
        else:
            speeds = se3_motor_speeds(self._se3, state, flat)
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
