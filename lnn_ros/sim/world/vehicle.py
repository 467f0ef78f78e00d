"""The true vehicle: rotorpy's Multirotor dynamics, the velocity tracker and the wind."""

from __future__ import annotations

import numpy as np

from lnn_ros.sim.world._rotorpy import CRAZYFLIE_PARAMS, HUMMINGBIRD_PARAMS, Multirotor
from lnn_ros.sim.world.config import Integrator, VehicleModel
from lnn_ros.sim.world.flight_controller import VelocityTracker
from lnn_ros.sim.world.frames import quat_from_yaw, yaw_of_quat
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

    Same derivative (``_s_dot_fn``), same motor clipping, quaternion renormalisation, ground
    handling and motor noise as ``Multirotor.step``; only the integrator differs, and the motor
    noise is drawn from ``rng`` instead of numpy's global RNG. Measured over a 6 s closed-loop
    episode in wind (steps <= 5 ms): positions within 1e-8 m of rotorpy's RK45 for the Crazyflie
    and 0.5 mm for the Hummingbird (5 ms motors), at ~1.6x the speed.
    """

    def __init__(self, quad_params: dict, rng: np.random.Generator, **kwargs: object) -> None:
        super().__init__(quad_params, **kwargs)
        self._rng = rng

    def step(self, state: dict, control: dict, t_step: float) -> dict:
        """Integrate the dynamics over ``t_step`` seconds with the control held constant."""
        cmd = np.clip(self.get_cmd_motor_speeds(state, control), self.rotor_speed_min, self.rotor_speed_max)
        s = Multirotor._pack_state(state)
        h = t_step
        k1 = self._s_dot_fn(0.0, s, cmd)
        k2 = self._s_dot_fn(0.0, s + 0.5 * h * k1, cmd)
        k3 = self._s_dot_fn(0.0, s + 0.5 * h * k2, cmd)
        k4 = self._s_dot_fn(0.0, s + h * k3, cmd)
        state = Multirotor._unpack_state(s + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4))
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
    """

    def __init__(
        self,
        model: VehicleModel,
        integrator: Integrator,
        position: np.ndarray,
        yaw_rad: float,
        wind: WindProfile | None = None,
        rng: np.random.Generator | None = None,
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
            self.multirotor: Multirotor = FixedStepMultirotor(params, rng, **options)
        else:
            self.multirotor = Multirotor(params, **options)
        self.tracker = VelocityTracker(params, self.state["x"], yaw_rad)
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
