"""``lnn-ros train`` on camera bags -> ``lnn-ros export`` without a spec -> a camera bundle that computes what training computed.

The chain is checked against the runtime, not against itself: the exported bundle is fed the
bag's messages in receive order through :class:`~lnn_ros.runtime.PolicyRunner` (what
``lnn-ros replay`` and the node do), and its commands must equal the PyTorch policy's outputs
over the training rows (same held frame, same preprocessing and normalisation, same Δt).
Holding a frame by its stamp instead of by its arrival would not pass: one bag delivers its
frames late, and the test checks that the stamp rule picks other frames and gives other commands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lnn_ros.bag.dataset import training_data
from lnn_ros.bag.reader import BagReader, MessageOrder
from lnn_ros.bag.topics import BagTopics
from lnn_ros.bag.writer import BagWriter
from lnn_ros.bundle import load_bundle
from lnn_ros.bundle.preprocess import Preprocess
from lnn_ros.cli import main
from lnn_ros.runtime.factory import build_runner
from lnn_ros.runtime.records import Command, ImageFrame, ImuSample, Stream
from lnn_ros.training.camera import CameraArch, CameraPolicy, rollout
from lnn_ros.training.checkpoint import load_checkpoint
from lnn_ros.training.data import DescribedData, TimedSequence

MS = 1_000_000
START_NS = 1_000 * MS
FAST = ["--epochs", "1", "--units", "8", "--window-steps", "32", "--tbptt-steps", "16", "--batch-size", "4", "--no-progress"]


def write_late_frames_bag(path: Path) -> Path:
    """1 s: IMU at 100 Hz logged at its stamp; 20 Hz noise frames (32x24) logged 17 ms after their stamp; a command per IMU."""
    rng = np.random.default_rng(0)
    entries: list[tuple[int, int, object]] = []
    for k in range(100):
        stamp = START_NS + k * 10 * MS
        t = k / 100
        sample = ImuSample(stamp, np.array([0.1 * t, -0.2, 0.3 * np.sin(6 * t)]), np.array([0.0, 0.1 * t, 9.81]), np.array([0.0, 0.0, 0.0, 1.0]))
        entries.append((stamp, 0, sample))
        twist = (np.sin(3 * t), 0.5 * np.cos(2 * t), 0.1 * t, 0.0, 0.0, -0.3 * t)
        entries.append((stamp, 1, Command(stamp, twist)))
    for j in range(20):
        stamp = START_NS + j * 50 * MS + 5 * MS
        pixels = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        entries.append((stamp + 17 * MS, 2, ImageFrame(stamp, 24, 32, "rgb8", 32 * 3, pixels.tobytes())))
    with BagWriter(path) as bag:
        for log_ns, kind, record in sorted(entries, key=lambda e: (e[0], e[1])):
            if kind == 0:
                bag.write_imu("/imu", record)  # type: ignore[arg-type]
            elif kind == 1:
                bag.write_twist("/cmd_vel", record)  # type: ignore[arg-type]
            else:
                bag.write_image("/camera/image_raw", record, log_time_ns=log_ns)  # type: ignore[arg-type]
    return path


def train_and_export(bag: Path, out: Path, *extra: str) -> tuple[Path, Path]:
    ckpt, bundle = out / "ckpt", out / "bundle"
    assert main(["train", str(bag), "--out", str(ckpt), "--cell", "cfc", *FAST, *extra]) == 0
    assert main(["export", str(ckpt), "--out", str(bundle)]) == 0
    return ckpt, bundle


def runner_commands(bundle: Path, bag: Path) -> np.ndarray:
    """The bundle's commands over the bag, fed in receive order as replay and the node feed it."""
    runner = build_runner(bundle)
    commands = []
    with BagReader(bag, BagTopics(), streams=[Stream.IMU, Stream.CAMERA]) as reader:
        for message in reader.messages(MessageOrder.LOG):
            if message.stream is Stream.IMU:
                command = runner.on_imu(message.record)  # type: ignore[arg-type]
                if command is not None:
                    commands.append(command.heading_array())
            else:
                runner.on_image(message.record)  # type: ignore[arg-type]
    return np.array(commands)


def pytorch_outputs(ckpt: Path, data: DescribedData, sequence: TimedSequence) -> np.ndarray:
    """The checkpoint's policy in PyTorch over training rows, clipped to the exported limits."""
    checkpoint = load_checkpoint(ckpt)
    assert checkpoint.encoder is not None and checkpoint.stats is not None and checkpoint.export is not None
    arch = dict(checkpoint.metadata["camera_arch"])
    arch["channels"] = tuple(arch["channels"])
    camera = checkpoint.export["camera"]
    imu = len(checkpoint.stats.mean) - camera["embedding_size"]
    policy = CameraPolicy(
        CameraArch(**arch), checkpoint.stats.mean[:imu], checkpoint.stats.std[:imu], camera["mean"], camera["std"],
        output_size=checkpoint.cell.output_size, cell_config=checkpoint.cell.config(),
    )
    policy.cell.load_state_dict(checkpoint.cell.state_dict())
    policy.encoder.load_state_dict(checkpoint.encoder.state_dict())
    assert data.frames is not None
    low = np.array([o["min"] for o in checkpoint.export["outputs"]])
    high = np.array([o["max"] for o in checkpoint.export["outputs"]])
    return np.clip(rollout(policy, sequence, data.frames), low, high)


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("rotorpy")
    from lnn_ros.sim.record_bag import RecordBagConfig, record_expert_bag

    return record_expert_bag(tmp_path_factory.mktemp("sim") / "flight", RecordBagConfig(seed=21, duration_s=1.5)).path


def test_a_simulator_camera_bag_trains_and_exports_a_camera_bundle_without_a_spec(sim_bag: Path, tmp_path: Path) -> None:
    ckpt, bundle = train_and_export(sim_bag, tmp_path)
    manifest = load_bundle(bundle).manifest
    assert set(manifest.graphs) == {"step", "encoder"}  # no window graph: camera models step
    camera = manifest.camera
    assert camera is not None and (camera.width, camera.height, camera.encoding) == (64, 48, "rgb8")
    assert camera.preprocess == Preprocess()  # what the training frames went through (training_camera)
    checkpoint = load_checkpoint(ckpt)
    assert checkpoint.export is not None and checkpoint.export["camera"]["preprocess"] == Preprocess().to_dict()
    assert list(camera.mean) == checkpoint.export["camera"]["mean"]
    assert [f.source for f in manifest.features] == ["imu"] * 6 + ["camera"] * 16
    assert checkpoint.metadata["data_source"]["topics"]["camera"] == {"topic": "/camera/image_raw", "type": "sensor_msgs/msg/Image"}

    data = training_data(sim_bag)
    (sequence,) = data.sequences
    commands = runner_commands(bundle, sim_bag)
    expected = pytorch_outputs(ckpt, data, sequence)
    # The runner's first step only starts its clock (no command); training sees it with Δt = 0.
    assert commands.shape == (len(sequence.x) - 1, 4)
    assert float(np.abs(commands - expected[1:]).max()) < 1e-4


def test_frames_are_held_by_receive_order_as_the_runner_holds_them(tmp_path: Path) -> None:
    bag = write_late_frames_bag(tmp_path / "late")
    data = training_data(bag, image_size=(32, 24))
    (sequence,) = data.sequences
    assert data.frames is not None and data.frames.shape == (20, 24, 32, 3)
    # The first frame is received at 22 ms, so the first step is the IMU sample at 30 ms.
    stamps_ms = np.arange(3, 100) * 10
    received = (stamps_ms - 22) // 50  # newest frame logged before the sample
    by_stamp = (stamps_ms - 5) // 50  # newest frame stamped at or before it: not yet received for a while
    np.testing.assert_array_equal(sequence.x[:, -1], received)
    assert (received != by_stamp).sum() >= 20
    with BagReader(bag, BagTopics(), streams=[Stream.CAMERA]) as reader:
        first = next(iter(reader.messages()))
    np.testing.assert_array_equal(data.frames[0], np.frombuffer(first.record.data, np.uint8).reshape(24, 32, 3))  # type: ignore[union-attr]

    ckpt, bundle = train_and_export(bag, tmp_path, "--image-size", "32x24", "--embedding-size", "4")
    commands = runner_commands(bundle, bag)
    expected = pytorch_outputs(ckpt, data, sequence)
    assert commands.shape == (len(sequence.x) - 1, 4)
    error = float(np.abs(commands - expected[1:]).max())
    assert error < 1e-4, error
    x = sequence.x.copy()
    x[:, -1] = by_stamp
    stamp_rule = pytorch_outputs(ckpt, data, TimedSequence(x, sequence.dt_s, sequence.y))
    assert float(np.abs(commands - stamp_rule[1:]).max()) > 100 * max(error, 1e-7)


def test_no_camera_trains_imu_only_and_bad_options_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = write_late_frames_bag(tmp_path / "late")
    assert main(["train", str(bag), "--out", str(tmp_path / "imu"), "--no-camera", *FAST]) == 0
    checkpoint = load_checkpoint(tmp_path / "imu")
    assert checkpoint.encoder is None and checkpoint.cell.input_size == 6 and "camera" not in (checkpoint.export or {})
    capsys.readouterr()
    assert main(["train", str(bag), "--out", str(tmp_path / "x"), "--image-size", "30x24", *FAST]) == 1
    assert "multiples of 8" in capsys.readouterr().err
    assert main(["train", str(bag), "--out", str(tmp_path / "x"), "--camera-topic", "/cam", "--no-camera", *FAST]) == 1
    assert "contradict" in capsys.readouterr().err


def test_a_camera_checkpoint_rebuilds_its_encoder_and_refuses_changed_weights(tmp_path: Path) -> None:
    bag = write_late_frames_bag(tmp_path / "late")
    val = write_late_frames_bag(tmp_path / "val")  # --val bags index their own frames
    ckpt = tmp_path / "ckpt"
    args = ["train", str(bag), "--val", str(val), "--out", str(ckpt), "--image-size", "32x24", "--cell", "gru", *FAST]
    assert main(args) == 0
    checkpoint = load_checkpoint(ckpt)
    assert checkpoint.encoder is not None and not checkpoint.encoder.training
    assert checkpoint.metadata["train_result"]["val_loss"]
    with torch.no_grad():
        assert checkpoint.encoder(torch.zeros(1, 3, 24, 32)).shape == (1, 16)
    weights = ckpt / "encoder.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(Exception, match="encoder weights were changed"):
        load_checkpoint(ckpt)
