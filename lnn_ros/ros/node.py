"""``lnn_node``: the ROS 2 node that flies a bundle. A thin adapter over :mod:`lnn_ros.runtime`.

Topics (relative names, remappable):

* ``imu`` (sensor_msgs/Imu) and ``camera/image_raw`` (sensor_msgs/Image; with
  ``camera_transport: compressed``, ``camera/image_raw/compressed``, sensor_msgs/CompressedImage): subscribed only when
  the bundle reads that stream; QoS keep-last ``input_qos_depth``, ``input_qos_reliability``
  (best effort by default, i.e. sensor-data QoS);
* ``cmd_vel`` (geometry_msgs/TwistStamped, reliable, depth 10): one message per policy step,
  stamped with the header stamp of the message that produced it, and the zero (hover)
  command at ``failsafe_rate_hz`` stamped with the node clock while the watchdog is not OK;
* ``/diagnostics`` (diagnostic_msgs/DiagnosticArray) every ``diagnostics_period_s``;
* service ``~/reset`` (std_srvs/Trigger): zero the recurrent state.

Threading: one single-threaded executor runs every callback, so messages are handled one at a
time in the order the executor takes them, exactly like a replay feeds
:class:`~lnn_ros.runtime.PolicyRunner`. The camera subscription is created before the IMU
one, so when a frame and an IMU message are both waiting the frame is handled first and the
IMU step uses it. The encoder runs inline in the frame's callback: it delays at most the one
IMU step that waits behind it (with benchmarks/node.py's 3-layer conv encoder, decode +
encode take ~0.06 ms for a 64x48 frame and ~0.2 ms for 160x120 on a 2-core x86 machine), and
in exchange live flight and replay compute the same commands. Its cost per frame is reported
in /diagnostics (``frame_latency_ms``). onnxruntime releases the GIL, so a second callback
group on a multi-threaded executor could overlap the encoder with IMU steps, but then which
frame a step sees would depend on thread timing and a replay could not reproduce it.

Per message and per failsafe tick the node does exactly what :class:`~lnn_ros.runtime.LiveLoop`
says (watchdog, reset on recovery, withheld commands, statistics), with the node clock; the
bag replay runs the same class on the bag's log time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, Imu
from std_srvs.srv import Trigger

from lnn_ros.node_spec.interface import (
    CAMERA_TOPIC,
    COMMAND_TOPIC,
    COMPRESSED_SUFFIX,
    DIAGNOSTICS_TOPIC,
    IMU_TOPIC,
    NODE_NAME,
    RESET_SERVICE,
)
from lnn_ros.node_spec.params import PARAMETERS, NodeParams
from lnn_ros.ros.convert import fill_twist_stamped, image_frame, imu_sample, ns_to_stamp
from lnn_ros.ros.declare import declare_and_read
from lnn_ros.ros.diagnostics import to_message
from lnn_ros.ros.message_info import HAS_MESSAGE_INFO, NO_MESSAGE_INFO, received_perf_ns
from lnn_ros.ros.process import run_node, spin_until_shutdown
from lnn_ros.runtime import Command, Stream, WatchdogStatus

__all__ = ["NODE_NAME", "LnnNode", "declare_parameters", "main", "spin_until_shutdown"]


def declare_parameters(node: Node) -> NodeParams:
    """Declare every parameter of :data:`PARAMETERS` on ``node`` and read them once.

    Raises:
        NodeConfigError: a value of the wrong type, out of range or otherwise invalid.
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
            self._setup()
        except BaseException:
            self.destroy_node()
            raise

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        params = declare_parameters(self)
        self.params = params
        self._node_clock = self.get_clock()
        self.loop = params.build_loop(self._now_ns)
        runner = self.loop.runner
        bundle = runner.engine.bundle
        streams = runner.streams
        self._reported = WatchdogStatus.WAITING
        self._recoveries = 0

        reliability = (
            ReliabilityPolicy.RELIABLE if params.input_qos_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        )
        qos_in = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=params.input_qos_depth, reliability=reliability)
        qos_out = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._cmd = TwistStamped()
        self._cmd.header.frame_id = params.frame_id
        self._cmd_pub = self.create_publisher(TwistStamped, COMMAND_TOPIC, qos_out)
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, qos_out)
        # Camera first: when a frame and an IMU message are both ready, the frame is taken first.
        # With message info (Iron+), latency starts at the middleware's reception (see ros/message_info.py).
        on_image, on_imu = (self._on_image_info, self._on_imu_info) if HAS_MESSAGE_INFO else (self._on_image, self._on_imu)
        if not HAS_MESSAGE_INFO:
            self.get_logger().info(NO_MESSAGE_INFO)
        if Stream.CAMERA in streams:
            if params.camera_transport == "compressed":
                self.create_subscription(CompressedImage, CAMERA_TOPIC + COMPRESSED_SUFFIX, on_image, qos_in)
            else:
                self.create_subscription(Image, CAMERA_TOPIC, on_image, qos_in)
        if Stream.IMU in streams:
            self.create_subscription(Imu, IMU_TOPIC, on_imu, qos_in)
        self.create_service(Trigger, RESET_SERVICE, self._on_reset)
        self.create_timer(1.0 / params.failsafe_rate_hz, self._on_failsafe_timer)
        self.create_timer(params.diagnostics_period_s, self._on_diagnostics_timer)
        self.get_logger().info(
            f"Flying bundle {bundle.manifest.name!r} ({bundle.path}, hash {bundle.digest[:12]}) on "
            f"{runner.engine.provider}; inputs {[s.value for s in streams]}, driver {runner.driver.value}."
        )

    def _now_ns(self) -> int:
        return self._node_clock.now().nanoseconds

    # ------------------------------------------------------------------ inputs
    def _on_imu(self, msg: Imu) -> None:
        start = time.perf_counter_ns()
        self._publish(self.loop.on_imu(imu_sample(msg), start))

    def _on_image(self, msg: Image | CompressedImage) -> None:
        start = time.perf_counter_ns()
        self._publish(self.loop.on_image(image_frame(msg), start))

    def _on_imu_info(self, msg: Imu, info: Mapping[str, Any]) -> None:
        self._publish(self.loop.on_imu(imu_sample(msg), received_perf_ns(info)))

    def _on_image_info(self, msg: Image | CompressedImage, info: Mapping[str, Any]) -> None:
        self._publish(self.loop.on_image(image_frame(msg), received_perf_ns(info)))

    def _publish(self, command: Command | None) -> None:
        if command is not None:
            self._cmd_pub.publish(fill_twist_stamped(self._cmd, command))
        recoveries = self.loop.watchdog.recoveries
        if recoveries != self._recoveries:
            self._recoveries = recoveries
            self._reported = WatchdogStatus.OK
            self.get_logger().warning("Inputs are back; state reset, flying again from the next message.")

    # ------------------------------------------------------------------ timers and service
    def _on_failsafe_timer(self) -> None:
        hover = self.loop.tick()
        status = self.loop.watchdog.status
        if status is not self._reported:
            self._report_transition(status)
        if hover is not None:
            self._cmd_pub.publish(fill_twist_stamped(self._cmd, hover))

    def _report_transition(self, status: WatchdogStatus) -> None:
        self._reported = status
        stale = ", ".join(self.loop.watchdog.stale_streams())
        if status is WatchdogStatus.STALE:
            if stale == Stream.COMMAND.value:
                why = "inputs arrive but the policy produced no command (gap resets / non-finite outputs)"
            else:
                why = f"no valid {stale} message"
            self.get_logger().error(
                f"Failsafe: {why} for over {self.params.stale_timeout_s} s; "
                f"publishing hover at {self.params.failsafe_rate_hz} Hz."
            )
        elif status is WatchdogStatus.OK:
            self.get_logger().info("All inputs arrived; flying.")

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.loop.reset()
        response.success = True
        response.message = "Recurrent state zeroed; the next message restarts the stamp clock."
        self.get_logger().info("State reset by ~/reset.")
        return response

    def _on_diagnostics_timer(self) -> None:
        report = self.loop.report()
        bundle = self.loop.runner.engine.bundle
        stamp = ns_to_stamp(self._now_ns(), Time())
        self._diag_pub.publish(
            to_message(report, name=f"{self.get_name()}: policy", hardware_id=bundle.manifest.name, stamp=stamp)
        )


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; returns the process exit code.

    A node that cannot be built (invalid parameter, bundle that does not load) logs one
    FATAL line saying why and returns 1 (see :func:`~lnn_ros.ros.process.run_node`).
    """
    return run_node(NODE_NAME, LnnNode, args=args)


if __name__ == "__main__":
    sys.exit(main())
