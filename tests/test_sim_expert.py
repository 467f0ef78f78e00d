"""The privileged expert: limits, direction, and that it reaches the target in closed loop."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.expert import Expert, ExpertConfig, expert_controller, fly_expert
from lnn_ros.sim.world.closed_loop import run_closed_loop
from lnn_ros.sim.world.config import SimConfig, VehicleModel
from lnn_ros.sim.world.episode import Simulator, VehicleState
from lnn_ros.sim.world.frames import quat_from_yaw

CONFIG = SimConfig(duration_s=6.0)


def _state(position: tuple[float, float, float], yaw: float) -> VehicleState:
    return VehicleState(np.array(position), np.zeros(3), quat_from_yaw(yaw), np.zeros(3), yaw)


def test_expert_commands_are_saturated_and_turn_toward_the_target() -> None:
    expert = Expert(np.array([10.0, 10.0, 1.0]), camera_pitch_rad=0.0, config=ExpertConfig())
    command = expert.command(_state((0.0, 0.0, 1.0), yaw=0.0), 0)  # target 45 degrees to the left
    assert math.hypot(command.vx_mps, command.vy_mps) <= 2.0 + 1e-9
    assert command.yaw_rate_rps == pytest.approx(1.5)
    assert command.vy_mps > 0  # left, in the heading frame
    behind = expert.command(_state((0.0, 0.0, 1.0), yaw=-math.pi * 0.75), 0)  # target behind: turn, barely move
    assert math.hypot(behind.vx_mps, behind.vy_mps) <= 0.2 * 2.0 + 1e-9
    at_standoff = expert.command(_state((10.0 - 0.7, 10.0, 1.0), yaw=0.0), 0)
    assert np.allclose(at_standoff.heading_array()[:3], 0.0, atol=1e-9)
    with pytest.raises(SimError, match="standoff_m"):
        ExpertConfig(standoff_m=0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expert_reaches_the_target_in_nominal_episodes(seed: int) -> None:
    result = fly_expert(CONFIG, "nominal", seed)
    assert result.reached, result
    assert not result.crashed
    assert result.final_distance_m < CONFIG.success_radius_m
    start_distance = np.linalg.norm(result.start_position - result.target_position)
    assert start_distance > 2.0


def test_expert_reaches_the_target_in_wind_with_latency_and_on_the_heavier_vehicle() -> None:
    assert fly_expert(CONFIG, "wind", 3).reached
    sim = Simulator(dataclasses.replace(CONFIG, vehicle=VehicleModel.HUMMINGBIRD), "nominal", 4)
    assert run_closed_loop(sim, expert_controller(sim), latency_s=0.05).reached


def test_a_controller_that_never_commands_does_not_reach() -> None:
    sim = Simulator(SimConfig(duration_s=2.0), "nominal", 0)
    result = run_closed_loop(sim, lambda event: None)
    assert not result.reached
    assert result.final_distance_m > 2.0
    assert result.commands_received == 0
