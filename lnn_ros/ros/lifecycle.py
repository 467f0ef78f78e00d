"""``lnn_lifecycle_node``: ``lnn_node`` as a managed (lifecycle) node, on rclpy's ``LifecycleNode``.

Same name (``lnn_node``), parameters, topics and behaviour as ``lnn_node`` (the same
:class:`~lnn_ros.ros.flight.Flight`), with the standard lifecycle services
(``lnn_node/change_state``, ``lnn_node/get_state``, ...):

=============  ==========================================================================
transition     what the node does
=============  ==========================================================================
(start)        *unconfigured*: parameters declared (an unknown name or a wrong type is a
               FATAL exit, as for ``lnn_node``), nothing loaded, nothing published
configure      reads the parameters, loads and warms up the bundle (each graph run once);
               a bundle or value that does not load -> the transition fails with one ERROR
               line naming the problem, the node stays *unconfigured* and alive
activate       fresh state and statistics, then exactly what ``lnn_node`` does: hover before
               inputs, policy commands, watchdog, diagnostics, ``~/reset``
deactivate     removes its topics at once: nothing more on ``cmd_vel`` (the autopilot's own
               offboard-loss failsafe takes over); the model stays loaded
cleanup        unloads the model; parameters (``model_path`` ...) may be changed again
shutdown       from any state: stops publishing and unloads
=============  ==========================================================================

Parameters can be set (``ros2 param set``) only while *unconfigured*: a bundle is swapped
without restarting the process by deactivate -> cleanup -> set ``model_path`` -> configure
-> activate. With ``autostart:=true`` the node configures and activates itself at start-up.
``executor`` is read once at start-up (the process spins that executor from then on) and cannot
be changed afterwards.
"""

from __future__ import annotations

import sys
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter

from lnn_ros.errors import LnnRosError
from lnn_ros.node_spec.interface import NODE_NAME
from lnn_ros.node_spec.param_table import check_values
from lnn_ros.node_spec.params import AUTOSTART, PARAMETERS, NodeParams
from lnn_ros.ros.declare import declare_and_read
from lnn_ros.ros.flight import Flight
from lnn_ros.ros.process import one_line, run_node

__all__ = ["NODE_NAME", "LnnLifecycleNode", "main"]

_NAMES = frozenset(spec.name for spec in PARAMETERS)
EXECUTOR = next(spec for spec in PARAMETERS if spec.name == "executor")


class LnnLifecycleNode(LifecycleNode):
    """``lnn_node`` under the lifecycle state machine (see the module docstring).

    Raises:
        NodeConfigError: an unknown parameter name or a value of the wrong type (at construction).
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        try:
            values = declare_and_read(self, (*PARAMETERS, AUTOSTART), read_only=False)
            self.autostart = bool(values[AUTOSTART.name])
            self.executor_kind = str(check_values([EXECUTOR], {EXECUTOR.name: values[EXECUTOR.name]}, NODE_NAME)[EXECUTOR.name])
        except BaseException:
            self.destroy_node()
            raise
        self.flight: Flight | None = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info("Unconfigured; waiting for configure.")

    def start(self) -> None:
        """With ``autostart``: configure, and activate if that succeeded."""
        if self.autostart and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        if any(p.name == EXECUTOR.name and p.value != self.executor_kind for p in parameters):
            return SetParametersResult(
                successful=False,
                reason=f"'{EXECUTOR.name}' is chosen at start-up; restart the process to change it.",
            )
        ours = [p.name for p in parameters if p.name in _NAMES]
        if ours and self.flight is not None:
            return SetParametersResult(
                successful=False,
                reason=f"{ours} can be changed only while unconfigured; deactivate and clean up first.",
            )
        return SetParametersResult(successful=True)

    def _read_params(self) -> NodeParams:
        return NodeParams.from_values({name: self.get_parameter(name).value for name in _NAMES})

    # ------------------------------------------------------------------ transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.flight = Flight(self, self._read_params())
        except LnnRosError as exc:
            self.get_logger().error(f"Configure failed, staying unconfigured: {one_line(exc)}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"Configured: {self.flight.description}.")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.flight is not None  # the state machine activates only a configured node
        self.flight.start()
        self.get_logger().info("Active: flying.")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.flight is not None:
            self.flight.stop()
        self.get_logger().info("Inactive: publishing nothing; the autopilot's offboard-loss failsafe takes over.")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.flight = None
        self.get_logger().info("Unconfigured: model unloaded; parameters may be changed.")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.flight is not None and self.flight.active:
            self.flight.stop()
        self.flight = None
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.flight is not None and self.flight.active:
            self.flight.stop()
        self.flight = None
        self.get_logger().error("A transition raised; stopped and unloaded, back to unconfigured.")
        return TransitionCallbackReturn.SUCCESS


def _build() -> LnnLifecycleNode:
    node = LnnLifecycleNode()
    node.start()
    return node


def main(args: list[str] | None = None) -> int:
    """Run the managed node until SIGINT/SIGTERM; returns the process exit code (1: unknown / wrong-typed parameter)."""
    return run_node(NODE_NAME, _build, args=args, executor_kind=lambda node: node.executor_kind)


if __name__ == "__main__":
    sys.exit(main())
