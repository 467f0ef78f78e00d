"""Fly one episode in closed loop with any ``controller(event) -> command | None``."""

from __future__ import annotations

from collections.abc import Callable

from lnn_ros.runtime.records import Command, SensorRecord
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.world.episode import EpisodeResult, Simulator
from lnn_ros.units import NS_PER_S

Controller = Callable[[SensorRecord], "Command | None"]


def run_closed_loop(sim: Simulator, controller: Controller, latency_s: float = 0.0) -> EpisodeResult:
    """Feed every sensor event of ``sim`` to ``controller`` and fly what it answers, until done.

    Args:
        sim: a fresh (or partly flown) simulator.
        controller: called with each ``ImuSample`` / ``ImageFrame`` in stamp order; returns a
            command (anything ``Simulator.set_command`` takes) or None to keep the last one.
        latency_s: a command answered to the event stamped t is applied from t + latency_s.

    Raises:
        SimError: ``latency_s`` is negative, or the controller returned an invalid command.
    """
    if not latency_s >= 0:
        raise SimError(f"latency_s must be >= 0, got {latency_s!r}.")
    latency_ns = round(latency_s * NS_PER_S)
    for event in sim.events():
        command = controller(event)
        if command is not None:
            sim.set_command(command, event.stamp_ns + latency_ns)
    return sim.result()
