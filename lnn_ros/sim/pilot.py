"""A bundle flying the simulator through the onboard code path: Engine + PolicyRunner, no torch.

The simulator's ``ImuSample`` / ``ImageFrame`` records are the runtime's, so they go into
:class:`~lnn_ros.runtime.PolicyRunner` unchanged, exactly as ``lnn_node`` feeds it from ROS
messages; the runner's :class:`~lnn_ros.runtime.records.Command` is flown through its
heading-frame view (linear x, y, z and angular z).
"""

from __future__ import annotations

from pathlib import Path

from lnn_ros.bundle import Bundle, load_bundle
from lnn_ros.runtime.factory import build_runner
from lnn_ros.runtime.policy import PolicyRunner
from lnn_ros.runtime.records import Command, ImuSample, SensorRecord
from lnn_ros.sim.world.closed_loop import Controller
from lnn_ros.sim.world.episode import Simulator


def runner_controller(runner: PolicyRunner) -> Controller:
    """``controller(event) -> command | None`` feeding every event to ``runner``."""

    def controller(event: SensorRecord) -> Command | None:
        return runner.on_imu(event) if isinstance(event, ImuSample) else runner.on_image(event)

    return controller


class BundlePilot:
    """Builds a fresh Engine + PolicyRunner of one bundle for every episode (a ``ControllerFactory``).

    Args:
        bundle: a loaded bundle or its folder.
    """

    def __init__(self, bundle: Bundle | str | Path) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)

    def __call__(self, sim: Simulator) -> Controller:
        return runner_controller(build_runner(self.bundle))
