"""The Simulator: reproducibility, command semantics, driving styles, termination."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lnn_ros.runtime.records import ImageFrame, ImuSample
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.expert import expert_controller
from lnn_ros.sim.world.closed_loop import run_closed_loop
from lnn_ros.sim.world.config import Integrator, SimConfig, VehicleModel
from lnn_ros.sim.world.episode import Simulator

SHORT = SimConfig(duration_s=2.0)


def _fly(seed: int, variant: str = "nominal") -> tuple[list, object]:
    sim = Simulator(SHORT, variant, seed)
    expert = expert_controller(sim)
    events = []
    for event in sim.events():
        events.append(event)
        command = expert(event)
        if command is not None:
            sim.set_command(command)
    return events, sim.result()


def _same_event(a: ImuSample | ImageFrame, b: ImuSample | ImageFrame) -> bool:
    if type(a) is not type(b) or a.stamp_ns != b.stamp_ns:
        return False
    if isinstance(a, ImageFrame):
        return a.data == b.data
    return all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:]))


def test_same_seed_gives_the_identical_episode() -> None:
    events_a, result_a = _fly(7, "wind")
    events_b, result_b = _fly(7, "wind")
    assert len(events_a) == len(events_b) > 400
    assert all(_same_event(a, b) for a, b in zip(events_a, events_b))
    for field in result_a.trajectory._fields:
        assert np.array_equal(getattr(result_a.trajectory, field), getattr(result_b.trajectory, field))
    events_c, _ = _fly(8, "wind")
    assert not all(_same_event(a, c) for a, c in zip(events_a, events_c))


def test_episode_leaves_the_global_numpy_rng_alone() -> None:
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    _fly(1)
    assert np.array_equal(np.random.get_state()[1], before)


def test_variants_share_the_scene_of_a_seed() -> None:
    nominal, jitter = Simulator(SHORT, "nominal", 3), Simulator(SHORT, "jitter", 3)
    assert nominal.scene.start_position == jitter.scene.start_position
    assert nominal.scene.target == jitter.scene.target
    assert jitter.imu_timing.drop_prob > nominal.imu_timing.drop_prob


def test_a_future_command_starts_at_its_stamp() -> None:
    sim = Simulator(SHORT, seed=0)
    sim.set_command([1.0, 0.0, 0.0, 0.0], stamp_ns=500_000_000)
    sim.advance_to(400_000_000)
    assert sim.command.vx_mps == 0.0
    sim.advance_to(600_000_000)
    assert sim.command.vx_mps == 1.0
    traj = sim.result().trajectory
    switched = traj.t_s[np.argmax(traj.command[:, 0] > 0)]
    assert switched == pytest.approx(0.5 + 1e-9, abs=0.006) and switched > 0.5


def test_commands_are_clipped_and_invalid_ones_rejected() -> None:
    sim = Simulator(SHORT, seed=0)
    sim.set_command((3.0, 4.0, 0.0, -9.0))
    command = sim.command
    assert math.hypot(command.vx_mps, command.vy_mps) == pytest.approx(SHORT.max_speed_mps)
    assert command.vx_mps / command.vy_mps == pytest.approx(0.75)
    assert command.yaw_rate_rps == -SHORT.max_yaw_rate_rps
    with pytest.raises(SimError, match="4 finite numbers"):
        sim.set_command((1.0, float("nan"), 0.0, 0.0))
    with pytest.raises(SimError, match="4 finite numbers"):
        sim.set_command((1.0, 0.0, 0.0))


def test_without_fresh_commands_the_vehicle_falls_back_to_hover() -> None:
    sim = Simulator(SHORT, seed=0)
    sim.set_command((0.5, 0.0, 0.0, 0.0))
    sim.advance_to(400_000_000)
    assert sim.command.vx_mps == 0.5
    sim.advance_to(700_000_000)
    assert sim.command.vx_mps == 0.0
    assert sim.result().command_timeouts == 1


def test_advance_to_refuses_to_go_back() -> None:
    sim = Simulator(SHORT, seed=0)
    sim.advance_to(100_000_000)
    with pytest.raises(SimError, match="back in time"):
        sim.advance_to(50_000_000)


def test_advancing_in_wall_clock_chunks_gives_the_same_stream() -> None:
    sim = Simulator(SHORT, seed=2)
    by_event = []
    while not sim.done:
        expected = sim.next_stamp_ns
        event = sim.next_event()
        if event is not None:
            assert event.stamp_ns == expected == sim.now_ns
            by_event.append(event)
    sim = Simulator(SHORT, seed=2)
    by_chunk = []
    t = 0
    while not sim.done:
        t += 7_300_000  # e.g. a ROS timer
        by_chunk.extend(sim.advance_to(t))
    assert [e.stamp_ns for e in by_chunk] == [e.stamp_ns for e in by_event]
    imu_a = np.array([e.linear_acceleration for e in by_event if isinstance(e, ImuSample)])
    imu_b = np.array([e.linear_acceleration for e in by_chunk if isinstance(e, ImuSample)])
    np.testing.assert_allclose(imu_a, imu_b, atol=1e-6)  # only the physics step cuts differ


def test_velocity_commands_live_in_the_heading_frame() -> None:
    sim = Simulator(SimConfig(duration_s=3.0), seed=6)
    yaw0 = sim.state.yaw_rad
    start = sim.state.position
    sim.set_command((1.0, 0.0, 0.0, 0.0))
    for t_ms in range(100, 2001, 100):
        sim.advance_to(t_ms * 1_000_000)
        sim.set_command((1.0, 0.0, 0.0, 0.0))
    moved = sim.state.position - start
    assert math.atan2(moved[1], moved[0]) == pytest.approx(yaw0, abs=0.05)
    assert np.linalg.norm(moved[:2]) == pytest.approx(1.75, abs=0.25)  # ~2 s at 1 m/s minus the ramp-up
    for t_ms in range(2100, 3001, 100):
        sim.set_command((0.0, 0.0, 0.0, 0.8))
        sim.advance_to(t_ms * 1_000_000)
    turned = (sim.state.yaw_rad - yaw0 + math.pi) % (2 * math.pi) - math.pi
    assert turned == pytest.approx(0.8 * 1.0, abs=0.15)


def test_descending_into_the_ground_is_a_crash_that_ends_the_episode() -> None:
    sim = Simulator(SimConfig(duration_s=5.0), seed=1)
    while not sim.done:
        sim.set_command((0.0, 0.0, -1.5, 0.0))
        sim.advance_to(sim.now_ns + 50_000_000)
    result = sim.result()
    assert result.crashed and "ground" in result.crash_reason
    assert result.duration_s < 2.0
    assert sim.advance_to(sim.now_ns + 10_000_000) == []
    assert sim.next_event() is None


def test_stop_on_success_ends_when_the_target_is_reached() -> None:
    sim = Simulator(SimConfig(duration_s=10.0, stop_on_success=True), seed=0)
    result = run_closed_loop(sim, expert_controller(sim))
    assert result.reached and not result.crashed
    assert result.duration_s == pytest.approx(result.time_to_reach_s)
    assert result.duration_s < 8.0
    assert result.min_distance_m <= SimConfig().success_radius_m


@pytest.mark.parametrize(("vehicle", "tolerance_m"), [(VehicleModel.CRAZYFLIE, 1e-7), (VehicleModel.HUMMINGBIRD, 1e-3)])
def test_fixed_step_rk4_tracks_rotorpys_adaptive_rk45(vehicle: VehicleModel, tolerance_m: float) -> None:
    trajectories = []
    for integrator in (Integrator.RK4, Integrator.RK45):
        sim = Simulator(SimConfig(duration_s=1.5, vehicle=vehicle, integrator=integrator), "wind", seed=1)
        trajectories.append(run_closed_loop(sim, expert_controller(sim)).trajectory)
    rk4, rk45 = trajectories
    assert np.array_equal(rk4.t_s, rk45.t_s)
    assert np.abs(rk4.position - rk45.position).max() < tolerance_m
    assert np.linalg.norm(rk4.position[-1] - rk4.position[0]) > 0.5  # it did fly
