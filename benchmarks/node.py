#!/usr/bin/env python3
"""Cross-process latency of ``lnn_node`` next to a bare rclpy echo of the same messages.

Run (about two minutes on 2 cores; writes ``results/bench_node.json``)::

    python -m lnn_ros_benchmarks.node

What is measured, in one run, each time from ``publish()`` in this process to the reply's
callback in this process (so both sides include the same rclpy/DDS costs):

* ``imu``: sensor_msgs/Imu in -> geometry_msgs/TwistStamped out, one message in flight at a
  time at 200 Hz, for ``lnn_node`` flying an IMU CfC bundle and for an *echo* node (plain
  rclpy, same QoS, same message types, no policy: it copies the stamp into a TwistStamped).
  ``overhead`` = node - echo, per percentile.
* ``camera``: sensor_msgs/Image (rgb8) in at 30 Hz -> TwistStamped out, for a camera-driven
  bundle (camera-only features, so every frame is one step: decode + encoder + CfC step) and
  for the echo node, per image size and per Fast DDS transport set: the default (UDPv4 + SHM)
  and ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` (SHM + TCP for large samples).
* ``imu_streaming``: IMU at 200 Hz sent on schedule (not waiting for replies) to an IMU
  bundle, then to an IMU + camera bundle while 64x48 frames arrive at 30 Hz on the other
  topic: the difference is what running the encoder inline (same thread) costs the IMU steps.
* ``camera_formats``: camera frames as real drivers publish them -> command, for a camera-driven
  bundle whose manifest declares preprocessing (64x48 encoder): 64x48 rgb8, 640x480 bgr8
  (sensor_msgs/Image) and 1280x720 jpeg (CompressedImage on camera/image_raw/compressed,
  ``camera_transport:=compressed``), next to the echo node given the same message, over
  ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` (1 MB best-effort frames over UDP are lost); the node's
  ``preprocess_ms`` from /diagnostics is the decoding / resizing share. ``--formats-only`` runs
  just this section.
* ``executors``: the ``imu`` measurement for ``executor:=single_threaded`` and ``executor:=events``
  (rclpy's EventsExecutor), alternating in three rounds, each session with its own echo;
  ``--executors-only`` runs just this section.
* ``node_step_latency_ms``: the node's own figure from /diagnostics (message taken ->
  command published), next to each cross-process one.
* ``in_process_us``: PolicyRunner.on_imu and on_image (decode + encode + step) without ROS,
  back to back and paced at the camera rate (idle gaps between frames cost cache and clock
  warmth on this VM: compare the two).

Timings on a shared 2-core machine are noisy; the machine's load average is recorded.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lnn_ros.units import NS_PER_MS, NS_PER_S

REPO = Path(__file__).resolve().parent.parent
T0 = 1_000 * NS_PER_S
TARGETS_MS = {"imu_overhead_p99": 0.5, "imu_p99": 2.0, "camera_p99": 8.0}


@dataclass(frozen=True)
class BenchConfig:
    imu_rate_hz: float = 200.0
    camera_rate_hz: float = 30.0
    imu_samples: int = 2000
    camera_samples: int = 300
    warmup: int = 100
    camera_sizes: tuple[tuple[int, int], ...] = ((64, 48), (160, 120))
    camera_formats: tuple[tuple[str, int, int], ...] = (("rgb8", 64, 48), ("bgr8", 640, 480), ("jpeg", 1280, 720))
    transports: tuple[str, ...] = ("default", "LARGE_DATA")
    units: int = 32
    seed: int = 0


# ---------------------------------------------------------------------- bundles (needs torch)
def build_bundles(folder: Path, config: BenchConfig) -> dict[str, Path]:
    """An IMU CfC bundle, camera-only bundles per size, and one IMU + camera bundle (64x48)."""
    import torch
    from torch import nn

    from lnn_ros.bundle import CameraSpec, DtLimits, FeatureSpec, OutputSpec
    from lnn_ros.bundle.manifest import IMU_FIELDS
    from lnn_ros.bundle.preprocess import Preprocess
    from lnn_ros.cells import build_cell
    from lnn_ros.onnx_export import export_bundle
    from lnn_ros.training.models import default_cell_config

    class Encoder(nn.Module):
        """Three strided convolutions, global pooling, a linear layer: [B,3,H,W] -> [B,16]."""

        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(
                nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 16), nn.Tanh(),
            )

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.layers(image)

    imu = [FeatureSpec(f.replace(".", "_"), "imu", field=f) for f in IMU_FIELDS[:6]]
    outputs = [
        OutputSpec("vx", "m/s", -2.0, 2.0, "linear.x"),
        OutputSpec("vy", "m/s", -2.0, 2.0, "linear.y"),
        OutputSpec("vz", "m/s", -1.0, 1.0, "linear.z"),
        OutputSpec("yaw_rate", "rad/s", -1.0, 1.0, "angular.z"),
    ]
    dt = DtLimits(min_s=1e-4, max_s=0.5, max_gap_s=1.0)

    def export(name: str, features: list[FeatureSpec], size: tuple[int, int] | None, preprocess: bool = False) -> Path:
        torch.manual_seed(config.seed)
        cell = build_cell(default_cell_config("cfc", len(features), len(outputs), config.units))
        camera = None if size is None else CameraSpec(
            size[0], size[1], "rgb8", 16, (0.5,) * 3, (0.25,) * 3, preprocess=Preprocess() if preprocess else None
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_bundle(
                cell, folder / name, name=name, features=features, outputs=outputs, dt=dt, window_steps=None,
                encoder=None if size is None else Encoder(), camera=camera,
            )
        return folder / name

    camera = [FeatureSpec(f"camera_{i}", "camera", index=i) for i in range(16)]
    bundles = {"imu": export("imu", imu, None), "imu_camera": export("imu_camera", imu + camera, (64, 48))}
    for width, height in config.camera_sizes:
        bundles[f"camera_{width}x{height}"] = export(f"camera_{width}x{height}", camera, (width, height))
    bundles["camera_preprocess"] = export("camera_preprocess", camera, (64, 48), preprocess=True)
    return bundles


# ---------------------------------------------------------------------- the echo node (--echo)
def run_echo() -> int:
    """Plain rclpy: Imu or Image in (sensor QoS) -> TwistStamped with the same stamp out (reliable).

    Same executor, QoS, 20 Hz timer and shutdown handling as lnn_node; no policy.
    """
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image, Imu

    from lnn_ros.ros.node import spin_until_shutdown

    rclpy.init()
    node = Node("bench_echo")
    reply = TwistStamped()
    publisher = node.create_publisher(TwistStamped, "cmd_vel", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))

    def echo(msg: Imu | Image | CompressedImage) -> None:
        reply.header.stamp = msg.header.stamp
        publisher.publish(reply)

    node.create_subscription(Image, "camera/image_raw", echo, qos_profile_sensor_data)
    node.create_subscription(CompressedImage, "camera/image_raw/compressed", echo, qos_profile_sensor_data)
    node.create_subscription(Imu, "imu", echo, qos_profile_sensor_data)
    node.create_timer(0.05, lambda: None)  # lnn_node's failsafe timer: the same wake-ups
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        spin_until_shutdown(executor)
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


# ---------------------------------------------------------------------- measurement side
@dataclass(frozen=True)
class Latency:
    samples: int
    lost: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, latencies_ns: list[int], lost: int) -> Latency:
        ms = np.array(latencies_ns, dtype=np.float64) / 1e6
        if not len(ms):  # every message lost: say so rather than fail
            return cls(0, lost, float("nan"), float("nan"), float("nan"))
        return cls(len(ms), lost, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.max()))


class Driver:
    """This process's ROS side, in a private context: per target (``node``, ``echo``) sensor
    publishers and a cmd_vel subscription; the echo node runs in namespace ``/echo``."""

    def __init__(self, domain_id: int, targets: tuple[str, ...]) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import TwistStamped
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image, Imu

        self.rclpy = rclpy
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("bench_driver", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.targets = targets
        self.pubs: dict[tuple[str, str], object] = {}
        self.received: dict[str, dict[int, int]] = {}  # target -> stamp -> perf_counter_ns at the reply
        for target in targets:
            prefix = "" if target == "node" else f"{target}/"
            self.pubs[target, "imu"] = self.node.create_publisher(Imu, f"{prefix}imu", qos_profile_sensor_data)
            self.pubs[target, "camera"] = self.node.create_publisher(Image, f"{prefix}camera/image_raw", qos_profile_sensor_data)
            self.pubs[target, "compressed"] = self.node.create_publisher(
                CompressedImage, f"{prefix}camera/image_raw/compressed", qos_profile_sensor_data
            )
            self.received[target] = {}
            self.node.create_subscription(TwistStamped, f"{prefix}cmd_vel", self._receiver(self.received[target]), reliable)
        self.imu_msg = Imu()
        self.imu_msg.linear_acceleration.z = 9.81
        self.image_msg = Image()
        self.compressed_msg = CompressedImage()
        self.diagnostics: dict[str, str] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)

    def _on_diagnostics(self, msg: object) -> None:
        for status in msg.status:  # type: ignore[attr-defined]
            if status.name.startswith("lnn_node"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def node_step_latency(self) -> dict[str, float]:
        """lnn_node's own callback latency (message taken -> command published) from /diagnostics."""
        self.spin_until(lambda: False, 1.2)  # one more report
        return {k: float(self.diagnostics.get(f"step_latency_ms.{k}", "nan")) for k in ("p50", "p99", "max")}

    @staticmethod
    def _receiver(received: dict[int, int]) -> Callable[[object], None]:
        def on_reply(msg: object) -> None:
            now = time.perf_counter_ns()
            stamp = msg.header.stamp  # type: ignore[attr-defined]
            received[stamp.sec * NS_PER_S + stamp.nanosec] = now

        return on_reply

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.001)
        return True

    def wait_for_peers(self, streams: tuple[str, ...]) -> None:
        def matched() -> bool:
            return all(
                self.pubs[t, s].get_subscription_count() > 0 for t in self.targets for s in streams  # type: ignore[attr-defined]
            ) and all(self.node.count_publishers("cmd_vel" if t == "node" else f"{t}/cmd_vel") > 0 for t in self.targets)

        if not self.spin_until(matched, 30.0):
            raise RuntimeError(f"The processes under test did not subscribe {streams} / advertise cmd_vel within 30 s.")

    def set_image(self, width: int, height: int, rng: np.random.Generator) -> None:
        self.image_msg.height, self.image_msg.width, self.image_msg.encoding = height, width, "rgb8"
        self.image_msg.step = width * 3
        self.image_msg.data = rng.integers(0, 256, height * width * 3, dtype=np.uint8).tobytes()

    def set_frame(self, encoding: str, width: int, height: int) -> int:
        """A camera-like scene (smooth, so jpeg sizes are realistic) in ``encoding``; returns its bytes."""
        import io

        from lnn_ros_tools.synthetic.flight import frame_at

        rgb = frame_at(T0, 1.0, width, height).to_array()
        if encoding == "jpeg":
            from PIL import Image as PilImage

            buffer = io.BytesIO()
            PilImage.fromarray(rgb).save(buffer, format="JPEG", quality=90)
            self.compressed_msg.format = "jpeg"
            self.compressed_msg.data = array.array("B", buffer.getvalue())  # bytes would be checked value by value
            return len(buffer.getvalue())
        pixels = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
        self.image_msg.height, self.image_msg.width, self.image_msg.encoding = height, width, encoding
        self.image_msg.step = width * 3
        self.image_msg.data = array.array("B", np.ascontiguousarray(pixels).tobytes())
        return width * height * 3

    def send(self, target: str, stream: str, stamp_ns: int) -> int:
        msg = self.imu_msg if stream == "imu" else self.compressed_msg if stream == "compressed" else self.image_msg
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, NS_PER_S)
        publisher = self.pubs[target, stream]
        sent = time.perf_counter_ns()
        publisher.publish(msg)  # type: ignore[attr-defined]
        return sent

    def ping_pong(self, stream: str, rate_hz: float, count: int, warmup: int, first_stamp: int) -> dict[str, Latency]:
        """One message in flight at a time, paced at ``rate_hz``, alternating between the targets
        (so load changes on the machine hit them alike); replies are matched by stamp."""
        period_ns = int(NS_PER_S / rate_hz)
        latencies: dict[str, list[int]] = {t: [] for t in self.targets}
        lost = dict.fromkeys(self.targets, 0)
        next_send = time.perf_counter_ns()
        for i in range(warmup + count):
            stamp = first_stamp + i * period_ns
            for target in self.targets:
                while time.perf_counter_ns() < next_send:
                    self.executor.spin_once(timeout_sec=max(0.0, (next_send - time.perf_counter_ns()) / NS_PER_S))
                next_send += period_ns // len(self.targets)
                received = self.received[target]
                sent = self.send(target, stream, stamp)
                if not self.spin_until(lambda: stamp in received, 1.0):
                    lost[target] += i >= warmup
                elif i >= warmup:
                    latencies[target].append(received[stamp] - sent)
        return {t: Latency.of(latencies[t], lost[t]) for t in self.targets}

    def concurrent(self, imu_hz: float, camera_hz: float | None, seconds: float, warmup_s: float, first_stamp: int) -> Latency:
        """IMU (and camera, unless ``camera_hz`` is None) to the node on their own schedules, not
        waiting for replies; latency of the IMU messages (they produce the commands)."""
        imu_period = int(NS_PER_S / imu_hz)
        camera_period = int(NS_PER_S / camera_hz) if camera_hz else 1 << 62
        start = time.perf_counter_ns()
        end = start + int((warmup_s + seconds) * NS_PER_S)
        measure_from = start + int(warmup_s * NS_PER_S)
        next_imu, next_frame = start, start + camera_period // 2
        sent_imu: dict[int, int] = {}
        received = self.received["node"]
        k = 0
        while (now := time.perf_counter_ns()) < end:
            if now >= next_frame:
                self.send("node", "camera", first_stamp + (now - start) - 1)
                next_frame += camera_period
            if now >= next_imu:
                stamp = first_stamp + k * imu_period
                sent = self.send("node", "imu", stamp)
                if sent >= measure_from:
                    sent_imu[stamp] = sent
                next_imu += imu_period
                k += 1
            wake = min(next_imu, next_frame)
            self.executor.spin_once(timeout_sec=max(0.0, (wake - time.perf_counter_ns()) / NS_PER_S))
        self.spin_until(lambda: all(s in received for s in sent_imu), 1.0)
        latencies = [received[s] - t for s, t in sent_imu.items() if s in received]
        return Latency.of(latencies, len(sent_imu) - len(latencies))


@contextmanager
def peers(commands: list[list[str]], env: dict[str, str], log: Path) -> Iterator[None]:
    """Run the processes under test; stop them with SIGTERM and complain if one does not exit cleanly."""
    processes = []
    try:
        with log.open("ab") as out:
            for args in commands:
                processes.append(subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT))
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process, args in zip(processes, commands):
            try:
                code = process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
                print(f"warning: {Path(args[0]).name} ignored SIGTERM for 10 s and was killed", file=sys.stderr)
            if code != 0:
                print(f"warning: {' '.join(args[:3])} exited with code {code}", file=sys.stderr)


@contextmanager
def session(
    bundle: Path,
    transport: str,
    domain_id: int,
    log: Path,
    streams: tuple[str, ...],
    with_echo: bool = True,
    node_params: tuple[str, ...] = (),
) -> Iterator[Driver]:
    """lnn_node on ``bundle`` (and the echo node) running, and a driver matched with them."""
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", RMW_IMPLEMENTATION="rmw_fastrtps_cpp")
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    if transport != "default":
        env["FASTDDS_BUILTIN_TRANSPORTS"] = transport
    commands = [node_args(bundle, node_params)] + ([echo_args()] if with_echo else [])
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # Fast DDS reads the transport choice when this process's participant is created
    try:
        with peers(commands, env, log):
            driver = Driver(domain_id, ("node", "echo") if with_echo else ("node",))
            try:
                driver.wait_for_peers(streams)
                yield driver
            finally:
                driver.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def node_args(bundle: Path, params: tuple[str, ...] = ()) -> list[str]:
    exe = Path(sys.executable).with_name("lnn_node")
    # Stamps start at T0 (not the node clock) and ping-pong pauses the stream: stamp checks, holds
    # and the stop after failsafe_hover_s are off, so cmd_vel carries only the policy's replies.
    unchecked = ["max_age_s:=0.0", "max_future_s:=0.0", "max_command_gap_s:=10.0", "failsafe_action:=hover"]
    args = [str(exe), "--ros-args", "-p", f"model_path:={bundle}", "-p", "stale_timeout_s:=2.0"]
    for value in [*unchecked, *params]:
        args += ["-p", value]
    return args


def echo_args() -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--echo", "--ros-args", "-r", "__ns:=/echo"]


def in_process(bundles: dict[str, Path], config: BenchConfig) -> dict[str, dict[str, float]]:
    from lnn_ros.engine import Engine
    from lnn_ros.runtime import ImageFrame, ImuSample, PolicyRunner

    rng = np.random.default_rng(config.seed)
    out: dict[str, dict[str, float]] = {}
    runner = PolicyRunner(Engine(bundles["imu"]))
    sample = ImuSample(0, rng.normal(size=3), rng.normal(size=3), np.array([0.0, 0.0, 0.0, 1.0]))
    times = []
    for i in range(3000):
        start = time.perf_counter_ns()
        runner.on_imu(sample._replace(stamp_ns=T0 + i * 5 * NS_PER_MS))
        times.append(time.perf_counter_ns() - start)
    out["imu_on_imu_us"] = {"p50": float(np.percentile(times, 50)) / 1e3, "p99": float(np.percentile(times, 99)) / 1e3}
    for width, height in config.camera_sizes:
        runner = PolicyRunner(Engine(bundles[f"camera_{width}x{height}"]))
        data = rng.integers(0, 256, width * height * 3, dtype=np.uint8).tobytes()
        stamp = T0
        for label, pause_s, frames in (("back_to_back", 0.0, 300), ("paced", 1.0 / config.camera_rate_hz, 100)):
            times = []
            for _ in range(frames):
                stamp += 33 * NS_PER_MS
                start = time.perf_counter_ns()
                runner.on_image(ImageFrame(stamp, height, width, "rgb8", width * 3, data))
                times.append(time.perf_counter_ns() - start)
                time.sleep(pause_s)
            out[f"camera_{width}x{height}_on_image_{label}_us"] = {
                "p50": float(np.percentile(times[5:], 50)) / 1e3,
                "p99": float(np.percentile(times[5:], 99)) / 1e3,
            }
    return out


def overhead(node: Latency, echo: Latency) -> dict[str, float]:
    return {"p50_ms": node.p50_ms - echo.p50_ms, "p99_ms": node.p99_ms - echo.p99_ms}


def run(config: BenchConfig, formats_only: bool = False, executors_only: bool = False) -> dict[str, object]:
    rng = np.random.default_rng(config.seed)
    domain = random.Random().randrange(110, 200)
    results: dict[str, object] = {
        "command": "python python -m lnn_ros_benchmarks.node",
        "config": asdict(config),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": os.getloadavg(),
        },
        "targets_ms": TARGETS_MS,
    }
    with tempfile.TemporaryDirectory(prefix="bench_node_") as tmp:
        folder = Path(tmp)
        log = folder / "processes.log"  # output of lnn_node and the echo node, shown if a session fails
        log.write_bytes(b"")
        print("exporting bundles ...", flush=True)
        bundles = build_bundles(folder, config)
        try:
            if formats_only or executors_only:
                (measure_formats if formats_only else measure_executors)(results, bundles, config, domain, log)
                results["machine"]["loadavg_end"] = os.getloadavg()  # type: ignore[index]
                return results
            results["in_process_us"] = in_process(bundles, config)
            measure(results, bundles, config, domain, log, rng)
            measure_executors(results, bundles, config, domain, log)
            measure_formats(results, bundles, config, domain, log)
        except RuntimeError:
            print(log.read_text()[-4000:], file=sys.stderr)
            raise
    results["machine"]["loadavg_end"] = os.getloadavg()  # type: ignore[index]
    imu: dict[str, object] = results["imu"]  # type: ignore[assignment]
    camera: list[dict[str, object]] = results["camera"]  # type: ignore[assignment]
    node_imu: Latency = imu["node"]  # type: ignore[assignment]
    results["met"] = {
        "imu_overhead_p99": imu["overhead"]["p99_ms"] <= TARGETS_MS["imu_overhead_p99"],  # type: ignore[index]
        "imu_p99": node_imu.p99_ms <= TARGETS_MS["imu_p99"],
        "camera_p99": {f"{c['image']} {c['transport']}": c["node"].p99_ms <= TARGETS_MS["camera_p99"] for c in camera},  # type: ignore[union-attr]
    }
    return results


def measure(
    results: dict[str, object], bundles: dict[str, Path], config: BenchConfig, domain: int, log: Path, rng: np.random.Generator
) -> None:
    """The cross-process sessions; fills ``results`` in place."""
    with session(bundles["imu"], "default", domain, log, ("imu",)) as driver:
        imu: dict[str, object] = dict(driver.ping_pong("imu", config.imu_rate_hz, config.imu_samples, config.warmup, T0))
        imu["node_step_latency_ms"] = driver.node_step_latency()
    imu["overhead"] = overhead(imu["node"], imu["echo"])  # type: ignore[arg-type]
    print(f"imu: {imu}", flush=True)
    results["imu"] = imu

    streaming: dict[str, object] = {"image": "64x48", "camera_rate_hz": config.camera_rate_hz}
    seconds = config.imu_samples / config.imu_rate_hz
    for name, bundle, streams, camera_hz in (
        ("imu_only_bundle", "imu", ("imu",), None),
        ("imu_camera_bundle", "imu_camera", ("imu", "camera"), config.camera_rate_hz),
    ):
        with session(bundles[bundle], "default", domain, log, streams, with_echo=False) as driver:
            driver.set_image(64, 48, rng)
            streaming[name] = driver.concurrent(config.imu_rate_hz, camera_hz, seconds, 1.0, T0)
            streaming[f"{name}_node_step_latency_ms"] = driver.node_step_latency()
    print(f"imu streaming: {streaming}", flush=True)
    results["imu_streaming"] = streaming

    camera: list[dict[str, object]] = []
    for transport in config.transports:
        for width, height in config.camera_sizes:
            with session(bundles[f"camera_{width}x{height}"], transport, domain, log, ("camera",)) as driver:
                driver.set_image(width, height, rng)
                measured = driver.ping_pong("camera", config.camera_rate_hz, config.camera_samples, config.warmup // 4, T0)
                step = driver.node_step_latency()
            entry: dict[str, object] = {"image": f"{width}x{height}", "bytes": width * height * 3, "transport": transport}
            entry.update(measured)
            entry["node_step_latency_ms"] = step
            entry["overhead"] = overhead(measured["node"], measured["echo"])
            print(f"camera {entry}", flush=True)
            camera.append(entry)
    results["camera"] = camera


EXECUTOR_ROUNDS = 3


def measure_executors(results: dict[str, object], bundles: dict[str, Path], config: BenchConfig, domain: int, log: Path) -> None:
    """IMU ping-pong through lnn_node on each ``executor`` (single_threaded, events), in interleaved rounds; fills ``results``.

    Each session runs the echo node beside the policy node, so each round has its own echo figure and
    the node's overhead over it; the executors alternate within a round so both see the same load.
    """
    rounds: list[dict[str, object]] = []
    for index in range(EXECUTOR_ROUNDS):
        entry: dict[str, object] = {"round": index}
        for executor in ("single_threaded", "events"):
            with session(bundles["imu"], "default", domain, log, ("imu",), node_params=(f"executor:={executor}",)) as driver:
                measured = driver.ping_pong("imu", config.imu_rate_hz, config.imu_samples, config.warmup, T0)
                step = driver.node_step_latency()
            entry[executor] = {**measured, "node_step_latency_ms": step, "overhead": overhead(measured["node"], measured["echo"])}
        single, events = entry["single_threaded"], entry["events"]
        entry["events_over_single_threaded"] = {  # node latency, same round
            key: getattr(events["node"], key) / getattr(single["node"], key)  # type: ignore[index]
            for key in ("p50_ms", "p99_ms")
        }
        print(f"executors round {index}: {entry}", flush=True)
        rounds.append(entry)
    results["executors"] = {"rounds": rounds, "bundle": "imu CfC (the imu section's)", "samples_per_session": config.imu_samples}


def measure_formats(results: dict[str, object], bundles: dict[str, Path], config: BenchConfig, domain: int, log: Path) -> None:
    """Camera frames as drivers publish them -> command (bundle with declared preprocessing); fills ``results``."""
    formats: list[dict[str, object]] = []
    for encoding, width, height in config.camera_formats:
        compressed = encoding == "jpeg"
        stream = "compressed" if compressed else "camera"
        params = ("camera_transport:=compressed",) if compressed else ()
        # LARGE_DATA (SHM + TCP): with the default UDP transport, best-effort 1 MB frames are lost
        # in fragments on a loaded machine and nothing would be measured.
        with session(bundles["camera_preprocess"], "LARGE_DATA", domain, log, (stream,), node_params=params) as driver:
            size = driver.set_frame(encoding, width, height)
            measured = driver.ping_pong(stream, config.camera_rate_hz, config.camera_samples, config.warmup // 4, T0)
            step = driver.node_step_latency()
            preprocess = {k: float(driver.diagnostics.get(f"preprocess_ms.{k}", "nan")) for k in ("p50", "p99", "max")}
            counters = {k: v for k, v in driver.diagnostics.items() if k.startswith("camera_") or k == "resets"}
        entry: dict[str, object] = {"frame": f"{width}x{height} {encoding}", "bytes": size, "transport": "LARGE_DATA"}
        entry.update(measured)
        entry["node_step_latency_ms"] = step
        entry["node_preprocess_ms"] = preprocess
        entry["node_counters"] = counters
        entry["overhead"] = overhead(measured["node"], measured["echo"])
        print(f"camera format {entry}", flush=True)
        formats.append(entry)
    results["camera_formats"] = formats


def _jsonable(value: object) -> object:
    if isinstance(value, Latency):
        return asdict(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("results") / "bench_node.json")
    parser.add_argument("--quick", action="store_true", help="a tenth of the samples (a smoke run)")
    parser.add_argument("--formats-only", action="store_true",
                        help="only the camera_formats section (640x480 bgr8, 1280x720 jpeg, ...); merged into --out")
    parser.add_argument("--executors-only", action="store_true",
                        help="only the executors section (single_threaded vs events, interleaved rounds); merged into --out")
    args, _ros_args = parser.parse_known_args(argv)  # the echo node gets --ros-args (rclpy reads sys.argv)
    if args.echo:
        return run_echo()
    config = BenchConfig()
    if args.quick:
        config = BenchConfig(imu_samples=200, camera_samples=30, warmup=20)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = _jsonable(run(config, formats_only=args.formats_only, executors_only=args.executors_only))
    for flag, section, option in (
        (args.formats_only, "camera_formats", "--formats-only"),
        (args.executors_only, "executors", "--executors-only"),
    ):
        if flag:  # keep the other sections of an earlier full run
            previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
            previous[section] = results[section]  # type: ignore[index]
            previous[f"{section}_machine"] = results["machine"]  # type: ignore[index]
            previous[f"{section}_command"] = f"python -m lnn_ros_benchmarks.node {option}"
            results = previous
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if "met" in results:  # type: ignore[operator]
        print(json.dumps(results["met"], indent=2))  # type: ignore[index]
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
