"""``sim_drone_node``: the simulated drone as a ROS 2 node, paced at real time, measuring latency.

Topics (relative names, remappable):

* publishes ``imu`` (sensor_msgs/Imu) at ~200 Hz and ``camera/image_raw`` (sensor_msgs/Image,
  rgb8) at ~30 Hz, header stamps = sim time (the simulator's jittered sensor stamps), with the
  sensor-data QoS (``sensor_qos_reliability``, keep last 10);
* publishes ``/clock`` (rosgraph_msgs/Clock) with the sim time before every batch of sensor
  messages, so nodes with ``use_sim_time`` run on it;
* subscribes ``cmd_vel`` (geometry_msgs/TwistStamped, reliable, depth 100): linear x/y/z and
  angular z in the heading frame (x forward along the yaw, y left, z up), flown from the sim
  time the message arrived at.

Pacing: one loop on a wall clock. Sim time ``t`` stands for wall time ``start + t / real_time_factor``;
the loop sleeps in ``executor.spin_once`` (handling commands meanwhile) until the next sensor
stamp is due, advances the simulator to it and publishes what it produced. Latency and missed
deadlines are measured as :mod:`lnn_ros.sim.ros.flight_log` defines; at the end the node writes
the JSON summary (``summary_path``) and the arrays (``record_path``) and exits (exit code 0 on a
completed episode, also after SIGINT/SIGTERM, which end the episode early and are reported as
``"completed": false``).
"""

from __future__ import annotations

import array
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image, Imu

from lnn_ros.node_spec.interface import CAMERA_TOPIC, COMMAND_TOPIC, COMPRESSED_SUFFIX, DIAGNOSTICS_TOPIC, IMU_TOPIC
from lnn_ros.node_spec.interface import NODE_NAME as POLICY_NODE_NAME
from lnn_ros.ros import signals
from lnn_ros.ros.convert import ns_to_stamp, stamp_to_ns
from lnn_ros.ros.declare import declare_and_read
from lnn_ros.ros.message_info import HAS_MESSAGE_INFO, NO_MESSAGE_INFO, hop_ns, received_perf_ns
from lnn_ros.ros.process import run_node
from lnn_ros.runtime import messages as to_record
from lnn_ros.runtime.records import Command, ImageFrame, ImuSample
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.ros.flight_log import (
    CommandArrival,
    LatencyLog,
    flight_record,
    flight_result,
    node_hops,
    save_record,
    write_json,
)
from lnn_ros.sim.ros.params import NODE_NAME, PARAMETERS, SimNodeParams
from lnn_ros.sim.world.config import SimConfig, VehicleModel
from lnn_ros.sim.world.episode import Simulator
from lnn_ros.sim.world.sensors import CameraOutput
from lnn_ros.units import NS_PER_S

CLOCK_TOPIC = "/clock"
SETTLE_S = 0.5  # after the policy node showed up, let discovery finish both ways
LEAD_MIN_NS = 300_000  # advance the simulator at least this long before a stamp is due ...
LEAD_MAX_NS = 4_000_000  # ... and at most this long (twice the smoothed cost of one advance)


def declare_parameters(node: Node) -> SimNodeParams:
    """Declare every parameter of :data:`~lnn_ros.sim.ros.params.PARAMETERS` and read them once.

    Raises:
        SimError: a value of the wrong type or out of range.
    """
    return SimNodeParams.from_values(declare_and_read(node, PARAMETERS, SimError))


class SimDroneNode(Node):
    """The simulator with its publishers and command subscription; :meth:`run` flies the episode.

    Raises:
        SimError: invalid parameters.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self.params = declare_parameters(self)
            if self.get_parameter("use_sim_time").value:
                raise SimError("sim_drone_node is the clock source; leave use_sim_time false for it.")
        except BaseException:
            self.destroy_node()
            raise
        p = self.params
        config = dataclasses.replace(
            SimConfig(),
            seed=p.seed,
            vehicle=VehicleModel(p.vehicle),
            duration_s=p.duration_s,
            stop_on_success=p.stop_on_success,
        )
        self.config = config
        self.sim = Simulator(config, p.variant, p.seed)
        reliability = ReliabilityPolicy.RELIABLE if p.sensor_qos_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        sensor_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=reliability)
        self._imu_pub = self.create_publisher(Imu, IMU_TOPIC, sensor_qos)
        self._output = CameraOutput(
            p.camera_width,
            p.camera_height,
            p.camera_encoding,
            "" if p.camera_transport == "raw" else p.camera_transport,
            p.jpeg_quality,
        )
        self._raw_output = p.camera_transport == "raw" and p.camera_encoding == "rgb8" and not (p.camera_width or p.camera_height)
        if p.camera_transport == "raw":
            self._image_pub = self.create_publisher(Image, CAMERA_TOPIC, sensor_qos)
        else:
            self._image_pub = self.create_publisher(CompressedImage, CAMERA_TOPIC + COMPRESSED_SUFFIX, sensor_qos)
        self._clock_pub = self.create_publisher(Clock, CLOCK_TOPIC, QoSProfile(depth=10))
        command_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
        # With message info (Iron+) the arrival is the middleware's reception, not when this loop got to it.
        on_command = self._on_command_info if HAS_MESSAGE_INFO else self._on_command
        if not HAS_MESSAGE_INFO:
            self.get_logger().info(NO_MESSAGE_INFO)
        self.create_subscription(TwistStamped, COMMAND_TOPIC, on_command, command_qos)
        # The policy node's own hops (sensor -> its reception, its compute) come from its /diagnostics.
        self._node_report: dict[str, str] | None = None
        self.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, QoSProfile(depth=10))
        self._imu = Imu()
        self._imu.header.frame_id = p.imu_frame_id
        self._image = Image()
        self._image.header.frame_id = p.camera_frame_id
        self._compressed = CompressedImage()
        self._compressed.header.frame_id = p.camera_frame_id
        self._clock_msg = Clock()
        self.log = LatencyLog(time.perf_counter_ns(), p.real_time_factor)
        self.completed = False
        self.get_logger().info(
            f"Simulating seed {p.seed}, variant {p.variant}, {p.duration_s} s at {p.real_time_factor}x real time; "
            f"target {self.sim.target_position.round(2).tolist()}, start {list(self.sim.scene.start_position)}."
        )

    # ------------------------------------------------------------------ commands
    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f"{POLICY_NODE_NAME}:"):
                self._node_report = {kv.key: kv.value for kv in status.values}

    def _on_command(self, msg: TwistStamped) -> None:
        self._handle_command(msg, CommandArrival)

    def _on_command_info(self, msg: TwistStamped, info: Mapping[str, Any]) -> None:
        handled = time.perf_counter_ns()
        received = received_perf_ns(info)
        hop = hop_ns(info)
        sent = None if hop is None else received - hop
        self._handle_command(msg, lambda c, now, sim: CommandArrival(c, received, sim, sent, handled))

    def _handle_command(self, msg: TwistStamped, arrival: Callable[[Command, int, int], CommandArrival]) -> None:
        now = time.perf_counter_ns()
        command = to_record.command(msg, stamp_to_ns(msg.header.stamp))
        sim_now = max(self.sim.now_ns, self.log.sim_of(now))
        self.log.command(arrival(command, now, sim_now))
        try:
            self.sim.set_command(command, stamp_ns=sim_now)
        except SimError as exc:
            self.get_logger().warning(f"Ignored command: {exc}")

    # ------------------------------------------------------------------ publishing
    def _publish(self, events: list[ImuSample | ImageFrame]) -> None:
        ns_to_stamp(self.sim.now_ns, self._clock_msg.clock)
        self._clock_pub.publish(self._clock_msg)
        for event in events:
            if isinstance(event, ImuSample):
                msg = self._imu
                ns_to_stamp(event.stamp_ns, msg.header.stamp)
                w, a, q = event.angular_velocity, event.linear_acceleration, event.orientation
                msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = (float(v) for v in w)
                msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = (float(v) for v in a)
                msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (float(v) for v in q)
                self.log.imu_published(event.stamp_ns, time.perf_counter_ns())
                self._imu_pub.publish(msg)
            else:
                if not self._raw_output:
                    event = self._output.frame(event)
                if event.encoding in ("jpeg", "png"):
                    compressed = self._compressed
                    ns_to_stamp(event.stamp_ns, compressed.header.stamp)
                    compressed.format = event.encoding
                    compressed.data = array.array("B", event.data)
                    self.log.image_published(event.stamp_ns, time.perf_counter_ns())
                    self._image_pub.publish(compressed)
                    continue
                image = self._image
                ns_to_stamp(event.stamp_ns, image.header.stamp)
                image.height, image.width, image.encoding, image.step = event.height, event.width, event.encoding, event.step
                image.data = array.array("B", event.data)  # an array is taken as is; bytes would be checked value by value
                self.log.image_published(event.stamp_ns, time.perf_counter_ns())
                self._image_pub.publish(image)

    # ------------------------------------------------------------------ the episode
    def wait_for_policy(self, executor: Executor) -> None:
        """Block until a node subscribes ``imu`` and publishes ``cmd_vel`` (then settle briefly).

        Raises:
            SimError: nobody showed up within ``wait_for_policy_s``.
        """
        timeout_s = self.params.wait_for_policy_s
        if timeout_s == 0:
            return
        deadline = time.monotonic() + timeout_s
        while not (self._imu_pub.get_subscription_count() and self.count_publishers(COMMAND_TOPIC)):
            if time.monotonic() > deadline:
                raise SimError(
                    f"No node subscribed {IMU_TOPIC!r} and published {COMMAND_TOPIC!r} (namespace "
                    f"{self.get_namespace()!r}) within wait_for_policy_s={timeout_s} s; start lnn_node "
                    "with the same ROS_DOMAIN_ID, or set wait_for_policy_s:=0.0 to fly without waiting."
                )
            self._spin_once(executor, 0.05)
        settle = time.monotonic() + SETTLE_S
        while time.monotonic() < settle:
            self._spin_once(executor, 0.05)
        self.get_logger().info("Policy node found; starting the clock.")

    def run(self, executor: Executor) -> None:
        """Fly the episode paced at real time, then drain late commands.

        The simulator is advanced to the next sensor stamp shortly *before* that stamp is due
        (by a lead that follows the measured cost of one advance), and the messages are
        published when it is due, so they go out at the wall time their stamp stands for, as
        a real sensor's would. A command arriving inside that lead is flown from the stamp on,
        i.e. at most the lead (about a millisecond) after its arrival.
        """
        sim, log = self.sim, self.log
        log.wall_start_ns = time.perf_counter_ns()
        self._publish(sim.advance_to(0))
        lead_ns = LEAD_MIN_NS
        while not sim.done:
            target = min(sim.next_stamp_ns, sim.end_ns)
            due = log.wall_of(target)
            self._spin_until(executor, due - lead_ns)
            started = time.perf_counter_ns()
            events = sim.advance_to(target)
            cost = time.perf_counter_ns() - started
            lead_ns = min(LEAD_MAX_NS, max(LEAD_MIN_NS, round(0.9 * lead_ns + 0.1 * 2 * cost)))
            self._spin_until(executor, due)
            self._publish(events)
        self.completed = True
        self._spin_until(executor, time.perf_counter_ns() + round(self.params.drain_s * NS_PER_S))

    def _spin_until(self, executor: Executor, wall_ns: int) -> None:
        """Handle callbacks (commands) until the wall clock reaches ``wall_ns``.

        When ``wall_ns`` has already passed, one callback that is ready is still handled: a loop
        running behind its schedule would otherwise take no command at all until it caught up,
        and the vehicle would fly commands hundreds of ms old (seen on Jazzy's slower executor:
        pickup p50 up to 265 ms and a flight into the target). On schedule nothing extra runs.
        """
        if wall_ns <= time.perf_counter_ns():
            self._spin_once(executor, 0.0)
        while (wait_ns := wall_ns - time.perf_counter_ns()) > 0:
            self._spin_once(executor, wait_ns / NS_PER_S)

    def _spin_once(self, executor: Executor, timeout_s: float) -> None:
        """``executor.spin_once``, turning a shutdown by SIGINT/SIGTERM into ExternalShutdownException.

        After the signal handler shut the context down, rclpy's spin_once fails creating its
        timeout timer (RCLError) instead of raising ExternalShutdownException.
        """
        if not self.context.ok() or signals.received():
            raise ExternalShutdownException()
        try:
            executor.spin_once(timeout_sec=timeout_s)
        except Exception:
            if not self.context.ok():
                raise ExternalShutdownException() from None
            raise

    def summary(self) -> dict[str, Any]:
        """The JSON summary: parameters, flight result, latency, deadlines, transport."""
        p = self.params
        return {
            "node": NODE_NAME,
            "completed": self.completed,
            "seed": p.seed,
            "variant": p.variant,
            "vehicle": p.vehicle,
            "duration_s": p.duration_s,
            "real_time_factor": p.real_time_factor,
            "flight": flight_result(self.sim.result()),
            **self._latency_summary(),
            "wall_s": round((time.perf_counter_ns() - self.log.wall_start_ns) / NS_PER_S, 3),
            "transport": {
                "rmw": os.environ.get("RMW_IMPLEMENTATION", "default"),
                "fastdds_builtin_transports": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", "DEFAULT"),
                "ros_domain_id": os.environ.get("ROS_DOMAIN_ID", "0"),
            },
        }

    def _latency_summary(self) -> dict[str, Any]:
        summary = self.log.summary(self.params.deadline_ms)
        hops = summary["hops"]
        if hops.get("available"):
            window = "its last report (the commands in its stats_window)"
            hops.update(node_hops(self._node_report, window))
        return summary

    def write_outputs(self) -> dict[str, Any]:
        """Write the summary and record files that are configured; returns the summary."""
        summary = self.summary()
        if self.params.summary_path:
            write_json(self.params.summary_path, summary)
        if self.params.record_path:
            record = flight_record(self.sim.result(), self.log, self.config.success_radius_m)
            save_record(self.params.record_path, record)
        flight, latency, deadline = summary["flight"], summary["latency_ms"], summary["deadline"]
        line = (
            f"Episode {'completed' if self.completed else 'interrupted'}: reached={flight['reached']}, "
            f"final distance {flight['final_distance_m']:.2f} m; {summary['commands_matched']} commands, latency "
            f"p50 {latency['p50']} ms, p99 {latency['p99']} ms, max {latency['max']} ms; "
            f"missed deadlines {deadline['missed']}/{deadline['checked']} ({deadline['deadline_ms']} ms)."
        )
        if self.context.ok():
            self.get_logger().info(line)
        else:  # after SIGINT/SIGTERM the logger could not reach /rosout any more
            print(f"[INFO] [{NODE_NAME}]: {line}", file=sys.stderr, flush=True)
        return summary


def _fly(node: SimDroneNode, executor: Executor) -> None:
    node.wait_for_policy(executor)
    node.run(executor)
    if not node.params.shutdown_when_done:
        executor.spin()


def main(args: list[str] | None = None) -> int:
    """Run one episode; returns the process exit code (1 if the node cannot start or no policy shows up).

    The summary and record files are written when the episode ends, also after SIGINT/SIGTERM
    (see :func:`~lnn_ros.ros.process.run_node`).
    """
    return run_node(NODE_NAME, SimDroneNode, _fly, args=args, fatal=(SimError,), finish=SimDroneNode.write_outputs)


if __name__ == "__main__":
    sys.exit(main())
