"""Bags as real cameras record them (written with rosbags) replay with the shipped camera policy.

640x480 bgr8 (sqlite3), 752x480 mono8 with padded rows (mcap), bgra8 on a ZED-like topic name,
1280x720 jpeg ``CompressedImage`` on ``<camera>/image_raw/compressed``: the message type is
detected from the bag, the bundle's declared preprocessing brings every frame to the encoder's
size, and the policy commands (nearly) every IMU message after the first frame. The same bags
through ``bag-to-dataset`` store the frames exactly as the runtime's preprocessing makes them.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest

from lnn_ros.bag import BagTopics
from lnn_ros.bag.dataset import DatasetConfig, bags_to_dataset
from lnn_ros.bag.replay import ReplayConfig, replay_bag
from lnn_ros.bag.topics import COMPRESSED_IMAGE_TYPE
from lnn_ros.bag.writer import BagWriter
from lnn_ros.bundle import load_bundle
from lnn_ros.runtime.image import ImageDecoder
from lnn_ros.runtime.records import ImageFrame
from lnn_ros_tools.synthetic.flight import command_at, frame_at, imu_at

pytest.importorskip("rosbags")
Image = pytest.importorskip("PIL.Image")

MODEL = Path(__file__).resolve().parent.parent / "models" / "drone_cfc"
SECONDS = 1.5
IMU_HZ = 200.0
CAMERA_HZ = 20.0


def camera_message(kind: str, stamp_ns: int, t: float, typestore: object) -> tuple[str, object]:
    """(message type, rosbags message) of one frame of ``kind``."""
    from lnn_ros.bag import messages

    if kind == "jpeg_1280x720":
        rgb = frame_at(stamp_ns, t, 1280, 720).to_array()
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="JPEG", quality=85)
        header = messages._header(stamp_ns, "zed_left", typestore)  # type: ignore[arg-type]
        msg = typestore.types[COMPRESSED_IMAGE_TYPE](  # type: ignore[attr-defined]
            header=header, format="bgr8; jpeg compressed bgr8", data=np.frombuffer(buffer.getvalue(), np.uint8)
        )
        return COMPRESSED_IMAGE_TYPE, msg
    width, height, encoding, pad = {
        "bgr8_640x480": (640, 480, "bgr8", 0),
        "mono8_752x480": (752, 480, "mono8", 48),
        "bgra8_672x376": (672, 376, "bgra8", 0),
    }[kind]
    rgb = frame_at(stamp_ns, t, width, height).to_array()
    if encoding == "bgr8":
        pixels = rgb[:, :, ::-1]
    elif encoding == "mono8":
        pixels = (rgb @ np.array([0.299, 0.587, 0.114]) + 0.5).astype(np.uint8)[:, :, None]
    else:
        pixels = np.concatenate([rgb[:, :, ::-1], np.full((height, width, 1), 255, np.uint8)], axis=2)
    rows = np.ascontiguousarray(pixels).reshape(height, -1)
    rows = np.concatenate([rows, np.zeros((height, pad), np.uint8)], axis=1)
    frame = ImageFrame(stamp_ns, height, width, encoding, rows.shape[1], rows.tobytes())
    return "sensor_msgs/msg/Image", messages.image_message(frame, "camera", typestore)  # type: ignore[arg-type]


def write_camera_bag(path: Path, kind: str, storage: str, camera_topic: str) -> tuple[Path, int]:
    """A 1.5 s flight: IMU 200 Hz, camera 20 Hz of ``kind``, cmd_vel 50 Hz. Returns (bag, IMU after the first frame)."""
    entries: list[tuple[int, int, str]] = []
    for i in range(int(SECONDS * IMU_HZ)):
        entries.append((round(i * 1e9 / IMU_HZ) + 1_000_000, 0, "imu"))
    for i in range(int(SECONDS * CAMERA_HZ)):
        entries.append((round(i * 1e9 / CAMERA_HZ) + 2_500_000, 1, camera_topic))
    for i in range(int(SECONDS * 50)):
        entries.append((i * 20_000_000 + 1_500_000, 2, "cmd_vel"))
    entries.sort()
    first_frame = min(stamp for stamp, order, _ in entries if order == 1)
    imu_after = sum(1 for stamp, order, _ in entries if order == 0 and stamp > first_frame)
    with BagWriter(path, storage) as bag:
        for stamp, order, topic in entries:
            t = stamp / 1e9
            if order == 0:
                bag.write_imu(topic, imu_at(stamp, t), stamp + 300_000)
            elif order == 1:
                msgtype, msg = camera_message(kind, stamp, t, bag.typestore)
                bag.write_message(topic, msgtype, msg, stamp + 4_000_000)
            else:
                bag.write_twist(topic, command_at(stamp, t), stamp + 200_000)
    return path, imu_after


CASES = [
    ("bgr8_640x480", "sqlite3", "/camera/image_raw"),
    ("mono8_752x480", "mcap", "/cam0/image_raw"),
    ("bgra8_672x376", "mcap", "/zed2i/zed_node/left/image_rect_color"),
    ("jpeg_1280x720", "mcap", "/camera/image_raw/compressed"),
]


@pytest.mark.parametrize(("kind", "storage", "topic"), CASES, ids=[c[0] for c in CASES])
def test_camera_bag_replays_with_the_shipped_policy(tmp_path: Path, kind: str, storage: str, topic: str) -> None:
    bag, imu_after_first_frame = write_camera_bag(tmp_path / "bag", kind, storage, topic)
    config = ReplayConfig(topics=BagTopics(camera=topic), plot=False, progress=False)
    result = replay_bag(bag, MODEL, tmp_path / "out", config)
    counters = result.counters
    assert counters.get("camera_encoded", 0) == int(SECONDS * CAMERA_HZ), counters
    for bad in ("camera_wrong_size", "camera_wrong_encoding", "camera_malformed"):
        assert counters.get(bad, 0) == 0, counters
    # The first command needs the watchdog to see every stream once; then every IMU message steps.
    assert result.commands >= 0.9 * imu_after_first_frame, (result.commands, imu_after_first_frame, counters)


@pytest.mark.parametrize(("kind", "storage", "topic"), [CASES[0], CASES[3]], ids=[CASES[0][0], CASES[3][0]])
def test_bag_to_dataset_stores_what_the_runtime_preprocessing_makes(
    tmp_path: Path, kind: str, storage: str, topic: str
) -> None:
    bag, _ = write_camera_bag(tmp_path / "bag", kind, storage, topic)
    manifest = load_bundle(MODEL).manifest
    assert manifest.camera is not None
    config = DatasetConfig.for_manifest(manifest, topics=BagTopics(camera=topic))
    dataset = bags_to_dataset([bag], config)
    assert dataset.frame_encoding == manifest.camera.encoding
    frames = dataset.sequences[0].frames
    assert frames is not None and frames.shape[1:] == (manifest.camera.height, manifest.camera.width, 3)
    # The first stored frame equals the runtime's preprocessing of the first recorded frame.
    from lnn_ros.bag.reader import BagReader
    from lnn_ros.runtime.records import Stream

    with BagReader(bag, BagTopics(camera=topic), streams=[Stream.CAMERA]) as reader:
        first = next(m.record for m in reader.messages() if m.stream is Stream.CAMERA)
    decoded = ImageDecoder(manifest.camera).pixels(first)  # type: ignore[arg-type]
    assert decoded.pixels is not None
    np.testing.assert_array_equal(frames[0], decoded.pixels)
    assert math.isfinite(float(frames.mean()))
