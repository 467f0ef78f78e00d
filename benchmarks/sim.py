"""Speed of the simulator's parts, measured in process CPU time (robust to a busy machine)."""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np

from lnn_ros.sim.expert.expert import fly_expert
from lnn_ros.sim.world.config import VARIANTS, ScenarioVariant, SimConfig
from lnn_ros.sim.world.frames import quat_from_yaw, quat_to_matrix
from lnn_ros.sim.world.render import Renderer
from lnn_ros.sim.world.scene import sample_scene
from lnn_ros.sim.world.vehicle import Vehicle


class SpeedReport(NamedTuple):
    """Measured speeds (CPU time of this process)."""

    physics_steps_per_s: float  # vehicle steps of physics_dt_s (dynamics + SE3 tracker only)
    physics_realtime_factor: float  # sim seconds per CPU second, dynamics only
    render_ms_per_frame: float  # one camera frame with the distractors variant's scene
    episode_realtime_factor: float  # a whole expert episode: dynamics, IMU, camera, expert

    def describe(self) -> str:
        """One line per figure."""
        return (
            f"physics: {self.physics_steps_per_s:.0f} steps/s ({self.physics_realtime_factor:.1f}x real time)\n"
            f"render: {self.render_ms_per_frame:.2f} ms/frame\n"
            f"expert episode: {self.episode_realtime_factor:.1f}x real time"
        )


def measure_speed(config: SimConfig = SimConfig(), steps: int = 2000, frames: int = 300) -> SpeedReport:
    """Time the physics, the renderer and a full expert episode under ``config``."""
    vehicle = Vehicle(config.vehicle, config.integrator, np.array([0.0, 0.0, 1.0]), 0.0)
    command = np.array([0.5, 0.2, 0.0, 0.3])
    start = time.process_time()
    for i in range(steps):
        vehicle.step(i * config.physics_dt_s, config.physics_dt_s, command)
    physics_s = time.process_time() - start

    scene = sample_scene(config, VARIANTS[ScenarioVariant.DISTRACTORS], np.random.default_rng(0))
    renderer = Renderer(config.intrinsics, math.radians(config.camera_pitch_deg), scene)
    rotation = quat_to_matrix(quat_from_yaw(scene.start_yaw_rad))
    rng = np.random.default_rng(0)
    start = time.process_time()
    for _ in range(frames):
        renderer.render(np.array(scene.start_position), rotation, rng, config.image_noise_std)
    render_s = time.process_time() - start

    start = time.process_time()
    result = fly_expert(config, ScenarioVariant.NOMINAL, config.seed)
    episode_s = time.process_time() - start
    return SpeedReport(
        physics_steps_per_s=steps / physics_s,
        physics_realtime_factor=steps * config.physics_dt_s / physics_s,
        render_ms_per_frame=1e3 * render_s / frames,
        episode_realtime_factor=result.duration_s / episode_s,
    )
