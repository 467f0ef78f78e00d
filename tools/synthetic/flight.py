"""A deterministic synthetic flight: IMU, camera and expert commands, written as a bag.

``python -m lnn_ros_tools.synthetic.flight tests/fixtures/flight_small`` regenerates the
committed test fixture (2 s, 200 Hz IMU, 30 Hz 32x24 rgb8 camera, 50 Hz expert ``cmd_vel``;
about 0.4 MB). Tests check that the committed bag still equals what this module produces, so
the two cannot drift apart. A bag recorded from the simulator can
replace it later; keep the topic names.

The signals are smooth functions of time (no random numbers): a slow yawing, climbing
sweep. Log times are stamps plus a fixed transport latency per stream (IMU 1 ms, camera
12 ms, commands 2 ms), so log order and stamp order differ, as in a real recording.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lnn_ros.bag.writer import BagWriter
from lnn_ros.runtime.records import Command, ImageFrame, ImuSample
from lnn_ros.units import NS_PER_S

START_NS = 1_700_000_000_000_000_000  # a wall-clock-like start, as in a real recording
IMU_TOPIC, CAMERA_TOPIC, COMMAND_TOPIC = "/imu", "/camera/image_raw", "/cmd_vel"
LATENCY_NS = {IMU_TOPIC: 1_000_000, CAMERA_TOPIC: 12_000_000, COMMAND_TOPIC: 2_000_000}
WIDTH, HEIGHT = 32, 24


def _ticks(rate_hz: float, seconds: float, phase_ns: int = 0) -> Iterator[tuple[int, float]]:
    period_ns = round(NS_PER_S / rate_hz)
    for i in range(int(seconds * rate_hz)):
        stamp = START_NS + phase_ns + i * period_ns
        yield stamp, (stamp - START_NS) / NS_PER_S


def imu_at(stamp_ns: int, t: float) -> ImuSample:
    yaw = 0.3 * math.sin(0.8 * t)
    return ImuSample(
        stamp_ns,
        np.array([0.05 * math.sin(5.0 * t), 0.04 * math.cos(4.0 * t), 0.24 * math.cos(0.8 * t)]),
        np.array([0.3 * math.sin(2.0 * t), -0.2 * math.cos(1.5 * t), 9.81 + 0.5 * math.sin(3.0 * t)]),
        np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)]),
    )


def frame_at(stamp_ns: int, t: float, width: int = WIDTH, height: int = HEIGHT) -> ImageFrame:
    rows = np.arange(height, dtype=np.float64)[:, None]
    cols = np.arange(width, dtype=np.float64)[None, :]
    shift = 40.0 * t
    shape = (height, width)
    red = np.broadcast_to(127.5 + 127.5 * np.sin((cols + shift) / 5.0), shape)
    green = np.broadcast_to(127.5 + 127.5 * np.cos((rows - shift) / 4.0), shape)
    blue = np.full(shape, 255.0 * (0.5 + 0.5 * math.sin(t)))
    pixels = np.stack([red, green, blue], axis=-1).round().clip(0, 255).astype(np.uint8)
    return ImageFrame(stamp_ns, height, width, "rgb8", width * 3, pixels.tobytes())


def command_at(stamp_ns: int, t: float) -> Command:
    return Command(
        stamp_ns, (0.8 * math.sin(0.5 * t), 0.3 * math.cos(0.7 * t), 0.2 * math.sin(t), 0.0, 0.0, 0.4 * math.sin(0.8 * t))
    )


def write_flight(
    path: str | Path,
    *,
    seconds: float = 2.0,
    imu_hz: float = 200.0,
    camera_hz: float = 30.0,
    command_hz: float = 50.0,
    storage: str = "mcap",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Path:
    """Write the synthetic flight (frames of ``width`` x ``height`` rgb8) to a new bag at ``path``."""
    entries: list[tuple[int, int, str, object]] = []
    for stamp, t in _ticks(imu_hz, seconds):
        entries.append((stamp + LATENCY_NS[IMU_TOPIC], 0, IMU_TOPIC, imu_at(stamp, t)))
    for stamp, t in _ticks(camera_hz, seconds, phase_ns=2_500_000):
        entries.append((stamp + LATENCY_NS[CAMERA_TOPIC], 1, CAMERA_TOPIC, frame_at(stamp, t, width, height)))
    for stamp, t in _ticks(command_hz, seconds):
        entries.append((stamp + LATENCY_NS[COMMAND_TOPIC], 2, COMMAND_TOPIC, command_at(stamp, t)))
    entries.sort(key=lambda e: (e[0], e[1]))
    with BagWriter(path, storage) as bag:
        for log_time, _, topic, record in entries:
            bag.write_record(topic, record, log_time)  # type: ignore[arg-type]
    return Path(path)


if __name__ == "__main__":
    import shutil

    if len(sys.argv) != 2:
        sys.exit("usage: python -m lnn_ros_tools.synthetic.flight OUT_BAG_FOLDER")
    shutil.rmtree(sys.argv[1], ignore_errors=True)
    written = write_flight(sys.argv[1])
    size = sum(p.stat().st_size for p in written.iterdir())
    print(f"wrote {written} ({size / 1e6:.2f} MB)")
