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
from lnn_ros.sim.expert.demonstrations import record_demonstration
from lnn_ros.sim.expert.expert import expert_controller
from lnn_ros.sim.expert.noisy import NoisyExpert
from lnn_ros.sim.record_bag import RecordBagConfig, RecordBagResult, check_bag_seeds, record_expert_bag
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
    assert read_episode(out) == {"seed": 3, "variant": "wind", "duration_s": 0.5, "pilot": "expert"}  # for 'lnn-ros sim check-bundle --bags'
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
    assert bag_episodes([tmp_path]) == [{"seed": 1_500_000, "variant": "nominal", "duration_s": 2.0, "pilot": "expert"}]
    with pytest.raises(SimError, match="Seed 1500000 cannot be used for the bags the bundle was trained on"):
        check_bundle(tmp_path / "no_bundle", episodes=1, training_seeds=[1_500_000])


def _bag_commands(bag: Path) -> tuple[list[int], np.ndarray]:
    """The stamps and ``[vx, vy, vz, yaw_rate]`` of a bag's ``/cmd_vel``."""
    with BagReader(bag, streams=[Stream.COMMAND], required=[Stream.COMMAND]) as reader:
        records = [m.record for m in reader.messages(MessageOrder.STAMP)]
    assert all(isinstance(r, Command) for r in records)
    return [r.stamp_ns for r in records], np.array([r.heading_array() for r in records])  # type: ignore[union-attr]


def test_a_noisy_bag_labels_with_the_clean_expert_while_the_vehicle_flies_expert_plus_noise(tmp_path: Path) -> None:
    config = RecordBagConfig(seed=5_003, duration_s=SECONDS, noisy=True)
    result = record_expert_bag(tmp_path / "noisy", config)
    stamps, labels = _bag_commands(result.path)
    assert read_episode(result.path) == {"seed": 5_003, "variant": "nominal", "duration_s": SECONDS, "pilot": "noisy_expert"}
    # The same episode as the recipe's noisy demonstrations: NoisyExpert flies, the expert labels.
    demo, _ = record_demonstration(config.sim_config(), "nominal", 5_003, pilot_factory=NoisyExpert(), expert_share=0.0)
    assert stamps == demo.imu_stamp_ns.tolist()
    np.testing.assert_allclose(labels, demo.imu_expert_command, atol=1e-5)  # /cmd_vel: the clean expert (float32 there)
    flown = demo.imu_flown_command.astype(float)
    gap = np.abs(labels - flown).mean(axis=0)
    print(f"\nnoisy bag: mean |label - flown| per axis {np.round(gap, 3).tolist()}")
    assert (gap[[0, 1, 3]] > 0.05).all(), gap  # the vehicle flew something else than the label: expert + noise
    # A clean bag of the same seed records what it flies, and flies elsewhere than the noisy one.
    _, clean = _bag_commands(record_expert_bag(tmp_path / "clean", RecordBagConfig(seed=5_003, duration_s=SECONDS)).path)
    n = min(len(clean), len(labels))
    assert np.abs(clean[:n] - labels[:n]).max() > 0.05


def test_the_cli_records_a_batch_of_bags_one_per_seed_in_parallel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bags"
    code = main(["sim", "record-bag", str(out), "--episodes", "3", "--seed", "9997", "--duration", "0.3", "--noisy", "--workers", "2"])
    printed = capsys.readouterr().out
    assert code == 0 and "recorded 3 bags (seeds 9997..9999)" in printed, printed
    assert sorted(p.name for p in out.iterdir()) == ["flight_9997", "flight_9998", "flight_9999"]
    for seed in (9997, 9998, 9999):
        assert read_episode(out / f"flight_{seed}") == {"seed": seed, "variant": "nominal", "duration_s": 0.3, "pilot": "noisy_expert"}
    # Each bag is its seed's episode, as recording it alone writes it.
    single = record_expert_bag(tmp_path / "single", RecordBagConfig(seed=9998, duration_s=0.3, noisy=True)).path
    batch_stamps, batch_labels = _bag_commands(out / "flight_9998")
    single_stamps, single_labels = _bag_commands(single)
    assert batch_stamps == single_stamps
    np.testing.assert_array_equal(batch_labels, single_labels)
    # Adding bags to the folder is fine; recording one of them again is not, and nothing is flown then.
    assert main(["sim", "record-bag", str(out), "--episodes", "1", "--seed", "0", "--duration", "0.3"]) == 0
    capsys.readouterr()
    assert main(["sim", "record-bag", str(out), "--episodes", "2", "--seed", "9999", "--duration", "0.3"]) == 1
    err = capsys.readouterr().err
    assert "Training bags need seeds in 0..9999, got seeds 9999..10000" in err and "--held-out" in err, err
    assert main(["sim", "record-bag", str(out), "--episodes", "2", "--seed", "9998", "--duration", "0.3"]) == 1
    assert "2 of the 2 bags exist already" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["flight_0", "flight_9997", "flight_9998", "flight_9999"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--seed", "10000"], "Training bags need seeds in 0..9999, got seed 10000"),
        (["--episodes", "3", "--seed", "1500000"], "got seeds 1500000..1500002"),
        (["--held-out", "--seed", "500"], "Held-out bags need seeds from 10000 on (below it are training seeds), got seed 500"),
        (["--held-out", "--episodes", "2", "--seed", "9999"], "got seeds 9999..10000"),
        (["--episodes", "0"], "--episodes must be >= 1, got 0"),
    ],
)
def test_seeds_outside_the_range_of_the_bags_use_are_refused(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim", "record-bag", str(tmp_path / "out"), "--duration", "0.3", *argv]) == 1
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_default_seeds_are_a_training_seed_and_with_held_out_the_first_held_out_seed(tmp_path: Path) -> None:
    check_bag_seeds(0, 10_000)
    check_bag_seeds(10_000, 5, held_out=True)
    assert main(["sim", "record-bag", str(tmp_path / "train"), "--duration", "0.3"]) == 0
    assert main(["sim", "record-bag", str(tmp_path / "held"), "--duration", "0.3", "--held-out"]) == 0
    assert read_episode(tmp_path / "train")["seed"] == 0  # type: ignore[index]
    assert read_episode(tmp_path / "held")["seed"] == 10_000  # type: ignore[index]


def test_messages_are_logged_when_delivered_so_a_late_frame_follows_later_imu_samples(tmp_path: Path) -> None:
    config = RecordBagConfig(seed=7, variant="delay", duration_s=1.0)
    result = record_expert_bag(tmp_path / "delay", config)
    streams = [Stream.IMU, Stream.CAMERA, Stream.COMMAND]
    with BagReader(result.path, streams=streams) as reader:
        logged = list(reader.messages(MessageOrder.LOG))
    sensors = [m for m in logged if m.stream is not Stream.COMMAND]
    # The log order of the sensor messages is the simulator's delivery order: what the node receives.
    events, _ = _reference_flight(config)
    assert [(type(m.record), m.record.stamp_ns) for m in sensors] == [(type(e), e.stamp_ns) for e in events]
    assert all(a.log_time_ns <= b.log_time_ns for a, b in itertools.pairwise(logged))
    imu = [m for m in sensors if m.stream is Stream.IMU]
    frames = [m for m in sensors if m.stream is Stream.CAMERA]
    assert all(m.log_time_ns == m.record.stamp_ns for m in imu)  # an IMU sample arrives at its stamp
    late = [m.log_time_ns - m.record.stamp_ns for m in frames]
    assert min(late) >= 30_000_000, late  # the delay variant: 30..110 ms of camera latency
    frame = frames[len(frames) // 2]
    position = sensors.index(frame)
    before = [m for m in sensors[:position] if m.stream is Stream.IMU and m.record.stamp_ns > frame.record.stamp_ns]
    assert len(before) >= 5  # IMU samples stamped after the frame were delivered (and logged) before it


def test_check_bundle_compare_pairs_the_episodes_of_two_json_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lnn_ros.sim.cli import _compare_checks

    def report(bundle: str, outcomes: list[bool], seeds: list[int]) -> dict[str, object]:
        per_episode = [{"seed": s, "success": o} for s, o in zip(seeds, outcomes)]
        return {"bundle": bundle, "duration_s": 10.0, "condition": "nominal", "per_episode": per_episode, "wilson_95": [0, 1]}

    seeds = [1_000_001, 1_000_002, 1_000_003, 1_000_004]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(report("shipped", [True, True, True, False], seeds)))
    compared = _compare_checks(report("mine", [False, False, True, True], seeds), other)
    assert (compared["only_this"], compared["only_that"], compared["successes"]) == (1, 2, 3)
    assert compared["mcnemar_p"] == 1.0  # 3 discordant pairs, 1 vs 2
    assert "exact McNemar p = 1" in capsys.readouterr().out
    with pytest.raises(SimError, match="flew other episodes"):
        _compare_checks(report("mine", [True] * 4, [s + 1 for s in seeds]), other)
