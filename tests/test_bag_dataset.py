"""Bags -> training sequences: features, Δt from stamps, targets valid at each stamp, frames, splits,
the .npz output read back by the training loader, and training from a bag through ``lnn-ros train``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bundle_factory import make_imu_camera_bundle
from fixture_paths import FIXTURE

from lnn_ros.bag.dataset import DatasetConfig, bags_to_dataset, load_sequences, save_dataset_npz
from lnn_ros.bag.errors import BagError
from lnn_ros.bag.writer import BagWriter
from lnn_ros.bundle import load_bundle
from lnn_ros.cli import main
from lnn_ros.runtime.records import Command
from lnn_ros.training.checkpoint import load_checkpoint
from lnn_ros.training.loaders import load_sequences as training_load
from lnn_ros_tools.synthetic.flight import START_NS, command_at, frame_at, imu_at

MS = 1_000_000
NS = 1_000_000_000


def test_fixture_becomes_one_sequence_with_the_valid_command_as_target() -> None:
    dataset = bags_to_dataset([FIXTURE])
    (sequence,) = dataset.sequences
    assert dataset.feature_names == (
        "angular_velocity.x", "angular_velocity.y", "angular_velocity.z",
        "linear_acceleration.x", "linear_acceleration.y", "linear_acceleration.z",
    )
    assert dataset.target_names == ("linear.x", "linear.y", "linear.z", "angular.z")
    stamps = START_NS + 5 * MS * np.arange(400)
    np.testing.assert_array_equal(sequence.stamps_ns, stamps)
    assert sequence.dt_s[0] == 0 and np.allclose(sequence.dt_s[1:], 0.005)
    for i in (0, 1, 3, 4, 5, 399):
        t = (stamps[i] - START_NS) / NS
        sample = imu_at(int(stamps[i]), t)
        np.testing.assert_allclose(sequence.x[i], np.concatenate([sample.angular_velocity, sample.linear_acceleration]), rtol=1e-6)
        valid = START_NS + (stamps[i] - START_NS) // (20 * MS) * (20 * MS)  # 50 Hz commands on the same grid
        command = command_at(int(valid), (valid - START_NS) / NS)
        np.testing.assert_allclose(sequence.y[i], command.heading_array(), rtol=1e-6, atol=1e-7)


def test_camera_dataset_holds_the_newest_frame_received_before_each_imu_sample() -> None:
    """The runner's rule, by receive (log) order: the fixture's frames arrive 12 ms after their stamp,
    the IMU 1 ms after, so a frame is held from the first IMU message logged after it, not from its stamp."""
    dataset = bags_to_dataset([FIXTURE], DatasetConfig(camera=True))
    (sequence,) = dataset.sequences
    assert dataset.frame_encoding == "rgb8" and dataset.dropped == {"imu_without_frame": 3}
    assert sequence.frames.shape == (60, 24, 32, 3) and sequence.frames.dtype == np.uint8
    frame_stamps = START_NS + 2_500_000 + np.arange(60) * 33_333_333
    frame_logged = frame_stamps + 12 * MS
    for i in (0, 5, 6, 7, 200, 396):
        expected = np.searchsorted(frame_logged, sequence.stamps_ns[i] + 1 * MS, side="left") - 1
        assert sequence.frame_index[i] == expected
        by_stamp = np.searchsorted(frame_stamps, sequence.stamps_ns[i], side="right") - 1
        assert i not in (5, 6) or expected == by_stamp - 1  # here the stamp rule would hold a frame not yet received
        stamp = int(frame_stamps[expected])
        reference = np.frombuffer(frame_at(stamp, (stamp - START_NS) / NS).data, np.uint8).reshape(24, 32, 3)
        np.testing.assert_array_equal(sequence.images()[i], reference)


def write_gappy_bag(path: Path) -> Path:
    """IMU at 100 Hz for 3 s with a 1 s hole, a repeated stamp, and commands missing for 0.8 s."""
    start = 50 * NS
    with BagWriter(path) as bag:
        imu_stamps = [start + i * 10 * MS for i in range(300) if not 100 <= i < 200]
        imu_stamps.insert(10, imu_stamps[9])
        for stamp in imu_stamps:
            bag.write_imu("/imu", imu_at(stamp, (stamp - start) / NS))
        for i in range(150):
            stamp = start + i * 20 * MS
            if not 110 <= i < 150 or i == 149:  # silent from 2.2 s to 2.98 s
                bag.write_twist("/cmd_vel", Command(stamp, np.full(6, float(i))))
    return path


def test_sequences_split_at_gaps_and_stale_commands_and_drops_are_counted(tmp_path: Path) -> None:
    dataset = bags_to_dataset([write_gappy_bag(tmp_path / "bag")], DatasetConfig(max_command_age_s=0.3, min_steps=5))
    lengths = [len(s.x) for s in dataset.sequences]
    # 0..0.99 s; 2.00..2.48 s (the 2.18 s command is stale after 0.3 s); the 2.98 s command revives 2.98..2.99 (too short)
    assert lengths == [100, 49]
    assert dataset.dropped == {"imu_duplicate_stamp": 1, "imu_stale_command": 49, "short_sequence_steps": 2}
    assert dataset.gaps == 1 and dataset.flights == (str(tmp_path / "bag"),) * 2
    assert dataset.report(0.5) == [
        "dropped  1 IMU samples repeating the previous stamp (the engine drops them too) [imu_duplicate_stamp]",
        "dropped  49 IMU samples whose newest command is older than max_command_age_s [imu_stale_command]",
        "dropped  2 IMU samples in stretches shorter than min_steps [short_sequence_steps]",
        "gaps     1 IMU stamp gaps longer than 0.5 s: the sequence was split there (the engine resets)",
        "warning  1 x messages on '/imu' repeat an earlier header stamp; the engine drops them as duplicates "
        "(a publisher that leaves header.stamp at zero causes this)",
    ]
    assert all(s.dt_s[0] == 0 and np.allclose(s.dt_s[1:], 0.01) for s in dataset.sequences)
    assert dataset.sequences[1].y[0, 0] == 100.0  # the command stamped 2.0 s


def test_npz_output_is_read_by_the_training_loader(tmp_path: Path) -> None:
    dataset = bags_to_dataset([FIXTURE], DatasetConfig(camera=True))
    path = save_dataset_npz(dataset, tmp_path / "flight")
    assert path.name == "flight.npz"
    (sequence,) = training_load(path)
    np.testing.assert_array_equal(sequence.x, dataset.sequences[0].x)
    np.testing.assert_array_equal(sequence.y, dataset.sequences[0].y)
    with np.load(path) as archive:
        assert archive["feature_names"].tolist() == list(dataset.feature_names)
        np.testing.assert_array_equal(archive["frames_0"], dataset.sequences[0].frames)
    # The pluggable loader: a bag (or a folder of bags) straight into the training API.
    (from_bag,) = training_load(FIXTURE, "lnn_ros.bag.dataset:load_sequences")
    np.testing.assert_array_equal(from_bag.dt_s, load_sequences(FIXTURE)[0].dt_s)


def test_bags_are_recognised_by_their_shape_without_a_format(tmp_path: Path) -> None:
    import shutil

    from lnn_ros.training.errors import DataError
    from lnn_ros.training.loaders import BAG_READER, format_of

    (by_shape,) = training_load(FIXTURE)  # a rosbag2 folder (metadata.yaml)
    np.testing.assert_array_equal(by_shape.dt_s, load_sequences(FIXTURE)[0].dt_s)
    shutil.copytree(FIXTURE, tmp_path / "flights" / "monday")
    (from_folder,) = training_load(tmp_path / "flights")  # a folder of bags
    np.testing.assert_array_equal(from_folder.x, by_shape.x)
    for name in ("a.mcap", "a.db3", "a.bag", "A.MCAP"):
        (tmp_path / name).write_bytes(b"")
        assert format_of(tmp_path / name) == BAG_READER, name
    assert format_of(tmp_path / "flights") is None  # a folder of bags is a dataset, not one shard
    assert format_of(tmp_path / "flights" / "monday") == BAG_READER
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no data here")
    with pytest.raises(DataError, match=r"neither a registered format .* nor a bag .*; pass --format"):
        training_load(tmp_path / "notes")


def test_config_from_a_bundle_manifest_and_bad_configs(tmp_path: Path) -> None:
    manifest = load_bundle(make_imu_camera_bundle(tmp_path / "bundle").path).manifest
    config = DatasetConfig.for_manifest(manifest)
    assert config.camera and config.targets == ("linear.x", "linear.y", "linear.z", "angular.z")
    assert config.imu_fields[0] == "angular_velocity.x" and len(config.imu_fields) == 6
    with pytest.raises(BagError, match="imu_fields must list some of"):
        DatasetConfig(imu_fields=("angular_velocity.q",))
    with pytest.raises(BagError, match="max_gap_s must be > 0"):
        DatasetConfig(max_gap_s=0)
    with BagWriter(tmp_path / "no_overlap") as bag:
        bag.write_imu("/imu", imu_at(10 * NS, 0.0))
        bag.write_imu("/imu", imu_at(10 * NS + 5 * MS, 0.0))
        bag.write_twist("/cmd_vel", Command(20 * NS, np.zeros(6)))
    with pytest.raises(BagError, match="No training sequence of at least 2 steps is left"):
        bags_to_dataset([tmp_path / "no_overlap"])


def record_simulated_flight(path: Path, seconds: float = 2.0) -> tuple[Path, dict[int, np.ndarray]]:
    """Fly the simulator's expert and record IMU, camera and the expert's commands (stamped like the IMU)."""
    from lnn_ros.runtime.records import Command
    from lnn_ros.runtime.records import ImuSample as SimImu
    from lnn_ros.sim.expert.expert import expert_controller
    from lnn_ros.sim.world.config import SimConfig
    from lnn_ros.sim.world.episode import Simulator

    sim = Simulator(SimConfig(seed=4, duration_s=seconds), "nominal")
    expert = expert_controller(sim)
    commands: dict[int, np.ndarray] = {}
    with BagWriter(path) as bag:
        for event in sim.events():
            command = expert(event)
            if isinstance(event, SimImu):
                bag.write_imu("/imu", event)
            else:
                bag.write_image("/camera/image_raw", event)
            if command is not None:
                sim.set_command(command, event.stamp_ns)
                twist = np.array([command.vx_mps, command.vy_mps, command.vz_mps, 0.0, 0.0, command.yaw_rate_rps])
                bag.write_twist("/cmd_vel", Command(event.stamp_ns, twist))
                commands[event.stamp_ns] = twist
    return path, commands


def test_lnn_ros_train_fits_a_policy_on_a_simulated_flight_bag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag, commands = record_simulated_flight(tmp_path / "sim_flight")
    dataset = bags_to_dataset([bag], DatasetConfig(camera=True))
    (sequence,) = dataset.sequences
    assert sequence.frames.shape[1:] == (48, 64, 3) and len(sequence.x) > 350
    # The expert answered every IMU sample: the target at each stamp is exactly its answer.
    expected = np.array([commands[int(s)][[0, 1, 2, 5]] for s in sequence.stamps_ns], dtype=np.float32)
    np.testing.assert_array_equal(sequence.y, expected)

    code = main([
        "train", str(bag), "--out", str(tmp_path / "ckpt"),  # a bag: recognised without --format
        "--units", "8", "--epochs", "2", "--window-steps", "32", "--tbptt-steps", "16", "--val-fraction", "0",
        "--no-progress",
    ])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "ckpt" / "weights.safetensors").is_file()


def test_bags_become_shards_in_parallel_exactly_as_serially(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lnn_ros.bag.dataset import write_shards

    bags = tmp_path / "bags"
    for name in ("a", "b", "c"):
        write_gappy_bag(bags / f"flight_{name}")
    config = DatasetConfig(max_command_age_s=0.3, min_steps=5)
    serial = write_shards([bags], tmp_path / "serial", config, workers=1)
    parallel = write_shards([bags], tmp_path / "parallel", config, workers=2)
    assert [s.path.name for s in parallel] == ["flight_a.npz", "flight_b.npz", "flight_c.npz"]
    assert [s.steps for s in parallel] == [s.steps for s in serial] == [149] * 3
    for one, other in zip(serial, parallel):
        with np.load(one.path) as a, np.load(other.path) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
    assert not list((tmp_path / "parallel").glob(".*"))  # no staged leftovers
    # The CLI, then streamed training over the shards.
    code = main(["bag-to-dataset", str(bags), "--shards", "--workers", "2", "--out", str(tmp_path / "cli"),
                 "--max-command-age", "0.3", "--min-steps", "5"])
    assert code == 0, capsys.readouterr().err
    assert "wrote    3 shards (447 steps)" in capsys.readouterr().out
    code = main(["train", str(tmp_path / "cli"), "--stream", "--out", str(tmp_path / "ckpt"), "--units", "4",
                 "--epochs", "2", "--window-steps", "16", "--tbptt-steps", "8", "--val-fraction", "0.3", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "wrote checkpoint" in capsys.readouterr().out
    # Or streamed from the bags themselves, one bag at a time.
    code = main(["train", str(bags / "flight_*"), "--stream",  # bags as shards, without --format
                 "--out", str(tmp_path / "ckpt_bags"), "--units", "4", "--epochs", "1", "--window-steps", "16",
                 "--tbptt-steps", "8", "--val-fraction", "0.3", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert load_checkpoint(tmp_path / "ckpt_bags").metadata["streamed"]


def test_a_corrupt_bag_is_named_when_writing_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bags = tmp_path / "bags"
    write_gappy_bag(bags / "good")
    (bags / "broken.mcap").write_bytes(b"\x89MCAP0\r\n not really")
    code = main(["bag-to-dataset", str(bags), "--shards", "--workers", "2", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "broken.mcap" in err, err
