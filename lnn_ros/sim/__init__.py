"""Simulated camera drone for lnn_ros: rotorpy physics, a numpy ray-cast camera, an expert.

ROS-free and torch-free (numpy, scipy, rotorpy). Drive a :class:`Simulator` with any
``controller(event) -> command | None`` through :func:`run_closed_loop`, record expert
demonstrations with :func:`generate_demonstrations`, and fly it in real time from a ROS node
with ``advance_to`` / ``set_command``.
"""

from lnn_ros.sim.closed_loop import Controller, fly_expert, run_closed_loop
from lnn_ros.sim.config import (
    VARIANTS,
    CameraIntrinsics,
    Integrator,
    ScenarioVariant,
    SimConfig,
    VariantSpec,
    VehicleModel,
    variant_from_name,
    variant_spec,
)
from lnn_ros.sim.demos import (
    Demonstration,
    generate_demonstrations,
    load_demonstration,
    load_demonstrations,
    record_demonstration,
    save_demonstration,
)
from lnn_ros.sim.episode import EpisodeResult, Simulator, Trajectory, VehicleState
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.evaluate import VariantStats, evaluate, format_stats
from lnn_ros.sim.expert import Expert, ExpertConfig, expert_controller, expert_for
from lnn_ros.sim.plot import plot_episode
from lnn_ros.sim.records import HOVER, ImageFrame, ImuSample, SensorEvent, VelocityCommand

__all__ = [
    "HOVER",
    "VARIANTS",
    "CameraIntrinsics",
    "Controller",
    "Demonstration",
    "EpisodeResult",
    "Expert",
    "ExpertConfig",
    "ImageFrame",
    "ImuSample",
    "Integrator",
    "ScenarioVariant",
    "SensorEvent",
    "SimConfig",
    "SimError",
    "Simulator",
    "Trajectory",
    "VariantSpec",
    "VariantStats",
    "VehicleModel",
    "VehicleState",
    "VelocityCommand",
    "evaluate",
    "expert_controller",
    "expert_for",
    "fly_expert",
    "format_stats",
    "generate_demonstrations",
    "load_demonstration",
    "load_demonstrations",
    "plot_episode",
    "record_demonstration",
    "run_closed_loop",
    "save_demonstration",
    "variant_from_name",
    "variant_spec",
]
