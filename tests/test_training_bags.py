"""``lnn-ros train BAGS`` -> a checkpoint that knows its inputs and outputs -> ``lnn-ros export`` without a
spec -> ``lnn-ros info`` and ``lnn-ros replay``; validation by whole bags; the drop report; topic overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lnn_ros.bag.dataset import training_data
from lnn_ros.bag.errors import BagError
from lnn_ros.bag.topics import TWIST_TYPE
from lnn_ros.bag.writer import BagWriter
from lnn_ros.bundle import load_bundle
from lnn_ros.cli import main
from lnn_ros.runtime.records import Command
from lnn_ros.training.checkpoint import load_checkpoint
from lnn_ros.training.data import TimedSequence, split_flights
from lnn_ros.training.loaders import save_npz_sequences
from lnn_ros_tools.synthetic.flight import command_at, imu_at

MS = 1_000_000
NS = 1_000_000_000
FAST = ["--units", "4", "--epochs", "1", "--window-steps", "16", "--tbptt-steps", "8", "--no-progress"]


def write_flight_bag(path: Path, offset: float, *, gap: bool = False, twist_type: str | None = None) -> Path:
    """1.2 s of 100 Hz IMU; 50 Hz commands from 0.1 s whose linear.z is ``offset`` (so each bag's targets are
    recognisable); with ``gap`` the IMU is silent from 0.4 s to 1.0 s."""
    start = 100 * NS
    with BagWriter(path) as bag:
        for i in range(120):
            if gap and 40 <= i < 100:
                continue
            stamp = start + i * 10 * MS
            bag.write_imu("/imu", imu_at(stamp, (stamp - start) / NS))
        for i in range(5, 60):
            stamp = start + i * 20 * MS
            twist = np.array(command_at(stamp, (stamp - start) / NS).twist, dtype=np.float64)
            twist[2] = offset
            if twist_type is None:
                bag.write_twist("/cmd_vel", Command(stamp, twist))
            else:  # an unstamped Twist (its log time is its stamp)
                types = bag.typestore.types
                vector = types["geometry_msgs/msg/Vector3"]
                message = types[twist_type](linear=vector(*twist[:3]), angular=vector(*twist[3:]))
                bag.write_message("/cmd_vel", twist_type, message, stamp)
    return path


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bags")
    for index, name in enumerate(("flight_a", "flight_b", "flight_c")):
        write_flight_bag(folder / name, offset=float(index + 1), gap=name == "flight_b")
    return folder


def test_validation_holds_out_whole_bags(bags: Path) -> None:
    data = training_data(bags)
    assert len(data.sequences) == 4  # flight_b is split at its gap
    split = split_flights(data.sequences, data.flights, 0.34, seed=0)
    assert len(split.validation_flights) == 1 and not set(split.train_flights) & set(split.validation_flights)
    # Every bag's commands carry its own linear.z: no bag's data may be on both sides.
    train_offsets = {float(v) for s in split.train for v in np.unique(s.y[:, 2])}
    val_offsets = {float(v) for s in split.validation for v in np.unique(s.y[:, 2])}
    assert train_offsets and val_offsets and not train_offsets & val_offsets
    assert len(train_offsets) == 2 and len(val_offsets) == 1
    # The held-out bag is taken whole, even when its gap made two sequences of it.
    held_out = split.validation_flights[0]
    assert len(split.validation) == data.flights.count(held_out)


def test_one_flight_falls_back_to_a_split_inside_it() -> None:
    sequences = [TimedSequence(np.zeros((10, 1)), np.full(10, 0.01), np.zeros((10, 1)))] * 2
    split = split_flights(sequences, ["only", "only"], 0.5)
    assert len(split.train) == len(split.validation) == 1 and split.train_flights == split.validation_flights == ("only",)


def test_the_bag_reader_reports_what_it_dropped_and_why(bags: Path) -> None:
    data = training_data(bags)
    # 10 IMU samples before the first command (at 0.1 s) in each bag; the last command is at 1.18 s.
    assert data.source["dropped"] == {"imu_before_first_command": 30}
    assert data.source["gaps"] == 1
    assert data.report == (
        "dropped  30 IMU samples before the first recorded command (no target yet) [imu_before_first_command]",
        "gaps     1 IMU stamp gaps longer than 0.5 s: the sequence was split there (the engine resets)",
    )
    assert data.source["topics"] == {
        "imu": {"topic": "/imu", "type": "sensor_msgs/msg/Imu"},
        "command": {"topic": "/cmd_vel", "type": "geometry_msgs/msg/TwistStamped"},
    }


def test_train_from_bags_then_export_without_a_spec_then_info_and_replay(
    bags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "hover"
    code = main(["train", str(bags), "--out", str(checkpoint), "--val-fraction", "0.34", "--limit", "linear.x=1.5", *FAST])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "dropped  30 IMU samples before the first recorded command" in out
    assert "split    by flight: 2 for training, 1 held out for validation" in out

    loaded = load_checkpoint(checkpoint)
    assert loaded.export is not None
    assert [f["field"] for f in loaded.export["features"]] == [
        "angular_velocity.x", "angular_velocity.y", "angular_velocity.z",
        "linear_acceleration.x", "linear_acceleration.y", "linear_acceleration.z",
    ]
    outputs = {o["twist_field"]: o for o in loaded.export["outputs"]}
    assert list(outputs) == ["linear.x", "linear.y", "linear.z", "angular.z"]
    assert (outputs["linear.x"]["min"], outputs["linear.x"]["max"]) == (-1.5, 1.5)  # --limit
    assert (outputs["linear.z"]["min"], outputs["linear.z"]["max"]) == (-3.0, 3.0)  # the largest |linear.z| recorded
    assert outputs["linear.z"]["unit"] == "m/s" and outputs["angular.z"]["unit"] == "rad/s"
    dt = loaded.export["dt"]
    assert dt["min_s"] == pytest.approx(0.01) and dt["max_s"] == pytest.approx(0.01) and dt["max_gap_s"] == 0.5
    source = loaded.metadata["data_source"]
    assert source["topics"]["imu"] == {"topic": "/imu", "type": "sensor_msgs/msg/Imu"}
    split = source["split"]
    assert len(split["validation"]) == 1 and sorted(split["train"] + split["validation"]) == sorted(source["bags"])

    bundle = tmp_path / "bundle"
    code = main(["export", str(checkpoint), "--out", str(bundle), "--window-steps", "4"])
    assert code == 0, capsys.readouterr().err
    manifest = load_bundle(bundle).manifest
    assert manifest.name == "hover" and [f.field for f in manifest.features][:2] == ["angular_velocity.x", "angular_velocity.y"]
    assert [(f.mean, f.std) for f in manifest.features] == list(zip(loaded.stats.mean, loaded.stats.std))
    assert manifest.outputs[0].max == 1.5 and manifest.dt.max_gap_s == 0.5

    assert main(["info", str(bundle)]) == 0
    assert "bundle   " in capsys.readouterr().out
    code = main(["replay", str(bags / "flight_a"), "--model", str(bundle), "--out", str(tmp_path / "replay"),
                 "--no-plot", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "predictions paired with a recorded command" in out


def test_message_types_are_detected_from_the_bag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = write_flight_bag(tmp_path / "twist", offset=0.5, twist_type=TWIST_TYPE)
    data = training_data(bag)
    assert data.source["topics"]["command"]["type"] == TWIST_TYPE
    code = main(["train", str(bag), "--out", str(tmp_path / "ckpt"), "--val-fraction", "0", *FAST])
    assert code == 0, capsys.readouterr().err


def test_topic_overrides_and_a_missing_topic_lists_the_bags_topics(
    bags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", str(bags / "flight_a"), "--imu-topic", "/drone/imu", "--out", str(tmp_path / "c"), *FAST])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert "has no imu topic '/drone/imu'" in err
    assert "/cmd_vel (geometry_msgs/msg/TwistStamped), /imu (sensor_msgs/msg/Imu)" in err and "--imu-topic" in err

    code = main(["train", str(bags / "flight_a"), "--imu-topic", "cmd_vel", "--out", str(tmp_path / "c"), *FAST])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert "has type 'geometry_msgs/msg/TwistStamped' but the imu stream needs 'sensor_msgs/msg/Imu'" in err
    assert "/imu (sensor_msgs/msg/Imu)" in err

    renamed = tmp_path / "renamed"
    with BagWriter(renamed) as bag:
        for i in range(60):
            stamp = 100 * NS + i * 10 * MS
            bag.write_imu("/drone/imu", imu_at(stamp, i / 100))
            if i % 2 == 0:
                bag.write_twist("/pilot/cmd", Command(stamp, np.array([0.1 * i, 0, 0, 0, 0, 0.01 * i])))
    with pytest.raises(BagError, match="has no imu topic 'imu'"):
        training_data(renamed)
    code = main(["train", str(renamed), "--imu-topic", "/drone/imu", "--command-topic", "pilot/cmd",
                 "--out", str(tmp_path / "ok"), "--val-fraction", "0", *FAST])
    assert code == 0, capsys.readouterr().err
    assert load_checkpoint(tmp_path / "ok").metadata["data_source"]["topics"]["command"]["topic"] == "/pilot/cmd"


def test_bag_options_on_other_data_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    data = save_npz_sequences(tmp_path / "d.npz", [TimedSequence(rng.normal(size=(40, 2)), np.full(40, 0.01), rng.normal(size=(40, 1)))])
    code = main(["train", str(data), "--imu-topic", "/imu", "--out", str(tmp_path / "c"), *FAST])
    err = capsys.readouterr().err
    assert code == 1 and "--imu-topic apply to bags" in err
    code = main(["train", str(data), "--limit", "vx=fast", "--out", str(tmp_path / "c"), *FAST])
    assert code == 1 and "--limit apply to bags" in capsys.readouterr().err


def test_a_bad_limit_is_one_clear_error(bags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for limit, message in (("vx=fast", "write OUTPUT=MAX"), ("linear.q=1", "has no output 'linear.q'"), ("vx=1:-1", "below the maximum")):
        code = main(["train", str(bags / "flight_a"), "--limit", limit, "--val-fraction", "0", "--out", str(tmp_path / "c"), *FAST])
        err = capsys.readouterr().err
        assert code == 1 and message in err and err.count("\n") == 1, err
