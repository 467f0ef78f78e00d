"""``lnn_node`` as its own process, driven over real DDS from this test process.

Each test starts the console script with the ``ros_env`` fixture's environment (its own
domain id, localhost only) and talks to it through an rclpy node in a private context here.

Ordering: the node handles one message at a time; when a camera frame and an IMU message are
both waiting it takes the frame first (see :mod:`lnn_ros.ros.node`). :meth:`Driver.play`
publishes so that the node sees exactly the test's order: it waits for each expected
command, and before a message whose order could be swapped with still-unconfirmed ones it
waits until ``/diagnostics`` shows the node received everything published so far.
"""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import rclpy
from bundle_factory import NARROW_LIMIT, camera_bundle, imu_bundle, make_vector_bundle, narrow_bundle  # noqa: F401 (module-scoped fixtures)
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, ListParameters, SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import stop_process, wait_until_handling_sigterm
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, Imu
from std_srvs.srv import Trigger

from lnn_ros.bundle import load_bundle
from lnn_ros.engine import Engine
from lnn_ros.node_spec.params import DECLARED_PARAMETERS, PARAMETERS
from lnn_ros.runtime import Command, ImageFrame, ImuSample, PolicyRunner

NODE_EXE = Path(sys.executable).with_name("lnn_node")
REPO = Path(__file__).resolve().parent.parent
MS = 1_000_000
NS = 1_000_000_000
T0 = 1_000 * NS  # test stamps start at 1000 s, far from the node's wall clock
H, W = 24, 32  # bundle_factory.CAMERA
LIMIT = NARROW_LIMIT  # output limits of the narrowed bundle
FAST_DIAGNOSTICS = {"diagnostics_period_s": 0.1}
# Stamps here start at T0, far from the node's clock, and Driver.sync() pauses the streams: the
# stamp checks, the command-gap holds and the stop after failsafe_hover_s (tests/test_node_failsafe.py)
# are off, so every command on cmd_vel is one the offline runner computes too.
LEGACY = {
    "max_age_s": 0.0, "max_future_s": 0.0, "time_base_tolerance_s": 0.0, "max_command_gap_s": 10.0,
    "failsafe_action": "hover",
}
# Lossless and never stale while Driver.sync() pauses the streams (the watchdog has its own test).
RELIABLE = {"input_qos_reliability": "reliable", "input_qos_depth": 100, "stale_timeout_s": 10.0, **LEGACY}

Message = ImuSample | ImageFrame


# ---------------------------------------------------------------------- the node process
def _arg(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def node_command(bundle: Path | str | None, *ros_args: str, **params: object) -> list[str]:
    """The lnn_node command line: ``model_path`` (unless None), then ``ros_args``, then ``-p`` per param."""
    if not NODE_EXE.is_file():
        pytest.fail(f"{NODE_EXE} is missing; install the package (pip install -e .) so the lnn_node console script exists.")
    args = [str(NODE_EXE), "--ros-args", *ros_args]
    if bundle is not None:
        args += ["-p", f"model_path:={bundle}"]
    for name, value in params.items():
        args += ["-p", f"{name}:={_arg(value)}"]
    return args


@contextmanager
def node_process(env: dict[str, str], log: Path, bundle: Path | str, **params: object) -> Iterator[subprocess.Popen[bytes]]:
    """Run lnn_node; on exit stop it with SIGTERM (SIGKILL only if that fails, which fails the test)."""
    with log.open("wb") as out:
        process = subprocess.Popen(node_command(bundle, **params), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_process(process, log, signal.SIGTERM, timeout_s=10.0)


# ---------------------------------------------------------------------- the test-side ROS node
def imu_msg(sample: ImuSample) -> Imu:
    msg = Imu()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(sample.stamp_ns, NS)
    msg.header.frame_id = "imu_link"
    v, a, q = sample.angular_velocity, sample.linear_acceleration, sample.orientation
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = (float(x) for x in v)
    msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = (float(x) for x in a)
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = (float(x) for x in q)
    return msg


def image_msg(frame: ImageFrame) -> Image:
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(frame.stamp_ns, NS)
    msg.header.frame_id = "camera"
    msg.height, msg.width, msg.encoding, msg.step = frame.height, frame.width, frame.encoding, frame.step
    msg.data = bytes(frame.data)
    return msg


def stamp_ns(msg: TwistStamped | DiagnosticArray | Clock) -> int:
    stamp = msg.clock if isinstance(msg, Clock) else msg.header.stamp
    return stamp.sec * NS + stamp.nanosec


class Driver:
    """This test's ROS side: publishes sensor messages, records commands and diagnostics."""

    def __init__(self, env: dict[str, str]) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(env["ROS_DOMAIN_ID"]))
        self.node = Node("lnn_node_test_driver", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.imu_pub = self.node.create_publisher(Imu, "imu", reliable)
        self.image_pub = self.node.create_publisher(Image, "camera/image_raw", reliable)
        self.clock_pub = self.node.create_publisher(Clock, "/clock", reliable)
        self.commands: list[TwistStamped] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(TwistStamped, "cmd_vel", self.commands.append, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, reliable)
        self.published = {"imu": 0, "camera": 0}
        self.last_publish_s = 0.0  # wall clock (time.time) of the last sensor message published

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    # ---------------------------------------------------------------- waiting
    def spin_until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"Timed out after {timeout_s} s waiting for {what}.")
            self.executor.spin_once(timeout_sec=0.005)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.005)

    def wait_for_node(self, streams: Sequence[str] = ("imu",), timeout_s: float = 20.0) -> None:
        """Until the node's subscriptions and its cmd_vel publisher are matched with ours."""
        pubs = [self.imu_pub if s == "imu" else self.image_pub for s in streams]
        self.spin_until(
            lambda: all(p.get_subscription_count() > 0 for p in pubs) and self.node.count_publishers("cmd_vel") > 0,
            timeout_s,
            f"lnn_node to subscribe {list(streams)} and advertise cmd_vel",
        )

    def latest_values(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values} if self.diagnostics else {}

    def wait_for_diagnostics(self, condition: Callable[[dict[str, str]], bool], what: str, timeout_s: float = 10.0) -> dict[str, str]:
        def fresh() -> bool:
            return bool(self.diagnostics) and condition(self.latest_values())

        self.spin_until(fresh, timeout_s, what)
        return self.latest_values()

    def sync(self) -> None:
        """Until the node has received every message published so far (per /diagnostics)."""
        want = dict(self.published)
        self.wait_for_diagnostics(
            lambda v: int(v.get("imu_received", 0)) >= want["imu"] and int(v.get("camera_received", 0)) >= want["camera"],
            f"the node to receive {want}",
        )

    def commands_with(self, stamps: set[int]) -> list[TwistStamped]:
        return [c for c in self.commands if stamp_ns(c) in stamps]

    # ---------------------------------------------------------------- publishing
    def publish(self, message: Message) -> None:
        self.last_publish_s = time.time()
        if isinstance(message, ImuSample):
            self.imu_pub.publish(imu_msg(message))
            self.published["imu"] += 1
        else:
            self.image_pub.publish(image_msg(message))
            self.published["camera"] += 1

    def play(self, messages: Sequence[Message], expected: Sequence[Command]) -> None:
        """Publish ``messages`` so the node handles them in this order; wait for every expected command."""
        pending = {c.stamp_ns for c in expected}
        unconfirmed_imu = unconfirmed_frames = 0
        for message in messages:
            is_imu = isinstance(message, ImuSample)
            if (not is_imu and unconfirmed_imu) or (is_imu and unconfirmed_frames > 1):
                self.sync()
                unconfirmed_imu = unconfirmed_frames = 0
            self.publish(message)
            if is_imu and message.stamp_ns in pending:
                pending.discard(message.stamp_ns)
                self.spin_until(
                    lambda s=message.stamp_ns: any(stamp_ns(c) == s for c in self.commands[-20:]),
                    10.0,
                    f"the command stamped {message.stamp_ns}",
                )
                unconfirmed_imu = unconfirmed_frames = 0  # everything before it has been handled
            elif is_imu:
                unconfirmed_imu += 1
            else:
                unconfirmed_frames += 1
        self.sync()


@pytest.fixture
def driver(ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Driver]:
    for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "RMW_IMPLEMENTATION"):
        monkeypatch.setenv(key, ros_env[key])
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    monkeypatch.delenv("ROS_STATIC_PEERS", raising=False)
    ros_driver = Driver(ros_env)
    try:
        yield ros_driver
    finally:
        ros_driver.close()


# ---------------------------------------------------------------------- messages
def imu(stamp: int, rng: np.random.Generator, scale: float = 1.0) -> ImuSample:
    return ImuSample(stamp, rng.normal(0.0, 0.5 * scale, 3), rng.normal((0.0, 0.0, 9.81), 2.0 * scale), np.array([0.0, 0.0, 0.0, 1.0]))


def image(stamp: int, rng: np.random.Generator, encoding: str = "rgb8") -> ImageFrame:
    channels = 1 if encoding == "mono8" else 3
    data = rng.integers(0, 256, H * W * channels, dtype=np.uint8).tobytes()
    return ImageFrame(stamp, H, W, encoding, W * channels, data)


def irregular_stream(seed: int, seconds: float) -> list[Message]:
    """~200 Hz IMU and ~30 Hz camera with jittered stamps, in arrival order (frames 15-45 ms late)."""
    rng = np.random.default_rng(seed)
    events: list[tuple[int, Message]] = []
    t = T0
    while t < T0 + seconds * NS:
        t += int(rng.uniform(2.0, 9.0) * MS)
        events.append((t + int(rng.uniform(0.5, 2.0) * MS), imu(t, rng)))
    t = T0 - 40 * MS
    while t < T0 + seconds * NS:
        t += int(rng.uniform(25.0, 42.0) * MS)
        events.append((t + int(rng.uniform(15.0, 45.0) * MS), image(t, rng, "bgr8" if rng.random() < 0.3 else "rgb8")))
    events.sort(key=lambda e: e[0])
    return [message for _, message in events]


def offline(bundle: Path, messages: Sequence[Message]) -> tuple[list[Command], PolicyRunner]:
    """What a PolicyRunner fed the same messages in the same order computes."""
    runner = PolicyRunner(Engine(bundle))
    commands = []
    for message in messages:
        command = runner.on_imu(message) if isinstance(message, ImuSample) else runner.on_image(message)
        if command is not None:
            commands.append(command)
    return commands, runner


def twist_of(msg: TwistStamped) -> np.ndarray:
    t = msg.twist
    return np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z])


def assert_same_commands(received: Sequence[TwistStamped], expected: Sequence[Command]) -> None:
    assert [stamp_ns(c) for c in received] == [c.stamp_ns for c in expected]
    np.testing.assert_allclose(
        np.array([twist_of(c) for c in received]), np.array([c.twist for c in expected]), rtol=0, atol=1e-6
    )


# ---------------------------------------------------------------------- tests: flying
@pytest.mark.parametrize("executor", ["single_threaded", "events"])
def test_irregular_imu_and_camera_streams_match_offline_runner(
    executor: str, driver: Driver, ros_env: dict[str, str], tmp_path: Path, camera_bundle: Path
) -> None:
    messages = irregular_stream(seed=11, seconds=1.0)
    expected, runner = offline(camera_bundle, messages)
    assert len(expected) > 150 and runner.counters_dict()["camera_waiting"] > 0
    log = tmp_path / "node.log"
    with node_process(
        ros_env, log, camera_bundle, command_frame_id="fc_body", executor=executor, **RELIABLE, **FAST_DIAGNOSTICS
    ):
        driver.wait_for_node(("imu", "camera"))
        driver.play(messages, expected)
        received = driver.commands_with({c.stamp_ns for c in expected})
        assert_same_commands(received, expected)
        assert {c.header.frame_id for c in received} == {"fc_body"}
        assert len(driver.commands_with({m.stamp_ns for m in messages})) == len(expected)  # no extra commands
        values = driver.wait_for_diagnostics(lambda v: v.get("state") == "ok", "state ok")
        counters = runner.counters_dict()
        for name in ("imu_received", "camera_received", "camera_encoded", "camera_waiting", "imu_stepped", "imu_initialised"):
            assert int(values[name]) == counters[name], name
        assert int(values["commands_published"]) == len(expected)
        assert values["bundle_hash"] == load_bundle(camera_bundle).digest
        assert values["execution_provider"] == "CPUExecutionProvider"
        p50, p99, worst = (float(values[f"step_latency_ms.{k}"]) for k in ("p50", "p99", "max"))
        assert 0 < p50 <= p99 <= worst
        assert 0 < float(values["frame_latency_ms.p50"]) <= float(values["frame_latency_ms.max"])
        if executor == "events":  # no message info: neither middleware hop is reported
            assert "transport_latency_ms.p50" not in values and "pickup_latency_ms.p50" not in values
        else:  # the hop before the node and the executor's share of step_latency_ms
            assert 0 <= float(values["transport_latency_ms.p50"]) <= float(values["transport_latency_ms.max"])
            assert 0 <= float(values["pickup_latency_ms.p50"]) <= float(values["pickup_latency_ms.max"]) <= worst
        print(f"\n{executor}: node step latency p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {worst:.3f} ms over {len(expected)} steps")
    from lnn_ros.ros.message_info import EVENTS_NO_MESSAGE_INFO, HAS_MESSAGE_INFO
    from lnn_ros.ros.process import NO_EVENTS_EXECUTOR

    text = log.read_text()
    assert NO_EVENTS_EXECUTOR not in text  # the events executor exists in the rclpy under test (Jazzy, Kilted)
    assert HAS_MESSAGE_INFO  # Jazzy and Kilted: callbacks get the middleware's reception time
    assert (EVENTS_NO_MESSAGE_INFO in text) == (executor == "events")


def test_bad_messages_are_counted_and_never_fly(
    driver: Driver, ros_env: dict[str, str], tmp_path: Path, narrow_bundle: Path
) -> None:
    rng = np.random.default_rng(12)
    t = T0
    early = [imu(t + k * 5 * MS, rng) for k in range(3)]  # before any frame: waiting for the camera
    frame = image(t + 12 * MS, rng)
    steady = [imu(t + 15 * MS + k * 5 * MS, rng, scale=100.0) for k in range(20)]  # large: outputs clamp
    t = steady[-1].stamp_ns
    wrong_size = image(t + 1 * MS, rng)._replace(height=H - 2)
    bad_frames = [
        image(t + 2 * MS, rng)._replace(encoding="rgba8"),
        image(t + 3 * MS, rng)._replace(encoding="16UC1"),
        wrong_size._replace(data=bytes(wrong_size.height * wrong_size.step)),
        image(t + 4 * MS, rng)._replace(step=W * 3 + 2),  # step says padded rows, data is not
        frame._replace(data=image(0, rng).data),  # a second frame with the first one's stamp
        image(frame.stamp_ns - 1 * MS, rng),  # older than the frame held
    ]
    nan_gyro = imu(t + 5 * MS, rng)._replace(angular_velocity=np.array([0.0, np.nan, 0.0]))
    nan_unused = imu(t + 6 * MS, rng)._replace(orientation=np.array([np.nan] * 4))  # orientation is no feature
    bad_imu = [
        nan_gyro,
        nan_unused,
        imu(t + 6 * MS, rng),  # duplicate stamp (Δt = 0)
        imu(t + 4 * MS, rng),  # out of order (Δt < 0)
    ]
    t += 10 * MS
    jump = imu(t + 300 * NS, rng)  # a stamp jump of five minutes
    after = [imu(jump.stamp_ns + k * 5 * MS, rng, scale=100.0) for k in range(1, 8)]
    messages: list[Message] = [*early, frame, *steady, *bad_frames, *bad_imu, jump, *after]
    expected, runner = offline(narrow_bundle, messages)
    counters = runner.counters_dict()
    assert counters["outputs_clamped"] > 0  # the test really exercises clamping

    with node_process(ros_env, tmp_path / "node.log", narrow_bundle, **RELIABLE, **FAST_DIAGNOSTICS) as process:
        driver.wait_for_node(("imu", "camera"))
        driver.play(messages, expected)
        values = driver.wait_for_diagnostics(
            lambda v: int(v.get("imu_received", 0)) == counters["imu_received"]
            and int(v.get("camera_received", 0)) == counters["camera_received"],
            "diagnostics covering every message",
        )
        assert process.poll() is None, "lnn_node died"
        expected_counts = {
            "camera_waiting": 3,
            "camera_wrong_encoding": 2,
            "camera_wrong_size": 1,
            "camera_malformed": 1,
            "camera_duplicate": 1,
            "camera_out_of_order": 1,
            "imu_nonfinite_input": 1,
            "imu_duplicate": 1,
            "imu_out_of_order": 1,
            "imu_gap_reset": 1,
            "camera_encoded": 1,
        }
        for name, count in expected_counts.items():
            assert int(values[name]) == count == counters[name], name
        assert int(values["outputs_clamped"]) == counters["outputs_clamped"]
        assert int(values["dropped"]) == sum(expected_counts[n] for n in expected_counts if n not in ("camera_waiting", "imu_gap_reset", "camera_encoded"))
        assert int(values["resets"]) == 1  # the gap reset

        received = driver.commands_with({m.stamp_ns for m in messages})
        assert_same_commands(received, expected)
        twists = np.array([twist_of(c) for c in received])
        limit = float(np.float32(LIMIT))  # the engine clamps in float32
        assert np.isfinite(twists).all() and np.abs(twists).max() == limit
        # Still flying after all that.
        last = imu(after[-1].stamp_ns + 5 * MS, rng)
        driver.publish(last)
        driver.spin_until(lambda: any(stamp_ns(c) == last.stamp_ns for c in driver.commands), 10.0, "a command after the bad messages")


def test_watchdog_hovers_when_the_imu_stops_and_resumes_with_a_reset_state(
    driver: Driver, ros_env: dict[str, str], tmp_path: Path, imu_bundle: Path
) -> None:
    timeout_s = 1.0
    rng = np.random.default_rng(13)
    with node_process(
        ros_env, tmp_path / "node.log", imu_bundle, stale_timeout_s=timeout_s, failsafe_rate_hz=20.0,
        **FAST_DIAGNOSTICS, **LEGACY,
    ):
        driver.wait_for_node()
        # Before any IMU message: hover, stamped with the node clock, and reported as waiting.
        driver.spin_until(lambda: len(driver.commands) >= 5, 10.0, "hover commands before the first IMU message")
        hover = list(driver.commands)
        assert all(not twist_of(c).any() for c in hover)
        hover_stamps = np.array([stamp_ns(c) for c in hover])
        assert abs(hover_stamps[-1] / NS - time.time()) < 30.0  # node (wall) clock, not sensor stamps
        assert 0 < np.median(np.diff(hover_stamps)) / NS < 0.5  # faster than PX4's 2 Hz minimum
        values = driver.wait_for_diagnostics(lambda v: v.get("state") == "waiting", "state waiting")
        assert values["failsafe"] == "true" and values["stale_streams"] == "imu"
        assert driver.diagnostics[-1].status[0].level == b"\x01"

        # Flying: one command per IMU message (after the first), no hover in between.
        first = [imu(T0 + k * 10 * MS, rng) for k in range(60)]
        expected_first, _ = offline(imu_bundle, first)
        flying_from = len(driver.commands)
        driver.play(first, expected_first)
        flown = driver.commands[flying_from:]
        start = next(i for i, c in enumerate(flown) if stamp_ns(c) == expected_first[0].stamp_ns)
        assert_same_commands(flown[start:], expected_first)

        # The IMU stops: after stale_timeout_s the node hovers and says so.
        stale_from = len(driver.commands)
        driver.spin_until(lambda: len(driver.commands) - stale_from >= 3, 10.0, "hover commands after the IMU stopped")
        failsafe = driver.commands[stale_from:]
        assert all(not twist_of(c).any() for c in failsafe)
        # Never before the timeout; stamped in the commands' one time base: the last command's stamp
        # plus the node-clock time since it (docs/failsafe.md).
        assert stamp_ns(failsafe[0]) - stamp_ns(flown[-1]) >= timeout_s * NS
        values = driver.wait_for_diagnostics(lambda v: v.get("state") == "stale", "state stale")
        assert (values["failsafe"], values["failsafe_entries"], values["stale_streams"]) == ("true", "1", "imu")
        assert driver.diagnostics[-1].status[0].level == b"\x02"

        # The IMU resumes with contiguous stamps: the state is reset before flying again, so the
        # commands are those of a fresh policy started at the second resumed message.
        resumed = [imu(first[-1].stamp_ns + k * 10 * MS, rng) for k in range(1, 41)]
        expected_resumed, _ = offline(imu_bundle, resumed[1:])
        continued, _ = offline(imu_bundle, first + resumed)
        resume_from = len(driver.commands)
        driver.play(resumed, expected_resumed)
        tail = driver.commands[resume_from:]
        flying = next(i for i, c in enumerate(tail) if stamp_ns(c) == expected_resumed[0].stamp_ns)
        assert all(not twist_of(c).any() for c in tail[:flying])  # hover until the state was reset
        assert_same_commands(tail[flying:], expected_resumed)  # then only policy commands, no hover
        without_reset = {c.stamp_ns: np.array(c.twist) for c in continued}
        first_back = tail[flying]
        assert np.abs(twist_of(first_back) - without_reset[stamp_ns(first_back)]).max() > 1e-4  # the reset mattered
        values = driver.wait_for_diagnostics(lambda v: v.get("state") == "ok", "state ok after recovery")
        assert (values["recoveries"], values["explicit_resets"], values["failsafe"]) == ("1", "1", "false")


def test_use_sim_time_stamps_hover_and_ages_with_the_clock_topic(
    driver: Driver, ros_env: dict[str, str], tmp_path: Path, imu_bundle: Path
) -> None:
    sim_start = 5_000 * NS
    rng = np.random.default_rng(14)
    with node_process(ros_env, tmp_path / "node.log", imu_bundle, use_sim_time=True, **FAST_DIAGNOSTICS):
        driver.wait_for_node()
        sim_now = sim_start
        clock = Clock()
        for _ in range(200):
            if len(driver.commands) >= 3:
                break
            sim_now += 10 * MS
            clock.clock.sec, clock.clock.nanosec = divmod(sim_now, NS)
            driver.clock_pub.publish(clock)
            driver.spin_for(0.01)
        hover = [stamp_ns(c) for c in driver.commands]
        assert len(hover) >= 3 and all(sim_start < s <= sim_now for s in hover), hover
        # IMU stamped in sim time: the age at step time is measured on the sim clock (~0, not decades).
        messages = []
        for _ in range(20):
            sim_now += 10 * MS
            clock.clock.sec, clock.clock.nanosec = divmod(sim_now, NS)
            driver.clock_pub.publish(clock)
            messages.append(imu(sim_now, rng))
            driver.publish(messages[-1])
            driver.spin_for(0.01)
        driver.spin_until(lambda: any(stamp_ns(c) == messages[-1].stamp_ns for c in driver.commands), 10.0, "the last command")
        for _ in range(50):  # diagnostics run on the sim clock too: keep it moving
            sim_now += 20 * MS
            clock.clock.sec, clock.clock.nanosec = divmod(sim_now, NS)
            driver.clock_pub.publish(clock)
            driver.spin_for(0.01)
            if driver.diagnostics and driver.latest_values().get("commands_published") == "19":
                break
        values = driver.latest_values()
        assert values.get("commands_published") == "19"
        assert abs(float(values["message_age_ms.p50"])) < 1_000.0  # sim clock minus sim stamps


# ---------------------------------------------------------------------- tests: start-up and shutdown
def run_to_exit(env: dict[str, str], bundle: Path | str | None, *ros_args: str, **params: object) -> tuple[int, str]:
    result = subprocess.run(node_command(bundle, *ros_args, **params), env=env, capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def vector_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_vector_bundle(tmp_path_factory.mktemp("vector"), window_steps=None).path


@pytest.fixture(scope="module")
def tampered_bundle(imu_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tampered") / "bundle"
    shutil.copytree(imu_bundle, folder)
    with (folder / "step.onnx").open("ab") as graph:
        graph.write(b"\0")
    return folder


BAD_CONFIGS = {
    "missing model": ("/nonexistent/bundle", {}, "'/nonexistent/bundle' does not exist"),
    "empty model_path (shipped params file)": ("params_file", {}, "'model_path' is empty"),
    "timeout out of range": (None, {"stale_timeout_s": -1.0}, "stale_timeout_s"),
    "rate of wrong type": (None, {"failsafe_rate_hz": "fast"}, "'failsafe_rate_hz' must be a double"),
    "unknown reliability": (None, {"input_qos_reliability": "sometimes"}, "'sometimes'; use one of ['best_effort', 'reliable']"),
    "unknown provider": (None, {"execution_providers": ["gpu"]}, "'gpu'; use one of"),
    "tampered bundle": ("tampered", {}, "SHA-256"),
    "vector bundle": ("vector", {}, "reads 'vector' features"),
    "misspelt parameter": (None, {"stale_timout_s": 0.2}, "Unknown lnn_node parameter 'stale_timout_s' (did you mean 'stale_timeout_s'?)"),
    "use_sim_time not a bool": (None, {"use_sim_time": 1}, "'use_sim_time'"),
    "numeric model_path": ("2024", {}, "'model_path' must be a string"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_configuration_exits_1_with_one_clear_line(
    case: str, ros_env: dict[str, str], imu_bundle: Path, request: pytest.FixtureRequest
) -> None:
    model, params, fragment = BAD_CONFIGS[case]
    ros_args: tuple[str, ...] = ()
    if model is None:
        model = imu_bundle
    elif model in ("tampered", "vector"):
        model = request.getfixturevalue(f"{model}_bundle")
    elif model == "params_file":
        model, ros_args = None, ("--params-file", str(REPO / "config" / "lnn_node.yaml"))
    code, output = run_to_exit(ros_env, model, *ros_args, **params)
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("[FATAL]") and "[lnn_node]" in lines[0], output
    assert fragment in lines[0], output
    assert "Traceback" not in output


def test_unparsable_command_line_exits_1_without_traceback(ros_env: dict[str, str], imu_bundle: Path) -> None:
    code, output = run_to_exit(ros_env, imu_bundle, "-p", "stale_timeout_s")
    assert code == 1, output
    assert "[FATAL] [lnn_node]: ROS could not start" in output and "stale_timeout_s" in output
    assert "Traceback" not in output
    code, output = run_to_exit(ros_env, imu_bundle, "--params-file", "/nonexistent/lnn_node.yaml")
    assert code == 1, output
    assert "[FATAL] [lnn_node]: Parameter file '/nonexistent/lnn_node.yaml' does not exist" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.2, 0.5, 1.0])
def test_signals_during_start_up_and_a_second_one_end_the_node_with_exit_code_0(
    delay_s: float, ros_env: dict[str, str], tmp_path: Path, camera_bundle: Path
) -> None:
    """SIGINT while importing / in rclpy.init / loading the bundle, then two more while it shuts down.

    Counted from the moment lnn_ros's handlers are in place; before that the process is the Python
    interpreter starting up, where no lnn_ros code runs (docs/ros.md, "Shutdown").
    """
    log = tmp_path / "node.log"
    with log.open("wb") as out:
        process = subprocess.Popen(node_command(camera_bundle), env=ros_env, stdout=out, stderr=subprocess.STDOUT)
    wait_until_handling_sigterm(process.pid)
    time.sleep(delay_s)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    for sig in (signal.SIGINT, signal.SIGTERM):
        if process.poll() is None:
            process.send_signal(sig)
    try:
        code = process.wait(timeout=20)
    finally:
        stop_process(process, log, signal.SIGKILL, timeout_s=1.0)
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text() and "KeyboardInterrupt" not in log.read_text()


@pytest.mark.parametrize(("sig", "executor"), [
    (signal.SIGTERM, "single_threaded"), (signal.SIGINT, "single_threaded"), (signal.SIGINT, "events"), (signal.SIGTERM, "events"),
])
def test_signal_ends_the_node_cleanly(
    sig: signal.Signals, executor: str, ros_env: dict[str, str], tmp_path: Path, camera_bundle: Path, driver: Driver
) -> None:
    log = tmp_path / "node.log"
    with node_process(ros_env, log, camera_bundle, failsafe_action="hover", executor=executor) as process:
        driver.wait_for_node(("imu", "camera"))
        driver.spin_until(lambda: len(driver.commands) > 0, 10.0, "the node to run (hover)")
        start = time.monotonic()
        process.send_signal(sig)
        code = process.wait(timeout=10)
        elapsed = time.monotonic() - start
    print(f"\nlnn_node exited {elapsed * 1e3:.0f} ms after {sig.name} with code {code}")
    assert code == 0, log.read_text()
    assert elapsed < 5.0  # generous: the requirement is 1 s, measured ~0.3 s on 2 cores
    assert "Traceback" not in log.read_text()


def _call(driver: Driver, srv_type: type, name: str, request: object) -> object:
    client = driver.node.create_client(srv_type, name)
    try:
        driver.spin_until(client.service_is_ready, 10.0, f"service {name}")
        future = client.call_async(request)
        driver.spin_until(future.done, 10.0, f"the reply of {name}")
        return future.result()
    finally:
        driver.node.destroy_client(client)


def test_parameters_are_declared_read_only_with_ranges_and_reset_service(
    driver: Driver, ros_env: dict[str, str], tmp_path: Path, imu_bundle: Path
) -> None:
    with node_process(ros_env, tmp_path / "node.log", imu_bundle, stale_timeout_s=10.0, **FAST_DIAGNOSTICS, **LEGACY):
        driver.wait_for_node()
        listed = _call(driver, ListParameters, "/lnn_node/list_parameters", ListParameters.Request())
        names = set(listed.result.names)
        assert set(DECLARED_PARAMETERS) <= names and "use_sim_time" in names
        described = _call(driver, DescribeParameters, "/lnn_node/describe_parameters", DescribeParameters.Request(names=list(DECLARED_PARAMETERS)))
        for spec, descriptor in zip(PARAMETERS, described.descriptors, strict=True):
            assert descriptor.description == spec.description and descriptor.read_only, spec.name
            if spec.low is not None:
                ranges = list(descriptor.integer_range) + list(descriptor.floating_point_range)
                assert (ranges[0].from_value, ranges[0].to_value) == (spec.low, spec.high), spec.name
        change = Parameter(name="stale_timeout_s", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=2.0))
        refused = _call(driver, SetParameters, "/lnn_node/set_parameters", SetParameters.Request(parameters=[change]))
        assert not refused.results[0].successful

        rng = np.random.default_rng(15)
        messages = [imu(T0 + k * 10 * MS, rng) for k in range(5)]
        expected, _ = offline(imu_bundle, messages)
        driver.play(messages, expected)
        reply = _call(driver, Trigger, "/lnn_node/reset", Trigger.Request())
        assert reply.success
        more = [imu(T0 + k * 10 * MS, rng) for k in range(5, 10)]
        expected_more, _ = offline(imu_bundle, more)  # a fresh state: the reset forgot everything
        driver.play(more, expected_more)
        assert_same_commands(driver.commands_with({m.stamp_ns for m in more}), expected_more)
        values = driver.wait_for_diagnostics(lambda v: v.get("explicit_resets") == "1", "the reset in diagnostics")
        assert values["resets"] == "1" and not math.isnan(float(values["message_age_ms.p50"]))


# ---------------------------------------------------------------------- executor choice
class _Logger:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


class _NodeStub:
    """What :func:`make_executor` uses of a node: its context and its logger."""

    def __init__(self, context: Context) -> None:
        self.context, self.logger = context, _Logger()

    def get_logger(self) -> _Logger:
        return self.logger


def test_events_executor_is_used_where_it_exists_and_falls_back_with_one_warning_on_humble(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lnn_ros.ros.process import NO_EVENTS_EXECUTOR, make_executor

    context = Context()
    rclpy.init(args=[], context=context)
    try:
        node = _NodeStub(context)
        events = make_executor("events", node)  # type: ignore[arg-type]
        assert not isinstance(events, SingleThreadedExecutor) and not node.logger.warnings
        events.shutdown(timeout_sec=0.0)
        assert isinstance(make_executor("single_threaded", node), SingleThreadedExecutor)  # type: ignore[arg-type]
        monkeypatch.setitem(sys.modules, "rclpy.experimental", None)  # as on Humble: the import fails
        fallback = make_executor("events", node)  # type: ignore[arg-type]
        assert isinstance(fallback, SingleThreadedExecutor)
        assert node.logger.warnings == [NO_EVENTS_EXECUTOR]
    finally:
        rclpy.try_shutdown(context=context)
