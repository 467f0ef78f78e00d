"""``lnn-ros replay`` on real bags and real bundles (ROS-free): commands, outputs, metrics, order, watchdog."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import camera_bundle, imu_bundle  # noqa: F401 (module-scoped fixtures)
from fixture_paths import FIXTURE
from rosbags.highlevel import AnyReader

from lnn_ros.bag.log_clock import LogClock, Timer
from lnn_ros.bag.messages import default_typestore
from lnn_ros.bag.metrics import command_metrics, pair_by_stamp, pearson
from lnn_ros.bag.reader import BagReader, MessageOrder
from lnn_ros.bag.replay import ReplayConfig, replay_bag
from lnn_ros.bag.writer import BagWriter
from lnn_ros.cli import main
from lnn_ros.engine import Engine
from lnn_ros.runtime import Command, PolicyRunner
from lnn_ros.runtime.messages import image_frame, imu_sample, stamp_ns
from lnn_ros.runtime.records import Stream
from lnn_ros_tools.synthetic.flight import frame_at, imu_at

MS = 1_000_000
NS = 1_000_000_000


def reference_commands(bag: Path, bundle: Path, order: str = "log") -> list[Command]:
    """The runner fed straight from rosbags' generic decoder, without lnn_ros.bag's reader or replay."""
    runner = PolicyRunner(Engine(bundle))
    store = default_typestore()
    entries = []
    with AnyReader([bag], default_typestore=store) as reader:
        for index, (connection, log_time, raw) in enumerate(reader.messages()):
            msg = reader.deserialize(raw, connection.msgtype)
            entries.append((log_time, stamp_ns(msg.header), index, connection.topic, msg))
    if order == "stamp":
        entries.sort(key=lambda e: (e[1], e[0], e[2]))
    commands = []
    for _, stamp, _, topic, msg in entries:
        if topic == "/imu":
            command = runner.on_imu(imu_sample(msg, stamp))
        elif topic == "/camera/image_raw":
            command = runner.on_image(image_frame(msg, stamp))
        else:
            continue
        if command is not None:
            commands.append(command)
    return commands


def output_commands(out: Path) -> list[tuple[int, int, str, np.ndarray]]:
    with BagReader(out / "commands", streams=[Stream.COMMAND]) as reader:
        got = [(m.log_time_ns, m.record.stamp_ns, m.record.twist) for m in reader.messages()]
    store = default_typestore()
    with AnyReader([out / "commands"], default_typestore=store) as reader:
        frames = [reader.deserialize(raw, c.msgtype).header.frame_id for c, _, raw in reader.messages() if c.topic == "/cmd_vel"]
    return [(log, stamp, frame, twist) for (log, stamp, twist), frame in zip(got, frames, strict=True)]


def test_replay_gives_the_runners_commands_and_writes_every_output(tmp_path: Path, camera_bundle: Path) -> None:
    result = replay_bag(FIXTURE, camera_bundle, tmp_path / "out", ReplayConfig(progress=False))
    expected = reference_commands(FIXTURE, camera_bundle)
    assert result.commands == len(expected) > 300
    assert not result.warnings

    # The output bag: one TwistStamped per command, stamped with the sensor stamp, frame id of the node.
    written = output_commands(result.out_dir)
    assert [w[1] for w in written] == [c.stamp_ns for c in expected]
    assert {w[2] for w in written} == {"base_stabilized"}  # the node's command_frame_id default
    # to float rounding: the replay's unrolled steps add the first layer's products in another order (engine.plan.FACTORED)
    np.testing.assert_allclose(np.array([w[3] for w in written]), np.array([c.twist for c in expected]), atol=1e-6, rtol=0)
    assert all(log - stamp == 1 * MS for log, stamp, _, _ in written)  # logged at the IMU message's arrival

    # The CSV: the same commands with every output by name, and the paired recorded values.
    with (result.out_dir / "commands.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["stamp_ns", "log_time_ns", "vx", "vy", "vz", "yaw_rate",
                             "recorded_vx", "recorded_vy", "recorded_vz", "recorded_yaw_rate"]
    values = np.array([[float(r[n]) for n in ("vx", "vy", "vz", "yaw_rate")] for r in rows])
    np.testing.assert_allclose(values, np.array([c.values for c in expected], dtype=np.float64), atol=1e-6, rtol=0)

    # Metrics against the recorded expert commands, recomputed here from the CSV.
    recorded = np.array([[float(r[f"recorded_{n}"]) for n in ("vx", "vy", "vz", "yaw_rate")] for r in rows])
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert metrics["paired"] == len(rows) and metrics["unpaired"] == 0
    for column, name in enumerate(("vx", "vy", "vz", "yaw_rate")):
        error = values[:, column] - recorded[:, column]
        assert metrics["axes"][name]["mse"] == pytest.approx(np.mean(error**2), rel=1e-12)
        assert metrics["axes"][name]["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-12)
        assert metrics["axes"][name]["pearson"] == pytest.approx(np.corrcoef(values[:, column], recorded[:, column])[0, 1], abs=1e-9)
    assert (result.out_dir / "commands.png").stat().st_size > 10_000

    # Diagnostics: about 1 Hz of bag time plus a final report, with the node's keys and counters.
    with AnyReader([result.out_dir / "commands"], default_typestore=default_typestore()) as reader:
        diagnostics = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages() if c.topic == "/diagnostics"]
    assert len(diagnostics) == 2  # t = 1 s and the end of the 2 s bag
    final = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
    assert final["commands_published"] == str(result.commands) and final["state"] == "ok"
    assert final["camera_encoded"] == "60" and final["imu_received"] == "400" and final["camera.rate_hz"] != ""
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert summary["commands"] == result.commands and summary["speed_x_real_time"] > 0


def test_stamp_order_equals_the_runner_fed_in_stamp_order(tmp_path: Path, camera_bundle: Path) -> None:
    by_stamp = replay_bag(FIXTURE, camera_bundle, tmp_path / "stamp",
                          ReplayConfig(order=MessageOrder.STAMP, plot=False, progress=False))
    expected = reference_commands(FIXTURE, camera_bundle, order="stamp")
    written = output_commands(by_stamp.out_dir)
    np.testing.assert_allclose(np.array([w[3] for w in written]), np.array([c.twist for c in expected]), atol=1e-6, rtol=0)
    by_log = output_commands(replay_bag(FIXTURE, camera_bundle, tmp_path / "log", ReplayConfig(plot=False, progress=False)).out_dir)
    assert not np.array_equal(np.array([w[3] for w in written]), np.array([w[3] for w in by_log[: len(written)]]))


def write_camera_gap_bag(path: Path) -> Path:
    """3 s of 200 Hz IMU; 20 Hz camera that is silent from 1.0 s to 2.0 s (log = stamp)."""
    start = 100 * NS
    with BagWriter(path) as bag:
        entries = [(start + i * 5 * MS, 1, "imu") for i in range(600)]
        entries += [(start + i * 50 * MS + MS, 0, "cam") for i in range(60) if not 20 <= i < 40]
        for stamp, _, kind in sorted(entries):
            t = (stamp - start) / NS
            if kind == "imu":
                bag.write_imu("/imu", imu_at(stamp, t))
            else:
                bag.write_image("/camera/image_raw", frame_at(stamp, t))
    return path


def test_watchdog_withholds_commands_while_the_camera_is_stale_and_resets_on_recovery(
    tmp_path: Path, camera_bundle: Path
) -> None:
    bag = write_camera_gap_bag(tmp_path / "gap")
    result = replay_bag(bag, camera_bundle, tmp_path / "out", ReplayConfig(plot=False, progress=False))
    c = result.counters
    assert c["failsafe_entries"] == 1 and c["recoveries"] == 1 and c["explicit_resets"] == 1
    last_frame, next_frame = 100 * NS + 19 * 50 * MS + MS, 100 * NS + 40 * 50 * MS + MS
    stamps = np.array([w[1] for w in output_commands(result.out_dir)])
    stale = (stamps > last_frame + 550 * MS) & (stamps <= next_frame)  # stale after 0.5 s, by the next 20 Hz tick
    assert not stale.any()
    assert c["commands_withheld"] >= (next_frame - last_frame - 550 * MS) // (5 * MS)
    assert c["hover_ticks"] >= 9  # 20 Hz failsafe ticks while stale
    assert ((stamps > last_frame) & (stamps <= last_frame + 500 * MS)).sum() == 100  # flying until the timeout
    # After recovery the state was reset: the first IMU message only re-initialises the clock.
    assert c["imu_initialised"] == 2


def test_replay_of_an_imu_bundle_ignores_the_camera_and_needs_no_camera_topic(tmp_path: Path, imu_bundle: Path) -> None:
    with BagWriter(tmp_path / "imu_only") as bag:
        for i in range(50):
            bag.write_imu("/imu", imu_at(1_000 * NS + i * 5 * MS, i * 0.005))
    result = replay_bag(tmp_path / "imu_only", imu_bundle, tmp_path / "out", ReplayConfig(progress=False))
    assert result.commands == 49 and result.metrics is None
    assert sorted(p.name for p in result.out_dir.iterdir()) == ["commands", "commands.csv", "summary.json"]
    assert result.counters.get("camera_received", 0) == 0


def test_log_clock_runs_the_node_timers_in_time_order() -> None:
    clock = LogClock(failsafe_rate_hz=4.0, diagnostics_period_s=0.5)  # ticks every 250 ms and 500 ms
    start = 10 * NS
    assert list(clock.advance(start)) == [] and clock.now_ns() == start  # the timers start here
    seen = []
    for timer in clock.advance(start + 1 * NS):
        seen.append((timer, clock.now_ns() - start))  # the clock reads the tick's time meanwhile
    f, d = Timer.FAILSAFE, Timer.DIAGNOSTICS
    assert seen == [(f, 250 * MS), (f, 500 * MS), (d, 500 * MS), (f, 750 * MS), (f, NS), (d, NS)]
    assert clock.now_ns() == start + NS
    assert list(clock.advance(start + NS - 1)) == [] and clock.now_ns() == start + NS  # never goes back
    assert list(clock.advance(start + 1250 * MS)) == [f]


def test_metric_pairing_takes_the_last_recorded_command_at_or_before_the_stamp() -> None:
    recorded = np.array([10, 20, 20, 30])
    assert pair_by_stamp(np.array([5, 10, 19, 20, 25, 100]), recorded).tolist() == [-1, 0, 0, 2, 2, 3]
    assert pair_by_stamp(np.array([25, 100]), recorded, max_age_s=10 / NS).tolist() == [2, -1]
    assert pearson(np.ones(5), np.arange(5.0)) is None
    assert pearson(np.arange(5.0), -2 * np.arange(5.0)) == pytest.approx(-1.0)
    predicted = np.zeros((3, 6))
    predicted[:, 0] = [1.0, 2.0, 4.0]
    twists = np.zeros((2, 6))
    twists[:, 0] = [3.0, 1.0]  # recorded out of order: stamps 20 then 10
    metrics, pairs = command_metrics(np.array([5, 15, 25]), predicted, np.array([20, 10]), twists, [("vx", "linear.x", 0)])
    assert pairs.tolist() == [-1, 1, 0]
    assert (metrics.paired, metrics.unpaired) == (2, 1)
    assert metrics.axes[0].mse == pytest.approx(((2 - 1) ** 2 + (4 - 3) ** 2) / 2)
    assert metrics.axes[0].mae == pytest.approx(1.0)


def test_cli_replay(tmp_path: Path, imu_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["replay", str(FIXTURE), "--model", str(imu_bundle), "--out", str(tmp_path / "out"),
                 "--no-plot", "--no-progress", "--imu-topic", "imu"])
    out = capsys.readouterr().out
    assert code == 0
    assert "x real time" in out and "metrics  399 predictions paired" in out
    assert (tmp_path / "out" / "metrics.json").is_file() and not (tmp_path / "out" / "commands.png").exists()
    code = main(["replay", str(FIXTURE), "--model", str(imu_bundle), "--out", str(tmp_path / "out")])
    assert code == 1 and "exists and is not empty" in capsys.readouterr().err


ROS_FREE_SCRIPT = """
import json, sys
for name in ("rclpy", "diagnostic_msgs", "sensor_msgs", "geometry_msgs", "builtin_interfaces", "std_msgs"):
    sys.modules[name] = None  # importing any of them now fails, as on a machine without ROS
from lnn_ros.bag.replay import ReplayConfig, replay_bag
result = replay_bag(sys.argv[1], sys.argv[2], sys.argv[3], ReplayConfig(plot=False, progress=False))
from rosbags.highlevel import AnyReader
from lnn_ros.bag.log_clock import LogClock, Timer
from lnn_ros.bag.messages import default_typestore
from lnn_ros.runtime.records import Command, Stream
with AnyReader([result.out_dir / "commands"], default_typestore=default_typestore()) as reader:
    diagnostics = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages() if c.topic == "/diagnostics"]
final = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
print(json.dumps({"commands": result.commands, "warnings": list(result.warnings), "diagnostics": len(diagnostics),
                  "written": result.counters["diagnostics_written"], "final": final}))
"""


def test_replay_needs_no_ros_install(tmp_path: Path, imu_bundle: Path) -> None:
    """Without any ROS package importable, replay still runs and writes the node's diagnostics too."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", ROS_FREE_SCRIPT, str(FIXTURE), str(imu_bundle), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["commands"] == 399 and out["warnings"] == []
    assert out["diagnostics"] == out["written"] == 2  # t = 1 s and the end of the 2 s bag
    assert out["final"]["commands_published"] == "399" and out["final"]["state"] == "ok"


def test_a_long_series_is_plotted_as_its_envelope() -> None:
    from lnn_ros.bag.plot import envelope

    values = np.sin(np.linspace(0.0, 60.0, 100_003)) + np.random.default_rng(0).normal(0, 0.01, 100_003)
    values[54_321] = 9.0  # one spike: must be drawn
    shown = envelope(values, limit=2_000)
    assert len(shown) <= 2_000 + 2 + 100_003 % 1_000 and np.all(np.diff(shown) > 0)
    assert {0, 100_002, 54_321, int(np.argmin(values))} <= set(shown.tolist())
    np.testing.assert_array_equal(envelope(values[:500], limit=2_000), np.arange(500))


def test_replay_freezes_the_objects_it_starts_with_only_while_it_runs(
    tmp_path: Path, imu_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc.freeze during the loop (the collector's full passes skip the loaded bundle and libraries),
    and the collector as it was afterwards, also when the replay fails."""
    import gc

    from lnn_ros.bag.writer import BagWriter

    frozen: list[int] = []
    write_twists = BagWriter.write_twists

    def spy(self: BagWriter, *args: object, **kwargs: object) -> None:
        frozen.append(gc.get_freeze_count())
        write_twists(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(BagWriter, "write_twists", spy)
    before = gc.get_freeze_count()
    replay_bag(FIXTURE, imu_bundle, tmp_path / "out", ReplayConfig(plot=False, progress=False))
    assert frozen and min(frozen) > before  # every batch written with the objects from before frozen
    assert gc.get_freeze_count() == before

    def fail(self: BagWriter, *args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(BagWriter, "write_twists", fail)
    with pytest.raises(OSError, match="disk full"):
        replay_bag(FIXTURE, imu_bundle, tmp_path / "failed", ReplayConfig(plot=False, progress=False))
    assert gc.get_freeze_count() == before
