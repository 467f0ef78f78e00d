"""A bundle flying the simulator through the onboard code path: Engine + PolicyRunner, no torch.

The simulator's ``ImuSample`` / ``ImageFrame`` records have the runtime's field names, so they go
into :class:`~lnn_ros.runtime.PolicyRunner` unchanged, exactly as ``lnn_node`` feeds it from ROS
messages; the runner's Twist becomes a heading-frame :class:`~lnn_ros.sim.VelocityCommand`
(linear x, y, z and angular z).
"""

from __future__ import annotations

from pathlib import Path

from lnn_ros.bundle import Bundle, load_bundle
from lnn_ros.engine import Engine
from lnn_ros.runtime import Command, PolicyRunner
from lnn_ros.sim.closed_loop import Controller
from lnn_ros.sim.episode import Simulator
from lnn_ros.sim.records import ImuSample, SensorEvent, VelocityCommand


def velocity_command(command: Command) -> VelocityCommand:
    """The runner's Twist as a heading-frame velocity command (linear x/y/z, angular z)."""
    twist = command.twist
    return VelocityCommand(twist[0], twist[1], twist[2], twist[5])


def runner_controller(runner: PolicyRunner) -> Controller:
    """``controller(event) -> command | None`` feeding every event to ``runner``."""

    def controller(event: SensorEvent) -> VelocityCommand | None:
        command = runner.on_imu(event) if isinstance(event, ImuSample) else runner.on_image(event)
        return None if command is None else velocity_command(command)

    return controller


class BundlePilot:
    """Builds a fresh Engine + PolicyRunner of one bundle for every episode (a ``ControllerFactory``).

    Args:
        bundle: a loaded bundle or its folder.
    """

    def __init__(self, bundle: Bundle | str | Path) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)

    def __call__(self, sim: Simulator) -> Controller:
        return runner_controller(PolicyRunner(Engine(self.bundle)))
