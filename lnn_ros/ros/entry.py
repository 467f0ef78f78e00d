"""The console scripts of the ROS executables: quiet signals first, heavy imports second.

``lnn_node``, ``lnn_lifecycle_node`` and ``sim_drone_node`` start here so that a SIGINT or
SIGTERM that arrives while numpy, onnxruntime, rclpy or the simulator are still being
imported ends the process with exit code 0 and no traceback (see :mod:`lnn_ros.ros.signals`).
On every way out (``main`` returned, or a signal came before it started) both signals are
then ignored, so that a late one (``ros2 launch`` sends a second SIGINT) cannot kill the
process while the interpreter shuts down: Python puts the default handlers back there. A
module that is not installed (the simulator on a robot install) is one ``[FATAL]`` line naming
what to install, exit code 1.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from lnn_ros.ros import signals

if TYPE_CHECKING:
    from collections.abc import Callable

SIM_INSTALL = "pip install 'lnn_ros[sim]' (rotorpy==3.0.0 and scipy); on a robot: pip install rotorpy==3.0.0 and apt/rosdep python3-scipy"


def _run(module: str, node_name: str, install_hint: str | None = None) -> int:
    signals.install()
    try:
        return _import_and_run(module, node_name, install_hint)
    finally:
        signals.ignore()  # on every way out, also the early ones: see the module docstring


def _import_and_run(module: str, node_name: str, install_hint: str | None) -> int:
    import importlib

    try:
        main: Callable[[], int] = importlib.import_module(module).main
    except ImportError as exc:
        if signals.received():
            return 0
        missing = exc.name or str(exc)
        hint = install_hint or "install lnn_ros with its dependencies (see docs/ros.md, 'Robot install')"
        print(f"[FATAL] [{node_name}]: Python module {missing!r} is not installed; {hint}.", file=sys.stderr)
        return 1
    if signals.received():
        return 0
    return main()


def lnn_node() -> int:
    """``lnn_node``: the policy node."""
    return _run("lnn_ros.ros.node", "lnn_node")


def lnn_lifecycle_node() -> int:
    """``lnn_lifecycle_node``: the policy node, managed (configure / activate / deactivate / cleanup)."""
    return _run("lnn_ros.ros.lifecycle", "lnn_node")


def sim_drone_node() -> int:
    """``sim_drone_node``: the simulated drone."""
    return _run("lnn_ros.sim.ros.node", "sim_drone_node", SIM_INSTALL)
