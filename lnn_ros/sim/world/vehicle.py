"""The true vehicle: rotorpy's Multirotor dynamics, the velocity tracker and the wind."""

from __future__ import annotations

import math

import numpy as np

from lnn_ros.sim.world._rotorpy import CRAZYFLIE_PARAMS, HUMMINGBIRD_PARAMS, Multirotor
from lnn_ros.sim.world.config import Integrator, VehicleModel
from lnn_ros.sim.world.flight_controller import VelocityTracker
from lnn_ros.sim.world.frames import quat_from_yaw, rotation_entries, yaw_of_quat
from lnn_ros.sim.world.wind import WindProfile

VEHICLE_PARAMS: dict[VehicleModel, dict] = {
    VehicleModel.CRAZYFLIE: CRAZYFLIE_PARAMS,
    VehicleModel.HUMMINGBIRD: HUMMINGBIRD_PARAMS,
}

# Radius of the sphere that must not touch the target (arm length plus propeller).
VEHICLE_RADIUS_M: dict[VehicleModel, float] = {
    VehicleModel.CRAZYFLIE: 0.07,
    VehicleModel.HUMMINGBIRD: 0.27,
}


class FixedStepMultirotor(Multirotor):
    """rotorpy's Multirotor with ``step`` integrated by one classic RK4 step instead of solve_ivp.

    Same motor clipping, quaternion renormalisation, ground handling and motor noise as
    ``Multirotor.step``; only the integrator differs, and the motor noise is drawn from ``rng``
    instead of numpy's global RNG. Measured over a 6 s closed-loop episode in wind (steps <= 5 ms):
    positions within 1e-8 m of rotorpy's RK45 for the Crazyflie and 0.5 mm for the Hummingbird
    (5 ms motors), at ~1.6x the speed (both on rotorpy's own derivative).

    The derivative is rotorpy's ``_s_dot_fn`` / ``compute_body_wrench`` rewritten on Python
    floats (no scipy ``Rotation``, no 3-vector numpy calls), term for term; with ``b`` the body
    airspeed ``R^T (v - wind)``, ``l_i = b + w x r_i`` the airspeed at rotor i (speed ``o_i``)::

        F = sum_i (-o_i K_d l_i + (0, 0, k_eta o_i^2 + k_h (l_ix^2 + l_iy^2))) - |b| C_D b
        M = sum_i (r_i x F_i - k_flap o_i (l_iy, -l_ix, 0) + (0, 0, dir_i k_m o_i^2))
        v' = (m g + R F [+ ground normal force]) / m,   w' = J^-1 (M - w x J w),
        q' = G(q)^T w / 2,   o' = (o_cmd - o) / tau_m

    ``tests/test_sim_fast_physics.py`` checks it against rotorpy's own function.

    Args:
        quad_params: rotorpy vehicle parameter dict.
        rng: draws the motor noise.
        reference: step with rotorpy's own ``_s_dot_fn`` (slow; for parity checks and benchmarks).
        **kwargs: ``Multirotor`` options.
    """

    def __init__(self, quad_params: dict, rng: np.random.Generator, reference: bool = False, **kwargs: object) -> None:
        super().__init__(quad_params, **kwargs)
        self._rng = rng
        self.reference = reference
        self._rotors = [
            (float(rx), float(ry), float(rz), float(direction) * self.k_m)
            for (rx, ry, rz), direction in zip(self.rotor_geometry, self.rotor_dir)
        ]
        self._inertia_entries = tuple(float(v) for v in self.inertia.ravel())
        self._inv_inertia_entries = tuple(float(v) for v in self.inv_inertia.ravel())

    def _s_dot_fn(self, t: float, s: np.ndarray, cmd_rotor_speeds: np.ndarray) -> np.ndarray:
        """rotorpy's state derivative (same signature); rotorpy's own when ``reference``."""
        if self.reference:
            return Multirotor._s_dot_fn(self, t, s, cmd_rotor_speeds)
        return np.array(self._derivative(s.tolist(), np.asarray(cmd_rotor_speeds, dtype=float).tolist()))

    def _derivative(self, s: list[float], cmd: list[float]) -> list[float]:
        """d/dt of the packed state ``[x, v, q, w, wind, rotor_speeds]`` for clipped ``cmd``."""
        vx, vy, vz = s[3], s[4], s[5]
        qx, qy, qz, qw = s[6], s[7], s[8], s[9]
        wx, wy, wz = s[10], s[11], s[12]
        speeds = s[16:]
        r00, r01, r02, r10, r11, r12, r20, r21, r22 = rotation_entries(qx, qy, qz, qw)
        ax, ay, az = vx - s[13], vy - s[14], vz - s[15]
        bx = r00 * ax + r10 * ay + r20 * az  # body airspeed R^T (v - wind)
        by = r01 * ax + r11 * ay + r21 * az
        bz = r02 * ax + r12 * ay + r22 * az
        aero = self.aero
        k_eta, k_h, k_d, k_z, k_flap = self.k_eta, self.k_h, self.k_d, self.k_z, self.k_flap
        fx = fy = fz = mx = my = mz = 0.0
        for (rx, ry, rz, yaw_coeff), o in zip(self._rotors, speeds):
            thrust = k_eta * o * o
            if aero:
                lx = bx + (wy * rz - wz * ry)  # local airspeed b + w x r
                ly = by + (wz * rx - wx * rz)
                lz = bz + (wx * ry - wy * rx)
                hx, hy, hz = -o * (k_d * lx), -o * (k_d * ly), -o * (k_z * lz)
                thrust += k_h * (lx * lx + ly * ly)
                mx -= k_flap * o * ly
                my += k_flap * o * lx
            else:
                hx = hy = hz = 0.0
            tz = thrust + hz
            fx += hx
            fy += hy
            fz += tz
            mx += ry * tz - rz * hy
            my += rz * hx - rx * tz
            mz += rx * hy - ry * hx + yaw_coeff * o * o
        if aero:
            airspeed = math.sqrt(bx * bx + by * by + bz * bz)
            fx -= airspeed * (self.c_Dx * bx)
            fy -= airspeed * (self.c_Dy * by)
            fz -= airspeed * (self.c_Dz * bz)
        wfx = r00 * fx + r01 * fy + r02 * fz  # world force R F
        wfy = r10 * fx + r11 * fy + r12 * fz
        wfz = r20 * fx + r21 * fy + r22 * fz
        weight_z = -self.mass * self.g
        if self._enable_ground and self._on_ground({"x": s[0:3]}) and weight_z + wfz < 0:
            wfz += -(weight_z + wfz)  # the ground's normal force cancels the net downward force
        mass = self.mass
        i00, i01, i02, i10, i11, i12, i20, i21, i22 = self._inertia_entries
        jx = i00 * wx + i01 * wy + i02 * wz
        jy = i10 * wx + i11 * wy + i12 * wz
        jz = i20 * wx + i21 * wy + i22 * wz
        ex = mx - (wy * jz - wz * jy)  # M - w x J w
        ey = my - (wz * jx - wx * jz)
        ez = mz - (wx * jy - wy * jx)
        n00, n01, n02, n10, n11, n12, n20, n21, n22 = self._inv_inertia_entries
        inv_tau = 1 / self.tau_m
        return [
            vx, vy, vz,
            wfx / mass, wfy / mass, (weight_z + wfz) / mass,
            0.5 * (qw * wx - qz * wy + qy * wz),
            0.5 * (qz * wx + qw * wy - qx * wz),
            0.5 * (-qy * wx + qx * wy + qw * wz),
            0.5 * (-qx * wx - qy * wy - qz * wz),
            n00 * ex + n01 * ey + n02 * ez,
            n10 * ex + n11 * ey + n12 * ez,
            n20 * ex + n21 * ey + n22 * ez,
            0.0, 0.0, 0.0,
            *(inv_tau * (c - o) for c, o in zip(cmd, speeds)),
        ]  # fmt: skip

    def _clipped_command(self, state: dict, control: dict) -> list[float]:
        low, high = self.rotor_speed_min, self.rotor_speed_max
        return [
            min(max(c, low), high) for c in np.asarray(self.get_cmd_motor_speeds(state, control), dtype=float).tolist()
        ]

    def statedot(self, state: dict, control: dict, t_step: float) -> dict:
        """rotorpy's ``{'vdot', 'wdot'}`` at ``state`` (world linear, body angular acceleration)."""
        if self.reference:
            return Multirotor.statedot(self, state, control, t_step)
        s_dot = self._derivative(Multirotor._pack_state(state).tolist(), self._clipped_command(state, control))
        return {"vdot": np.array(s_dot[3:6]), "wdot": np.array(s_dot[10:13])}

    def step(self, state: dict, control: dict, t_step: float) -> dict:
        """Integrate the dynamics over ``t_step`` seconds with the control held constant."""
        h = t_step
        if self.reference:
            cmd = np.clip(self.get_cmd_motor_speeds(state, control), self.rotor_speed_min, self.rotor_speed_max)
            s = Multirotor._pack_state(state)
            k1 = self._s_dot_fn(0.0, s, cmd)
            k2 = self._s_dot_fn(0.0, s + 0.5 * h * k1, cmd)
            k3 = self._s_dot_fn(0.0, s + 0.5 * h * k2, cmd)
            k4 = self._s_dot_fn(0.0, s + h * k3, cmd)
            s_next = s + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        else:  # the same arithmetic on Python floats
            cmd_list = self._clipped_command(state, control)
            y = Multirotor._pack_state(state).tolist()
            half, sixth = 0.5 * h, h / 6.0
            d1 = self._derivative(y, cmd_list)
            d2 = self._derivative([a + half * b for a, b in zip(y, d1)], cmd_list)
            d3 = self._derivative([a + half * b for a, b in zip(y, d2)], cmd_list)
            d4 = self._derivative([a + h * b for a, b in zip(y, d3)], cmd_list)
            s_next = np.array([a + sixth * (b1 + 2 * b2 + 2 * b3 + b4) for a, b1, b2, b3, b4 in zip(y, d1, d2, d3, d4)])
        state = Multirotor._unpack_state(s_next)
        state["q"] = state["q"] / np.linalg.norm(state["q"])
        if self._enable_ground and self._on_ground(state):
            state = self._handle_vehicle_on_ground(state)
        state["rotor_speeds"] += self._rng.normal(scale=np.abs(self.motor_noise), size=(self.num_rotors,))
        state["rotor_speeds"] = np.clip(state["rotor_speeds"], self.rotor_speed_min, self.rotor_speed_max)
        return state


class Vehicle:
    """One quadrotor in the air: true state, held-command stepping, accelerations for the IMU.

    Args:
        model: rotorpy parameter set.
        integrator: physics integrator.
        position: start position (world, m); starts hovering there.
        yaw_rad: start yaw.
        wind: wind profile or None for calm air.
        rng: draws motor noise (RK4 only; rotorpy's RK45 step draws it from numpy's global RNG,
            zero with the shipped parameter sets).
        reference: fly rotorpy's own derivative and SE(3) controller instead of their float
            re-implementations (same physics, slower; for parity checks and benchmarks).
    """

    def __init__(
        self,
        model: VehicleModel,
        integrator: Integrator,
        position: np.ndarray,
        yaw_rad: float,
        wind: WindProfile | None = None,
        rng: np.random.Generator | None = None,
        reference: bool = False,
    ) -> None:
        params = dict(VEHICLE_PARAMS[model])
        hover_speed = float(np.sqrt(params["mass"] * 9.81 / (params["num_rotors"] * params["k_eta"])))
        self.state: dict = {
            "x": np.array(position, dtype=float),
            "v": np.zeros(3),
            "q": quat_from_yaw(yaw_rad),
            "w": np.zeros(3),
            "wind": np.zeros(3),
            "rotor_speeds": np.full(params["num_rotors"], hover_speed),
        }
        options = {"initial_state": self.state, "control_abstraction": "cmd_motor_speeds", "aero": True}
        if integrator is Integrator.RK4:
            rng = np.random.default_rng(0) if rng is None else rng
            self.multirotor: Multirotor = FixedStepMultirotor(params, rng, reference, **options)
        else:
            self.multirotor = Multirotor(params, **options)
        self.tracker = VelocityTracker(params, self.state["x"], yaw_rad, reference=reference)
        self.wind = wind
        self.radius_m = VEHICLE_RADIUS_M[model]
        self._control = {"cmd_motor_speeds": self.state["rotor_speeds"].copy()}
        if wind is not None:
            self.state["wind"] = np.asarray(wind.update(0.0, self.state["x"]), dtype=float)

    def step(self, t_s: float, dt_s: float, command: np.ndarray) -> None:
        """Advance the true state from ``t_s`` by ``dt_s`` holding ``command`` ([vx, vy, vz, yaw_rate])."""
        if self.wind is not None:
            self.state["wind"] = np.asarray(self.wind.update(t_s, self.state["x"]), dtype=float)
        self._control = {"cmd_motor_speeds": self.tracker.motor_speeds(self.state, command, dt_s)}
        self.state = self.multirotor.step(self.state, self._control, dt_s)

    def acceleration(self) -> dict:
        """rotorpy's ``{'vdot', 'wdot'}`` at the current state (world linear, body angular)."""
        return self.multirotor.statedot(self.state, self._control, 0.0)

    @property
    def position(self) -> np.ndarray:
        """World position, m."""
        return self.state["x"]

    @property
    def velocity(self) -> np.ndarray:
        """World velocity, m/s."""
        return self.state["v"]

    @property
    def quaternion(self) -> np.ndarray:
        """Body-to-world attitude (x, y, z, w)."""
        return self.state["q"]

    @property
    def yaw(self) -> float:
        """Yaw, rad in (-pi, pi]."""
        return yaw_of_quat(self.state["q"])
