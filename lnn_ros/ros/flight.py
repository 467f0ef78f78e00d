"""What ``lnn_node`` does, on any rclpy node: :class:`Flight`, shared by both executables.

``lnn_node`` (:mod:`lnn_ros.ros.node`) builds a :class:`Flight` and starts it at once;
``lnn_lifecycle_node`` (:mod:`lnn_ros.ros.lifecycle`) builds it on *configure*, starts it on
*activate*, stops it on *deactivate* and drops it on *cleanup*. There is no second copy of
the node's behaviour.

Topics (relative names, remappable), created by :meth:`Flight.start`, destroyed by :meth:`Flight.stop`:

* ``imu`` (sensor_msgs/Imu) and ``camera/image_raw`` (sensor_msgs/Image; with
  ``camera_transport: compressed``, ``camera/image_raw/compressed``, sensor_msgs/CompressedImage): subscribed only when
  the bundle reads that stream; QoS keep-last ``input_qos_depth``, ``input_qos_reliability``
  (best effort by default, i.e. sensor-data QoS);
* ``cmd_vel`` (geometry_msgs/TwistStamped, reliable, depth 10, ``header.frame_id`` =
  ``command_frame_id``): one message per policy step (at most ``command_rate_hz`` when set),
  stamped with the header stamp of the message that produced it; from the failsafe timer, a
  hold of the last command when the stream would otherwise be silent longer than
  ``max_command_gap_s``, and the zero (hover) command at ``failsafe_rate_hz`` while the
  watchdog is not OK, until ``failsafe_hover_s`` with ``failsafe_action: stop`` (then nothing);
  holds and hovers continue the commands' time base (docs/failsafe.md);
* ``/diagnostics`` (diagnostic_msgs/DiagnosticArray) every ``diagnostics_period_s``;
* service ``~/reset`` (std_srvs/Trigger): zero the recurrent state.

Threading: one executor thread runs every callback (``executor: single_threaded`` by default;
``events`` takes them in arrival order instead, see :func:`~lnn_ros.ros.process.make_executor`),
so messages are handled one at a time in the order the executor takes them, exactly like a replay feeds
:class:`~lnn_ros.runtime.PolicyRunner`. The camera subscription is created before the IMU
one, so when a frame and an IMU message are both waiting the frame is handled first and the
IMU step uses it. The encoder runs inline in the frame's callback: it delays at most the one
IMU step that waits behind it, and in exchange live flight and replay compute the same
commands. Its cost per frame is reported in /diagnostics (``frame_latency_ms``).

Per message and per failsafe tick the node does exactly what :class:`~lnn_ros.runtime.LiveLoop`
says (watchdog, reset on recovery, withheld commands, statistics), with the node clock; the
bag replay runs the same class on the bag's log time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.service import Service
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CompressedImage, Image, Imu
from std_srvs.srv import Trigger

from lnn_ros.node_spec.interface import (
    CAMERA_TOPIC,
    COMMAND_TOPIC,
    COMPRESSED_SUFFIX,
    DIAGNOSTICS_TOPIC,
    IMU_TOPIC,
    RESET_SERVICE,
)
from lnn_ros.node_spec.params import NodeParams
from lnn_ros.ros.convert import fill_twist_stamped, image_frame, imu_sample, ns_to_stamp
from lnn_ros.ros.diagnostics import to_message
from lnn_ros.ros.message_info import EVENTS_NO_MESSAGE_INFO, HAS_MESSAGE_INFO, NO_MESSAGE_INFO, hop_ns, received_perf_ns
from lnn_ros.ros.rate_limit import RateLimit
from lnn_ros.runtime import Command, Stream, WatchdogStatus
from lnn_ros.runtime.live import LiveLoop
from lnn_ros.units import NS_PER_S


class Flight:
    """A loaded bundle flown on ``node``: load once, then :meth:`start` / :meth:`stop` any number of times.

    Args:
        node: the rclpy node (plain or lifecycle) whose publishers, subscriptions and timers these are.
        params: the node's parameters.

    Raises:
        NodeConfigError: a bundle this node cannot feed.
        BundleError, EngineError: the model does not load (the engine runs each graph once on load).
    """

    def __init__(self, node: Node, params: NodeParams) -> None:
        self.node = node
        self.params = params
        self._node_clock = node.get_clock()
        self.loop = params.build_loop(self._now_ns)
        self.runner = self.loop.runner
        self._entities: list[Publisher | Subscription | Service] = []
        self._timers: list[Timer] = []
        self._reported = WatchdogStatus.WAITING
        self._recoveries = 0
        self._stops = 0
        self._rate = RateLimit(params.command_rate_hz)
        self._cmd = TwistStamped()
        self._cmd.header.frame_id = params.command_frame_id
        self._starts = 0
        self._cmd_pub: Publisher | None = None
        self._diag_pub: Publisher | None = None
        # rclpy's EventsExecutor cannot call a subscription callback with message info (it raises
        # "SystemError: null argument to internal routine" in Kilted's rclpy 9.x): plain callbacks there.
        self._message_info = HAS_MESSAGE_INFO and params.executor != "events"
        if not HAS_MESSAGE_INFO:
            node.get_logger().info(NO_MESSAGE_INFO)
        elif not self._message_info:
            node.get_logger().info(EVENTS_NO_MESSAGE_INFO)

    @property
    def description(self) -> str:
        """One line naming the bundle, its hash, provider, inputs and driver (for the start-up log)."""
        bundle, runner = self.runner.engine.bundle, self.runner
        return (
            f"bundle {bundle.manifest.name!r} ({bundle.path}, hash {bundle.digest[:12]}) on {runner.engine.provider}; "
            f"inputs {[s.value for s in runner.streams]}, driver {runner.driver.value}"
        )

    @property
    def active(self) -> bool:
        """Whether :meth:`start` created the topics (and :meth:`stop` has not removed them)."""
        return self._cmd_pub is not None

    # ------------------------------------------------------------------ start / stop
    def start(self) -> None:
        """Fresh state and statistics, then subscribe, publish and start the timers."""
        node, params = self.node, self.params
        if self._starts:  # a re-activation: forget the state of the last flight (counted as an explicit reset)
            self.runner.reset()
        self._starts += 1
        self.loop = LiveLoop(self.runner, params.live_config(), self._now_ns)
        # One diagnostics message built now and dropped: the first one pays first-use costs (about
        # 5 ms to build the first DiagnosticArray, and numpy.ma's import in np.percentile until the
        # statistics stopped using it) that otherwise fall on the first diagnostics tick, mid-flight,
        # in front of IMU messages waiting for the executor: the worst latency of nearly every demo
        # run was at t = 1.00-1.02 s (docs/latency.md). It changes no state (the watchdog is WAITING).
        self._diagnostics()
        self._reported = WatchdogStatus.WAITING
        self._recoveries = 0
        self._stops = 0
        self._rate.reset()
        reliability = (
            ReliabilityPolicy.RELIABLE if params.input_qos_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        )
        qos_in = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=params.input_qos_depth, reliability=reliability)
        qos_out = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._cmd_pub = node.create_publisher(TwistStamped, COMMAND_TOPIC, qos_out)
        self._diag_pub = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, qos_out)
        self._entities = [self._cmd_pub, self._diag_pub]
        streams = self.runner.streams
        # Camera first: when a frame and an IMU message are both ready, the frame is taken first.
        # With message info (Iron+), latency starts at the middleware's reception (see ros/message_info.py).
        on_image, on_imu = (self._on_image_info, self._on_imu_info) if self._message_info else (self._on_image, self._on_imu)
        if Stream.CAMERA in streams:
            if params.camera_transport == "compressed":
                topic, msg_type = CAMERA_TOPIC + COMPRESSED_SUFFIX, CompressedImage
            else:
                topic, msg_type = CAMERA_TOPIC, Image
            self._entities.append(node.create_subscription(msg_type, topic, on_image, qos_in))
        if Stream.IMU in streams:
            self._entities.append(node.create_subscription(Imu, IMU_TOPIC, on_imu, qos_in))
        self._entities.append(node.create_service(Trigger, RESET_SERVICE, self._on_reset))
        self._timers = [
            node.create_timer(1.0 / params.failsafe_rate_hz, self._on_failsafe_timer),
            node.create_timer(params.diagnostics_period_s, self._on_diagnostics_timer),
        ]

    def stop(self) -> None:
        """Stop the timers and remove every topic and the service at once: nothing more is published."""
        node = self.node
        for timer in self._timers:
            timer.cancel()
            node.destroy_timer(timer)
        for entity in self._entities:
            if isinstance(entity, Publisher):
                node.destroy_publisher(entity)
            elif isinstance(entity, Subscription):
                node.destroy_subscription(entity)
            else:
                node.destroy_service(entity)
        self._timers, self._entities = [], []
        self._cmd_pub = self._diag_pub = None

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
        self._with_info(self.loop.on_imu, imu_sample, msg, info)

    def _on_image_info(self, msg: Image | CompressedImage, info: Mapping[str, Any]) -> None:
        self._with_info(self.loop.on_image, image_frame, msg, info)

    def _with_info(
        self, handle: Callable[[Any, int], Command | None], convert: Callable[[Any], Any], msg: Any, info: Mapping[str, Any]
    ) -> None:
        """Handle ``msg`` with latency from the middleware's reception; for a message that produced a
        command, record the sensor publish -> reception hop and the wait from reception to this
        callback (diagnostics ``transport_latency_ms``, ``pickup_latency_ms``)."""
        received = received_perf_ns(info)
        picked_up = time.perf_counter_ns()
        command = handle(convert(msg), received)
        if command is not None:
            loop = self.loop
            loop.pickup_s.add((picked_up - received) / NS_PER_S)
            hop = hop_ns(info)
            if hop is not None:
                loop.transport_s.add(hop / NS_PER_S)
        self._publish(command)

    def _publish(self, command: Command | None) -> None:
        if command is not None and self._cmd_pub is not None and self._rate.passes(command.stamp_ns):
            self._cmd_pub.publish(fill_twist_stamped(self._cmd, command))
        recoveries = self.loop.watchdog.recoveries
        if recoveries != self._recoveries:
            self._recoveries = recoveries
            self._reported = WatchdogStatus.OK
            self._rate.reset()
            self.node.get_logger().warning("Inputs are back; state reset, flying again from the next message.")

    # ------------------------------------------------------------------ timers and service
    def _on_failsafe_timer(self) -> None:
        command = self.loop.tick()  # a hold of the last command, the hover command, or nothing
        status = self.loop.watchdog.status
        if status is not self._reported:
            self._report_transition(status)
        if command is not None:
            if self._cmd_pub is not None:
                self._cmd_pub.publish(fill_twist_stamped(self._cmd, command))
        elif self.loop.failsafe_stops != self._stops:
            self._stops = self.loop.failsafe_stops
            self.node.get_logger().error(
                f"Failsafe: no valid input for {self.params.failsafe_hover_s} s of hover; stopped publishing cmd_vel "
                "so the autopilot's offboard-loss failsafe takes over (failsafe_action: stop)."
            )

    def _report_transition(self, status: WatchdogStatus) -> None:
        self._reported = status
        stale = ", ".join(self.loop.watchdog.stale_streams())
        if status is WatchdogStatus.STALE:
            if stale == Stream.COMMAND.value:
                why = "inputs arrive but the policy produced no command (gap resets / non-finite outputs)"
            else:
                why = f"no valid {stale} message"
            self.node.get_logger().error(
                f"Failsafe: {why} for over {self.params.stale_timeout_s} s; "
                f"publishing hover at {self.params.failsafe_rate_hz} Hz."
            )
        elif status is WatchdogStatus.OK:
            self.node.get_logger().info("All inputs arrived; flying.")

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.loop.reset()
        self._rate.reset()
        response.success = True
        response.message = "Recurrent state zeroed; the next message restarts the stamp clock."
        self.node.get_logger().info("State reset by ~/reset.")
        return response

    def _on_diagnostics_timer(self) -> None:
        if self._diag_pub is not None:
            self._diag_pub.publish(self._diagnostics())

    def _diagnostics(self) -> DiagnosticArray:
        report = self.loop.report()
        bundle = self.runner.engine.bundle
        stamp = ns_to_stamp(self._now_ns(), Time())
        return to_message(report, name=f"{self.node.get_name()}: policy", hardware_id=bundle.manifest.name, stamp=stamp)
