"""The privileged expert: knows the true state and the target, flies to a standoff point facing it.

With p the position, psi the yaw, c the target centre, u the unit horizontal vector from the
target toward the vehicle, d the standoff and theta the camera tilt:

    g      = (c_xy - d u,  c_z + d tan(theta))         standoff point, target centred in the image
    e_psi  = wrap(atan2((c - p)_y, (c - p)_x) - psi)   bearing error to the target
    v_w    = sat_vmax(k_p (g - p)) * s(e_psi),  s = clip(cos(e_psi), s_min, 1)   (slow while turning)
    r      = sat_rmax(k_psi e_psi)
    command = (R_z(-psi) v_w, r)                        heading-frame velocity + yaw rate

Its commands label demonstrations; the learned policy must infer from the camera and IMU what
the expert reads from the true state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lnn_ros.runtime.records import Command, ImuSample, SensorRecord
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.world.closed_loop import run_closed_loop
from lnn_ros.sim.world.config import ScenarioVariant, SimConfig
from lnn_ros.sim.world.episode import EpisodeResult, Simulator, VehicleState
from lnn_ros.sim.world.frames import world_to_heading, wrap_angle


@dataclass(frozen=True)
class ExpertConfig:
    """Expert gains and limits.

    Attributes:
        standoff_m: horizontal distance to hold from the target centre.
        position_gain: k_p, 1/s.
        yaw_gain: k_psi, 1/s.
        max_speed_mps: speed limit (norm of the velocity).
        max_yaw_rate_rps: yaw rate limit.
        min_turn_scale: s_min, the smallest speed scale while the target is off to the side.
    """

    standoff_m: float = 0.7
    position_gain: float = 1.2
    yaw_gain: float = 2.5
    max_speed_mps: float = 2.0
    max_yaw_rate_rps: float = 1.5
    min_turn_scale: float = 0.2

    def __post_init__(self) -> None:
        for name in ("standoff_m", "position_gain", "yaw_gain", "max_speed_mps", "max_yaw_rate_rps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SimError(f"ExpertConfig.{name} must be a finite number > 0, got {value!r}.")
        if not 0 <= self.min_turn_scale <= 1:
            raise SimError(f"ExpertConfig.min_turn_scale must be in [0, 1], got {self.min_turn_scale!r}.")


class Expert:
    """Velocity commands toward the standoff point in front of the target.

    Args:
        target_position: target centre (world, m).
        camera_pitch_rad: camera tilt below body x (the standoff point sits higher by d tan(tilt)).
        config: gains and limits.
    """

    def __init__(
        self, target_position: np.ndarray, camera_pitch_rad: float, config: ExpertConfig = ExpertConfig()
    ) -> None:
        self.target = np.asarray(target_position, dtype=float)
        self.config = config
        self._height_offset = config.standoff_m * math.tan(camera_pitch_rad)

    def command(self, state: VehicleState, stamp_ns: int) -> Command:
        """The command for the given true state, stamped ``stamp_ns`` (the sensor message it answers)."""
        cfg = self.config
        to_target = self.target - state.position
        horizontal = float(np.hypot(to_target[0], to_target[1]))
        if horizontal > 1e-6:
            bearing = math.atan2(to_target[1], to_target[0])
            away = -to_target[:2] / horizontal
        else:
            bearing = state.yaw_rad
            away = np.array([-math.cos(bearing), -math.sin(bearing)])
        yaw_error = wrap_angle(bearing - state.yaw_rad)
        goal = np.array([*(self.target[:2] + cfg.standoff_m * away), self.target[2] + self._height_offset])
        velocity = cfg.position_gain * (goal - state.position)
        speed = float(np.linalg.norm(velocity))
        if speed > cfg.max_speed_mps:
            velocity *= cfg.max_speed_mps / speed
        velocity *= float(np.clip(math.cos(yaw_error), cfg.min_turn_scale, 1.0))
        yaw_rate = float(np.clip(cfg.yaw_gain * yaw_error, -cfg.max_yaw_rate_rps, cfg.max_yaw_rate_rps))
        vx, vy, vz = world_to_heading(velocity, state.yaw_rad)
        return Command.heading(stamp_ns, float(vx), float(vy), float(vz), yaw_rate)


def expert_for(sim: Simulator, config: ExpertConfig | None = None) -> Expert:
    """The expert of a simulator's episode (its target, its camera tilt, its command limits)."""
    if config is None:
        config = ExpertConfig(max_speed_mps=sim.config.max_speed_mps, max_yaw_rate_rps=sim.config.max_yaw_rate_rps)
    return Expert(sim.target_position, math.radians(sim.config.camera_pitch_deg), config)


def expert_controller(
    sim: Simulator, config: ExpertConfig | None = None
) -> Callable[[SensorRecord], Command | None]:
    """A ``controller(event) -> command | None`` that commands the expert at every IMU sample.

    It reads ``sim.state`` when called, so call it right after ``sim.next_event()`` returned the
    event (as :func:`run_closed_loop` does); camera frames get ``None`` (keep the last command).
    """
    expert = expert_for(sim, config)

    def controller(event: SensorRecord) -> Command | None:
        if isinstance(event, ImuSample):
            return expert.command(sim.state, event.stamp_ns)
        return None

    return controller


def fly_expert(
    config: SimConfig = SimConfig(),
    variant: str | ScenarioVariant = ScenarioVariant.NOMINAL,
    seed: int | None = None,
    expert: ExpertConfig | None = None,
) -> EpisodeResult:
    """One episode flown by the privileged expert."""
    sim = Simulator(config, variant, seed)
    return run_closed_loop(sim, expert_controller(sim, expert))
