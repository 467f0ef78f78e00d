"""The float re-implementations of rotorpy's dynamics, SE(3) controller and IMU against rotorpy itself.

Each compares with rotorpy's own function called on the same object (``Multirotor._s_dot_fn``,
``SE3Control.update``, ``Imu.measurement``), so a wrong sign or a dropped term fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from lnn_ros.runtime.records import Command, ImuSample, SensorRecord
from lnn_ros.sim.expert.expert import expert_controller
from lnn_ros.sim.world._rotorpy import CRAZYFLIE_PARAMS, HUMMINGBIRD_PARAMS, Imu, Multirotor, SE3Control
from lnn_ros.sim.world.closed_loop import run_closed_loop
from lnn_ros.sim.world.config import SimConfig, VehicleModel
from lnn_ros.sim.world.episode import EpisodeResult, Simulator
from lnn_ros.sim.world.flight_controller import se3_motor_speeds
from lnn_ros.sim.world.sensors import SeededImu
from lnn_ros.sim.world.vehicle import FixedStepMultirotor

# Every term switched on: flapping, translational lift, products of inertia, rotors off the CoM plane.
ALL_TERMS_PARAMS = dict(
    HUMMINGBIRD_PARAMS,
    k_flap=2e-5,
    k_h=5e-3,
    Ixy=2e-4,
    Ixz=-1e-4,
    Iyz=3e-4,
    rotor_pos={key: value + np.array([0.0, 0.0, 0.02]) for key, value in HUMMINGBIRD_PARAMS["rotor_pos"].items()},
)
PARAMS = {"crazyflie": CRAZYFLIE_PARAMS, "hummingbird": HUMMINGBIRD_PARAMS, "all_terms": ALL_TERMS_PARAMS}
BLOCKS = {
    "x_dot": slice(0, 3),
    "v_dot": slice(3, 6),
    "q_dot": slice(6, 10),
    "w_dot": slice(10, 13),
    "rotor": slice(16, 20),
}
RTOL = 1e-10


def _quaternion(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def _random_state(rng: np.random.Generator, params: dict, z: float | None = None) -> dict:
    return {
        "x": np.array([*rng.uniform(-3, 3, size=2), rng.uniform(0.5, 3) if z is None else z]),
        "v": rng.normal(scale=2.0, size=3),
        "q": _quaternion(rng),
        "w": rng.normal(scale=3.0, size=3),
        "wind": rng.normal(scale=2.0, size=3),
        "rotor_speeds": rng.uniform(0.2, 1.0, size=4) * params["rotor_speed_max"],
    }


def _multirotor(
    params: dict, aero: bool = True, enable_ground: bool = False, reference: bool = False
) -> FixedStepMultirotor:
    return FixedStepMultirotor(
        params,
        np.random.default_rng(0),
        reference,
        control_abstraction="cmd_motor_speeds",
        aero=aero,
        enable_ground=enable_ground,
    )


def _assert_blocks_close(fast: np.ndarray, ref: np.ndarray) -> None:
    """Each block of the derivative within RTOL of the block's size."""
    for name, block in BLOCKS.items():
        gap = float(np.abs(fast[block] - ref[block]).max())
        assert gap <= RTOL * float(np.abs(ref[block]).max()), f"{name}: fast {fast[block]} vs rotorpy {ref[block]}"
    assert np.array_equal(fast[13:16], ref[13:16])  # the wind has no dynamics here


@pytest.mark.parametrize("aero", [True, False])
@pytest.mark.parametrize("model", list(PARAMS))
def test_derivative_equals_rotorpys(model: str, aero: bool) -> None:
    params = PARAMS[model]
    vehicle = _multirotor(params, aero=aero)
    rng = np.random.default_rng(7)
    for _ in range(200):
        s = Multirotor._pack_state(_random_state(rng, params))
        s[6:10] *= rng.uniform(0.98, 1.02)  # Runge-Kutta stages see non-unit quaternions
        cmd = rng.uniform(0.0, 1.0, size=4) * params["rotor_speed_max"]
        _assert_blocks_close(vehicle._s_dot_fn(0.0, s, cmd), Multirotor._s_dot_fn(vehicle, 0.0, s, cmd))


@pytest.mark.parametrize("model", list(PARAMS))
def test_derivative_on_the_ground_equals_rotorpys(model: str) -> None:
    params = PARAMS[model]
    vehicle = _multirotor(params, enable_ground=True)
    rng = np.random.default_rng(8)
    pressed = 0
    for rotor_scale in (0.05, 0.1, 1.0):  # too weak to lift (the ground pushes back) ... full thrust
        for _ in range(50):
            state = _random_state(rng, params, z=float(rng.uniform(-0.01, 0.001)))
            state["rotor_speeds"] *= rotor_scale
            s = Multirotor._pack_state(state)
            ref = Multirotor._s_dot_fn(vehicle, 0.0, s, state["rotor_speeds"])
            fast = vehicle._s_dot_fn(0.0, s, state["rotor_speeds"])
            pressed += abs(ref[5]) < 1e-9
            np.testing.assert_allclose(fast[5], ref[5], rtol=0, atol=1e-12)  # v_dot z: ~0 when pressed down
            fast[5] = ref[5] = 1.0
            _assert_blocks_close(fast, ref)
    assert pressed > 0  # the normal force was exercised


@pytest.mark.parametrize("model", list(PARAMS))
def test_statedot_and_step_equal_rotorpys_functions(model: str) -> None:
    params = PARAMS[model]
    fast, ref = _multirotor(params), _multirotor(params, reference=True)
    rng = np.random.default_rng(9)
    for _ in range(50):
        state = _random_state(rng, params)
        control = {"cmd_motor_speeds": rng.uniform(-0.2, 1.2, size=4) * params["rotor_speed_max"]}  # some get clipped
        a, b = fast.statedot(state, control, 0.0), ref.statedot(state, control, 0.0)
        for key in ("vdot", "wdot"):
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=RTOL * np.abs(b[key]).max())
        a, b = fast.step(state, control, 0.004), ref.step(state, control, 0.004)
        for key in ("x", "v", "q", "w", "rotor_speeds"):
            np.testing.assert_allclose(a[key], b[key], rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("model", list(PARAMS))
def test_controller_equals_rotorpys_se3_update(model: str) -> None:
    se3 = SE3Control(PARAMS[model])
    rng = np.random.default_rng(10)
    for _ in range(300):
        state = {"x": rng.normal(size=3), "v": rng.normal(size=3), "q": _quaternion(rng), "w": rng.normal(size=3)}
        flat = {
            "x": state["x"] + rng.normal(scale=0.3, size=3),
            "x_dot": rng.normal(size=3),
            "x_ddot": rng.normal(size=3),
            "x_dddot": np.zeros(3),
            "x_ddddot": np.zeros(3),
            "yaw": float(rng.uniform(-np.pi, np.pi)),
            "yaw_dot": float(rng.normal()),
        }
        ref = se3.update(0.0, state, flat)["cmd_motor_speeds"]
        fast = se3_motor_speeds(se3, state, flat)
        gap = float(np.abs(fast - ref).max() / np.abs(ref).max())
        assert gap <= RTOL, f"fast {fast} vs rotorpy {ref}"


def _imu_kwargs(rng: np.random.Generator, walk: float) -> dict:
    return {
        "accelerometer_params": {
            "initial_bias": rng.normal(scale=0.05, size=3),
            "noise_density": np.full(3, 0.02),
            "random_walk": np.full(3, walk),
        },
        "gyroscope_params": {
            "initial_bias": rng.normal(scale=0.005, size=3),
            "noise_density": np.full(3, 0.002),
            "random_walk": np.full(3, walk / 10),
        },
        "sampling_rate": 200.0,
    }


def test_imu_reading_equals_rotorpys_noiseless_measurement() -> None:
    rng = np.random.default_rng(11)
    kwargs = _imu_kwargs(rng, walk=0.0)  # rotorpy's own Imu walks with numpy's global RNG: no walk here
    fast, rotorpy_imu = SeededImu(np.random.default_rng(0), **kwargs), Imu(**kwargs)
    saved = np.random.get_state()
    try:
        for _ in range(200):
            state = {"x": rng.normal(size=3), "v": rng.normal(size=3), "q": _quaternion(rng), "w": rng.normal(size=3)}
            acceleration = {"vdot": rng.normal(scale=5.0, size=3), "wdot": rng.normal(scale=20.0, size=3)}
            a = fast.measurement(state, acceleration, with_noise=False)
            b = rotorpy_imu.measurement(state, acceleration, with_noise=False)
            np.testing.assert_allclose(a["accel"], b["accel"], rtol=0, atol=RTOL * np.abs(b["accel"]).max())
            np.testing.assert_array_equal(a["gyro"], b["gyro"])
    finally:
        np.random.set_state(saved)


def test_imu_draws_the_same_noise_and_walk_as_the_reference_path() -> None:
    rng = np.random.default_rng(12)
    kwargs = _imu_kwargs(rng, walk=0.01)
    fast = SeededImu(np.random.default_rng(5), **kwargs)
    ref = SeededImu(np.random.default_rng(5), reference=True, **kwargs)
    for i in range(100):
        state = {"x": rng.normal(size=3), "v": rng.normal(size=3), "q": _quaternion(rng), "w": rng.normal(size=3)}
        acceleration = {"vdot": rng.normal(scale=5.0, size=3), "wdot": rng.normal(scale=20.0, size=3)}
        with_noise = i % 3 != 0
        a, b = fast.measurement(state, acceleration, with_noise), ref.measurement(state, acceleration, with_noise)
        np.testing.assert_allclose(a["accel"], b["accel"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(a["gyro"], b["gyro"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(fast.accel_bias, ref.accel_bias, rtol=0, atol=1e-15)
    assert not np.allclose(fast.accel_bias, kwargs["accelerometer_params"]["initial_bias"])  # the bias walked


def _fly_expert(config: SimConfig, reference: bool) -> tuple[EpisodeResult, list[ImuSample]]:
    sim = Simulator(config, "wind", 3, reference_physics=reference)
    expert = expert_controller(sim)
    imu: list[ImuSample] = []

    def controller(event: SensorRecord) -> Command | None:
        if isinstance(event, ImuSample):
            imu.append(event)
        return expert(event)

    return run_closed_loop(sim, controller), imu


@pytest.mark.parametrize(("vehicle", "duration_s"), [(VehicleModel.CRAZYFLIE, 10.0), (VehicleModel.HUMMINGBIRD, 2.0)])
def test_expert_episode_flies_the_same_trajectory_as_rotorpys_functions(
    vehicle: VehicleModel, duration_s: float
) -> None:
    config = SimConfig(vehicle=vehicle, duration_s=duration_s)
    (fast, fast_imu), (ref, ref_imu) = _fly_expert(config, reference=False), _fly_expert(config, reference=True)
    assert np.array_equal(fast.trajectory.t_s, ref.trajectory.t_s)
    assert np.abs(fast.trajectory.position - ref.trajectory.position).max() < 1e-6
    assert np.abs(fast.trajectory.yaw_rad - ref.trajectory.yaw_rad).max() < 1e-6
    assert [s.stamp_ns for s in fast_imu] == [s.stamp_ns for s in ref_imu]
    accel_gap = max(
        float(np.abs(a.linear_acceleration - b.linear_acceleration).max()) for a, b in zip(fast_imu, ref_imu)
    )
    assert accel_gap < 1e-6
    assert np.linalg.norm(fast.trajectory.position[-1] - fast.trajectory.position[0]) > 0.5  # it did fly
