"""``lnn_node``: the ROS 2 node that flies a bundle from start-up until it is stopped.

A thin adapter: it declares the parameters (read-only, :mod:`lnn_ros.node_spec.params`), reads
them once, then builds and starts a :class:`~lnn_ros.ros.flight.Flight`, which holds
everything the node does (topics, QoS, threading and timers are described there).
``lnn_lifecycle_node`` (:mod:`lnn_ros.ros.lifecycle`) runs the same :class:`Flight` under the
managed-node state machine.
"""

from __future__ import annotations

import sys

from rclpy.node import Node

from lnn_ros.node_spec.interface import NODE_NAME
from lnn_ros.node_spec.params import PARAMETERS, NodeParams
from lnn_ros.ros.declare import declare_and_read
from lnn_ros.ros.flight import Flight
from lnn_ros.ros.process import run_node, spin_until_shutdown

__all__ = ["NODE_NAME", "LnnNode", "declare_parameters", "main", "spin_until_shutdown"]


def declare_parameters(node: Node) -> NodeParams:
    """Declare every parameter of :data:`PARAMETERS` on ``node`` (read-only) and read them once.

    Raises:
        NodeConfigError: an unknown name, a value of the wrong type, out of range or otherwise invalid.
    """
    return NodeParams.from_values(declare_and_read(node, PARAMETERS))


class LnnNode(Node):
    """Subscribes the bundle's sensor streams, steps the policy, publishes commands and diagnostics.

    Raises:
        NodeConfigError: invalid parameters, or a bundle this node cannot feed.
        BundleError, EngineError: the model does not load.
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: object) -> None:
        super().__init__(node_name, **kwargs)  # type: ignore[arg-type]
        try:
            self.params = declare_parameters(self)
            self.flight = Flight(self, self.params)
            self.flight.start()
        except BaseException:
            self.destroy_node()
            raise
        self.get_logger().info(f"Flying {self.flight.description}.")


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; returns the process exit code.

    A node that cannot be built (unknown or invalid parameter, bundle that does not load) logs
    one FATAL line saying why and returns 1 (see :func:`~lnn_ros.ros.process.run_node`). The
    executor is the one the ``executor`` parameter names.
    """
    return run_node(NODE_NAME, LnnNode, args=args, executor_kind=lambda node: node.params.executor)


if __name__ == "__main__":
    sys.exit(main())
