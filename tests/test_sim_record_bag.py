"""``lnn-ros sim record-bag``: the expert's flight as a rosbag2 bag, read back, and replayed through the shipped policy."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from lnn_ros.bag.messages import default_typestore
from lnn_ros.bag.reader import BagReader, MessageOrder
from lnn_ros.cli import main
from lnn_ros.node_spec.params import NodeParams
from lnn_ros.runtime.records import Command, ImageFrame, ImuSample, SensorRecord, Stream
from lnn_ros.sim.bundle_check import read_episode
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.expert import expert_controller
from lnn_ros.sim.record_bag import RecordBagConfig, RecordBagResult, record_expert_bag
from lnn_ros.sim.ros.params import SimNodeParams
from lnn_ros.sim.world.closed_loop import run_closed_loop
from lnn_ros.sim.world.episode import Simulator

REPO = Path(__file__).resolve().parent.parent
SECONDS = 2.0
SEED = 10_001


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> RecordBagResult:
    return record_expert_bag(tmp_path_factory.mktemp("record") / "flight", RecordBagConfig(seed=SEED, duration_s=SECONDS))


def _reference_flight(config: RecordBagConfig) -> tuple[list[SensorRecord], dict[int, Command]]:
    """The same episode flown by the expert in closed loop, without a bag: every event and command."""
    sim = Simulator(config.sim_config(), config.variant, config.seed)
    expert = expert_controller(sim)
    events: list[SensorRecord] = []
    commands: dict[int, Command] = {}

    def controller(event: SensorRecord) -> Command | None:
        events.append(event)
        command = expert(event)
        if command is not None:
            commands[event.stamp_ns] = command
        return command

    run_closed_loop(sim, controller)
    return events, commands


def test_bag_holds_the_episodes_sensors_and_the_experts_commands_at_their_stamps(recorded: RecordBagResult) -> None:
    streams = [Stream.IMU, Stream.CAMERA, Stream.COMMAND]
    with BagReader(recorded.path, streams=streams, required=streams, strict=True) as reader:
        info = reader.info
        messages = list(reader.messages(MessageOrder.LOG))
        assert not reader.warnings
    by_stream = {stream: [m for m in messages if m.stream is stream] for stream in streams}
    counts = {stream: len(found) for stream, found in by_stream.items()}
    assert recorded.counts == {"/imu": counts[Stream.IMU], "/camera/image_raw": counts[Stream.CAMERA],
                               "/cmd_vel": counts[Stream.COMMAND]}
    assert info.message_count == len(messages) and recorded.duration_s == SECONDS and SECONDS - 0.05 < info.duration_s <= SECONDS
    # Log time = header stamp for every message, and the bag is in time order.
    assert all(m.log_time_ns == m.record.stamp_ns for m in messages)
    assert all(a.log_time_ns <= b.log_time_ns for a, b in itertools.pairwise(messages))
    # ~200 Hz IMU (jitter and a few drops) and ~30 Hz camera of 64x48 rgb8 frames.
    rates = {stream: (len(found) - 1) / info.duration_s for stream, found in by_stream.items()}
    print(f"\nrecorded {SECONDS} s: " + ", ".join(f"{s.value} {counts[s]} ({rates[s]:.1f} Hz)" for s in streams))
    assert 180.0 < rates[Stream.IMU] < 210.0 and 27.0 < rates[Stream.CAMERA] < 33.0, rates
    frame = by_stream[Stream.CAMERA][0].record
    assert isinstance(frame, ImageFrame) and (frame.width, frame.height, frame.encoding) == (64, 48, "rgb8")
    # One command per IMU sample, stamped with that sample's stamp, as lnn_node stamps its commands.
    imu_stamps = [m.record.stamp_ns for m in by_stream[Stream.IMU]]
    assert [m.record.stamp_ns for m in by_stream[Stream.COMMAND]] == imu_stamps

    # Exactly the episode the expert flies in closed loop: the same sensor data and the same commands.
    events, commands = _reference_flight(RecordBagConfig(seed=SEED, duration_s=SECONDS))
    imu_events = [e for e in events if isinstance(e, ImuSample)]
    frames = [e for e in events if isinstance(e, ImageFrame)]
    assert [e.stamp_ns for e in imu_events] == imu_stamps and len(frames) == counts[Stream.CAMERA]
    for message, event in zip(by_stream[Stream.IMU], imu_events):
        sample = message.record
        assert isinstance(sample, ImuSample)
        np.testing.assert_array_equal(sample.angular_velocity, event.angular_velocity)
        np.testing.assert_array_equal(sample.linear_acceleration, event.linear_acceleration)
        np.testing.assert_array_equal(sample.orientation, event.orientation)
    assert all(m.record.data == f.data for m, f in zip(by_stream[Stream.CAMERA], frames))  # type: ignore[union-attr]
    for message in by_stream[Stream.COMMAND]:
        twist = message.record
        assert isinstance(twist, Command)
        np.testing.assert_array_equal(twist.twist, commands[twist.stamp_ns].twist)
    flown = np.array([c.heading_array() for c in commands.values()])
    assert np.abs(flown[:, 0]).max() > 0.1  # the expert really flies (toward the target), not a hover


def test_frame_ids_are_the_nodes_defaults(recorded: RecordBagResult) -> None:
    config = RecordBagConfig()
    sim_defaults = SimNodeParams.from_values({})
    assert (config.imu_frame_id, config.camera_frame_id) == (sim_defaults.imu_frame_id, sim_defaults.camera_frame_id)
    assert config.command_frame_id == NodeParams.from_values({"model_path": "/b"}).command_frame_id
    assert (config.seed, config.variant) == (sim_defaults.seed, sim_defaults.variant)
    frame_ids: dict[str, str] = {}
    with AnyReader([recorded.path], default_typestore=default_typestore()) as reader:
        for connection, _, raw in reader.messages():
            if connection.topic not in frame_ids:
                frame_ids[connection.topic] = reader.deserialize(raw, connection.msgtype).header.frame_id
    assert frame_ids == {"/imu": "base_link", "/camera/image_raw": "camera_optical", "/cmd_vel": "base_stabilized"}


def test_replay_of_the_bag_with_the_shipped_policy_tracks_the_expert(
    recorded: RecordBagResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "replay"
    code = main(["replay", str(recorded.path), "--model", str(REPO / "models" / "drone_cfc"), "--out", str(out),
                 "--no-plot", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    print(f"\nreplay of {SECONDS} s: {metrics['paired']} paired; " + ", ".join(
        f"{name} MSE {axis['mse']:.4f} r {axis['pearson']:.3f}" for name, axis in metrics["axes"].items()))
    assert metrics["paired"] == summary["commands"] > 0.9 * recorded.counts["/imu"]
    assert set(metrics["axes"]) == {"vx", "vy", "vz", "yaw_rate"}
    for name, axis in metrics["axes"].items():
        assert all(math.isfinite(axis[key]) for key in ("mse", "mae", "pearson")), (name, axis)
    assert metrics["axes"]["vx"]["pearson"] > 0.5  # the shipped policy tracks the expert it imitates


def test_cli_records_a_sqlite3_bag_and_refuses_bad_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "wind"
    code = main(["sim", "record-bag", str(out), "--seed", "3", "--variant", "wind", "--duration", "0.5", "--storage", "sqlite3"])
    printed = capsys.readouterr().out
    assert code == 0 and "seed 3 wind" in printed and "/imu " in printed and "/cmd_vel " in printed, printed
    assert sorted(p.suffix for p in out.iterdir() if p.name not in ("metadata.yaml", "sim_episode.yaml")) == [".db3"]
    assert read_episode(out) == {"seed": 3, "variant": "wind", "duration_s": 0.5}  # for 'lnn-ros sim check-bundle --bags'
    with BagReader(out, streams=[Stream.IMU, Stream.COMMAND]) as reader:
        assert reader.expected_count([Stream.IMU]) == reader.expected_count([Stream.COMMAND]) > 80
    assert main(["sim", "record-bag", str(out), "--duration", "0.5"]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["sim", "record-bag", str(tmp_path / "foggy"), "--variant", "foggy"]) == 1
    assert "Unknown scenario variant 'foggy'" in capsys.readouterr().err and not (tmp_path / "foggy").exists()


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"duration_s": 0.0}, "duration_s must be a finite number > 0"),
        ({"storage": "ros1"}, "storage must be one of ['mcap', 'sqlite3'], got 'ros1'"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"variant": "foggy"}, "Unknown scenario variant 'foggy'"),
    ],
)
def test_settings_are_checked(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(SimError) as error:
        RecordBagConfig(**changes)  # type: ignore[arg-type]
    assert fragment in str(error.value)


def test_check_bundle_refuses_bags_it_cannot_hold_out(tmp_path: Path) -> None:
    from lnn_ros.sim.bundle_check import bag_episodes, check_bundle, write_episode

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    with pytest.raises(SimError, match="was recorded by 'lnn-ros sim record-bag'"):
        bag_episodes([plain])
    write_episode(plain, 1_500_000, "nominal", 2.0)
    assert bag_episodes([tmp_path]) == [{"seed": 1_500_000, "variant": "nominal", "duration_s": 2.0}]
    with pytest.raises(SimError, match="Seed 1500000 cannot be used for the bags the bundle was trained on"):
        check_bundle(tmp_path / "no_bundle", episodes=1, training_seeds=[1_500_000])
