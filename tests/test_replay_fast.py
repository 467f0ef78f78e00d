"""The batched replay path against the step-by-step one, on real bags and real bundles.

Every bag is replayed twice, with ``step_by_step`` and without, and everything a replay writes
must agree: the commands (bag and CSV: stamps and log times identical, values to 1e-6), every
counter, the summary, and every diagnostics message (same log times, same values except the
wall-clock latencies). Hostile bags (stamps out of order or repeated, gaps, NaN, a camera
dropout that makes the policy stale, a hold, truncated and corrupt messages) must agree too,
and a spy checks that batches were really taken, so a fast path that always falls back fails.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_factory import camera_bundle, imu_bundle, narrow_bundle  # noqa: F401 (module-scoped fixtures)
from fixture_paths import FIXTURE
from rosbags.highlevel import AnyReader

from lnn_ros.bag import cdr
from lnn_ros.bag.messages import default_typestore
from lnn_ros.bag.reader import MessageOrder
from lnn_ros.bag.replay import ReplayConfig, ReplayResult, replay_bag
from lnn_ros.bag.writer import BagWriter
from lnn_ros.engine import plan
from lnn_ros.runtime import LiveLoop
from lnn_ros.runtime.records import ImuSample
from lnn_ros_tools.synthetic.flight import START_NS, command_at, frame_at, imu_at, write_flight

MS = 1_000_000
WALL_CLOCK_KEYS = ("step_latency_ms.", "frame_latency_ms.", "preprocess_ms.")


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes (IMU samples) of the batches LiveLoop.run_batch took during the test."""
    taken: list[int] = []
    original = LiveLoop.run_batch

    def spy(self: LiveLoop, *args: Any) -> Any:
        result = original(self, *args)
        if result is not None:
            taken.append(len(result.stamps_ns))
        return result

    monkeypatch.setattr(LiveLoop, "run_batch", spy)
    return taken


def diagnostics(out: Path) -> list[tuple[int, dict[str, str]]]:
    with AnyReader([out / "commands"], default_typestore=default_typestore()) as reader:
        found = []
        for connection, log_time, raw in reader.messages():
            if connection.topic == "/diagnostics":
                status = reader.deserialize(raw, connection.msgtype).status[0]
                found.append((log_time, {"level": str(status.level), "message": status.message,
                                         **{kv.key: kv.value for kv in status.values}}))
        return found


def commands(out: Path) -> list[tuple[int, int, tuple[float, ...]]]:
    with AnyReader([out / "commands"], default_typestore=default_typestore()) as reader:
        found = []
        for connection, log_time, raw in reader.messages():
            if connection.topic == "/cmd_vel":
                message = reader.deserialize(raw, connection.msgtype)
                twist = message.twist
                stamp = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
                values = (twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.x, twist.angular.y, twist.angular.z)
                found.append((log_time, stamp, values))
        return found


def assert_close(a: Any, b: Any) -> None:
    """Equal structure, numbers to 1e-6."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_close(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_close(x, y)
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, abs_tol=1e-6) or (math.isnan(a) and math.isnan(b))
    else:
        assert a == b


def assert_same_replay(step: ReplayResult, fast: ReplayResult) -> None:
    """Everything the two replays wrote agrees (commands to 1e-6, the rest exactly but wall-clock figures)."""
    assert fast.counters == step.counters
    assert (fast.messages, fast.commands, fast.warnings) == (step.messages, step.commands, step.warnings)
    assert (fast.metrics is None) == (step.metrics is None)
    if step.metrics is not None and fast.metrics is not None:
        assert_close(step.metrics.to_dict(), fast.metrics.to_dict())
    rows_step = list(csv.reader((step.out_dir / "commands.csv").open()))
    rows_fast = list(csv.reader((fast.out_dir / "commands.csv").open()))
    assert rows_fast[0] == rows_step[0] and len(rows_fast) == len(rows_step)
    for a, b in zip(rows_step[1:], rows_fast[1:]):
        assert a[:2] == b[:2]  # stamp, log time
        assert np.allclose([float(v) if v else math.nan for v in a[2:]], [float(v) if v else math.nan for v in b[2:]],
                           atol=1e-6, rtol=0, equal_nan=True)
    meta_step, meta_fast = ((r.out_dir / "commands" / "metadata.yaml").read_text() for r in (step, fast))
    assert meta_fast.replace("/fast/", "/step/") == meta_step
    cmd_step, cmd_fast = commands(step.out_dir), commands(fast.out_dir)
    assert [c[:2] for c in cmd_fast] == [c[:2] for c in cmd_step]
    if cmd_step:
        assert np.abs(np.array([c[2] for c in cmd_fast]) - np.array([c[2] for c in cmd_step])).max() <= 1e-6
    diag_step, diag_fast = diagnostics(step.out_dir), diagnostics(fast.out_dir)
    assert [t for t, _ in diag_fast] == [t for t, _ in diag_step]
    assert len(diag_step) == step.counters["diagnostics_written"]
    for (_, a), (_, b) in zip(diag_step, diag_fast):
        assert a.keys() == b.keys()
        assert {k: v for k, v in a.items() if not k.startswith(WALL_CLOCK_KEYS)} == {
            k: v for k, v in b.items() if not k.startswith(WALL_CLOCK_KEYS)
        }


def replay_both(bag: Path, bundle: Path, tmp_path: Path, **options: Any) -> tuple[ReplayResult, ReplayResult]:
    step = replay_bag(bag, bundle, tmp_path / "step", ReplayConfig(progress=False, plot=False, step_by_step=True, **options))
    fast = replay_bag(bag, bundle, tmp_path / "fast", ReplayConfig(progress=False, plot=False, **options))
    assert_same_replay(step, fast)
    return step, fast


# ---------------------------------------------------------------------- hostile bags
Entry = tuple[int, int, str, Any]  # log time, tie-break, topic, record (ImuSample, ImageFrame, Command or raw bytes)


def flight_entries(seconds: float) -> list[Entry]:
    """The synthetic flight's messages (as :func:`write_flight` writes them), to be edited."""
    entries: list[Entry] = []
    for name, hz, phase, latency, make in (
        ("/imu", 200.0, 0, 1 * MS, imu_at),
        ("/camera/image_raw", 30.0, 2_500_000, 12 * MS, frame_at),
        ("/cmd_vel", 50.0, 0, 2 * MS, command_at),
    ):
        period = round(1e9 / hz)
        for i in range(int(seconds * hz)):
            stamp = START_NS + phase + i * period
            entries.append((stamp + latency, ("/imu", "/camera/image_raw", "/cmd_vel").index(name), name,
                            make(stamp, (stamp - START_NS) / 1e9)))
    return entries


def write_entries(path: Path, entries: list[Entry], storage: str = "mcap") -> Path:
    with BagWriter(path, storage) as bag:
        for log_time, _, topic, record in sorted(entries, key=lambda e: (e[0], e[1])):
            if isinstance(record, bytes):
                msgtype = {"/imu": "sensor_msgs/msg/Imu", "/camera/image_raw": "sensor_msgs/msg/Image"}[topic]
                bag.write_raw(topic, msgtype, record, log_time)
            else:
                bag.write_record(topic, record, log_time)
    return path


def _restamp(entry: Entry, stamp_ns: int) -> Entry:
    log_time, tie, topic, record = entry
    return (log_time, tie, topic, record._replace(stamp_ns=stamp_ns))


def _topic(entries: list[Entry], topic: str) -> list[int]:
    return [i for i, e in enumerate(entries) if e[2] == topic]


def out_of_order(entries: list[Entry]) -> None:
    imu, camera = _topic(entries, "/imu"), _topic(entries, "/camera/image_raw")
    a, b = imu[300], imu[301]
    entries[a], entries[b] = _restamp(entries[a], entries[b][3].stamp_ns), _restamp(entries[b], entries[a][3].stamp_ns)
    entries[camera[40]] = _restamp(entries[camera[40]], entries[camera[38]][3].stamp_ns + 1)


def duplicates(entries: list[Entry]) -> None:
    imu, camera = _topic(entries, "/imu"), _topic(entries, "/camera/image_raw")
    entries[imu[401]] = _restamp(entries[imu[401]], entries[imu[400]][3].stamp_ns)
    entries[camera[50]] = _restamp(entries[camera[50]], entries[camera[49]][3].stamp_ns)


def long_gap(entries: list[Entry]) -> None:
    """Both sensors silent for 1.5 s (> max_gap_s 1 s, > the 0.5 s stale timeout): stale, gap reset, recovery."""
    start, end = START_NS + 1_500 * MS, START_NS + 3_000 * MS
    entries[:] = [e for e in entries if e[2] == "/cmd_vel" or not start <= e[0] < end]


def nan_input(entries: list[Entry]) -> None:
    imu = _topic(entries, "/imu")
    for index in (350, 351, 700):
        log_time, tie, topic, sample = entries[imu[index]]
        velocity = sample.angular_velocity.copy()
        velocity[1] = math.nan
        entries[imu[index]] = (log_time, tie, topic, sample._replace(angular_velocity=velocity))


def camera_dropout(entries: list[Entry]) -> None:
    """The camera silent for 0.8 s while the IMU flows: the policy goes stale, hovers, then recovers."""
    start, end = START_NS + 1_500 * MS, START_NS + 2_300 * MS
    entries[:] = [e for e in entries if e[2] != "/camera/image_raw" or not start <= e[0] < end]


def imu_pause(entries: list[Entry]) -> None:
    """The IMU silent for 0.13 s (no stale, but the failsafe tick sends holds), then again for 0.3 s."""
    for start, end in ((1_500, 1_630), (2_500, 2_800)):
        entries[:] = [e for e in entries if e[2] != "/imu" or not START_NS + start * MS <= e[0] < START_NS + end * MS]


def corrupt(entries: list[Entry]) -> None:
    """A truncated IMU message, garbage on the camera topic and an image of the wrong size."""
    imu, camera = _topic(entries, "/imu"), _topic(entries, "/camera/image_raw")
    log_time, tie, topic, sample = entries[imu[500]]
    store = default_typestore()
    from lnn_ros.bag.messages import imu_message

    raw = bytes(store.serialize_cdr(imu_message(sample, "imu_link", store), "sensor_msgs/msg/Imu"))
    entries[imu[500]] = (log_time, tie, topic, raw[: len(raw) // 2])
    log_time, tie, topic, _ = entries[camera[30]]
    entries[camera[30]] = (log_time, tie, topic, b"\x00\x01\x00\x00" + bytes(range(7)))
    log_time, tie, topic, frame = entries[camera[60]]
    entries[camera[60]] = (log_time, tie, topic, frame_at(frame.stamp_ns, 2.0, width=16, height=12))


def future_stamps(entries: list[Entry]) -> None:
    """IMU stamps 3 s ahead (the gate's FROM_FUTURE), one and then a run of them."""
    imu = _topic(entries, "/imu")
    for index in (250, *range(600, 612)):
        entries[imu[index]] = _restamp(entries[imu[index]], entries[imu[index]][3].stamp_ns + 3_000 * MS)


HOSTILE: dict[str, Callable[[list[Entry]], None]] = {
    "out_of_order": out_of_order,
    "duplicates": duplicates,
    "long_gap": long_gap,
    "nan_input": nan_input,
    "camera_dropout": camera_dropout,
    "imu_pause": imu_pause,
    "corrupt": corrupt,
    "future_stamps": future_stamps,
}


# ---------------------------------------------------------------------- tests
def test_fixture_bag_equal_and_batched(
    camera_bundle: Path, tmp_path: Path, batches: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    step, fast = replay_both(FIXTURE, camera_bundle, tmp_path)
    assert fast.commands > 300 and fast.metrics is not None
    assert sum(batches) >= 0.95 * fast.commands  # all but the first few commands: a refused batch costs a few messages one by one
    # The batches add no rounding of their own: with the step graph's own first layer in every unrolled
    # step (the factored one adds x W_x + b and h W_h in another order) the CSV is the same, byte for byte.
    monkeypatch.setattr(plan, "FACTORED", False)
    exact = replay_bag(FIXTURE, camera_bundle, tmp_path / "exact", ReplayConfig(progress=False, plot=False))
    assert (exact.out_dir / "commands.csv").read_bytes() == (step.out_dir / "commands.csv").read_bytes()


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_flight_bags_equal(storage: str, camera_bundle: Path, tmp_path: Path, batches: list[int]) -> None:
    bag = write_flight(tmp_path / "flight", seconds=6.0, storage=storage)
    _, fast = replay_both(bag, camera_bundle, tmp_path)
    assert sum(batches) >= 0.85 * fast.commands
    assert fast.counters["diagnostics_written"] >= 6


def test_stamp_order_equal(camera_bundle: Path, tmp_path: Path, batches: list[int]) -> None:
    bag = write_entries(tmp_path / "bag", flight_entries(4.0))
    replay_both(bag, camera_bundle, tmp_path, order=MessageOrder.STAMP)
    assert batches


def test_clamped_outputs_equal(narrow_bundle: Path, tmp_path: Path, batches: list[int]) -> None:
    step, _ = replay_both(FIXTURE, narrow_bundle, tmp_path)
    assert step.counters["outputs_clamped"] > 0 and batches


def test_imu_only_bundle_equal(imu_bundle: Path, tmp_path: Path, batches: list[int]) -> None:
    entries = [e for e in flight_entries(4.0) if e[2] != "/camera/image_raw"]
    imu_pause(entries)
    bag = write_entries(tmp_path / "bag", entries)
    step, _ = replay_both(bag, imu_bundle, tmp_path)
    assert step.counters["hold_ticks"] > 0 and batches


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bags_equal(name: str, camera_bundle: Path, tmp_path: Path, batches: list[int]) -> None:
    entries = flight_entries(5.0)
    HOSTILE[name](entries)
    bag = write_entries(tmp_path / "bag", entries, storage="sqlite3" if name in ("corrupt", "nan_input") else "mcap")
    step, _ = replay_both(bag, camera_bundle, tmp_path)
    assert batches, "no batch was taken: the test would not compare anything"
    expected = {
        "out_of_order": ("imu_out_of_order", "camera_out_of_order"),
        "duplicates": ("imu_duplicate", "camera_duplicate"),
        "long_gap": ("imu_gap_reset", "failsafe_entries", "recoveries"),
        "nan_input": ("imu_nonfinite_input",),
        "camera_dropout": ("failsafe_entries", "recoveries", "hover_ticks"),
        "imu_pause": ("hold_ticks",),
        "corrupt": ("camera_wrong_size",),
        "future_stamps": ("imu_from_future",),
    }[name]
    for counter in expected:  # the problem really happened (else the bag would test nothing)
        assert step.counters[counter] > 0, counter
    if name == "corrupt":
        assert any("could not be decoded" in w for w in step.warnings)


def test_hostile_in_stamp_order(camera_bundle: Path, tmp_path: Path, batches: list[int]) -> None:
    entries = flight_entries(4.0)
    for name in ("out_of_order", "duplicates", "nan_input", "camera_dropout"):
        HOSTILE[name](entries)
    bag = write_entries(tmp_path / "bag", entries)
    replay_both(bag, camera_bundle, tmp_path, order=MessageOrder.STAMP, reorder_window_s=0.05)
    assert batches


# ---------------------------------------------------------------------- parts
def test_twists_encoded_as_one_by_one() -> None:
    stamps = np.array([START_NS, 5, 1_000_000_000, 2**31 * 1_000_000_000 - 1], dtype=np.int64)
    twists = np.random.default_rng(0).normal(size=(len(stamps), 6))
    for frame_id in ("base_link", "", "abc", "abcdefg", "odom_frame_long_name"):
        rows = cdr.encode_twists_stamped(stamps, twists, frame_id)
        for row, stamp, twist in zip(rows, stamps.tolist(), twists.tolist()):
            assert row.tobytes() == cdr.encode_twist_stamped(stamp, twist, frame_id)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_write_twists_same_bag_as_one_by_one(storage: str, tmp_path: Path) -> None:
    """Across mcap chunk boundaries (1 MiB: ~9000 commands), after a diagnostics message."""
    rng = np.random.default_rng(1)
    count = 20_000
    stamps = START_NS + np.arange(count, dtype=np.int64) * 5 * MS
    twists = rng.normal(size=(count, 6))
    logs = stamps + 1 * MS

    def write(path: Path, bulk: bool) -> None:
        path.parent.mkdir()
        with BagWriter(path, storage) as bag:
            bag.write_diagnostics("/diagnostics", START_NS, {"a": "1"})
            for part in np.array_split(np.arange(count), [3, 9000, 9001]):
                if bulk:
                    bag.write_twists("/cmd_vel", stamps[part], twists[part], logs[part], "base_link")
                else:
                    from lnn_ros.runtime.records import Command

                    for i in part.tolist():
                        bag.write_twist("/cmd_vel", Command(int(stamps[i]), tuple(twists[i].tolist())), int(logs[i]))

    one, bulk = tmp_path / "one" / "bag", tmp_path / "bulk" / "bag"  # the same name: the bag stores it
    write(one, bulk=False)
    write(bulk, bulk=True)
    if storage == "mcap":
        assert (bulk / "bag.mcap").read_bytes() == (one / "bag.mcap").read_bytes()
    assert (bulk / "metadata.yaml").read_text() == (one / "metadata.yaml").read_text()
    assert list(_messages(bulk)) == list(_messages(one))


def _messages(path: Path) -> Iterator[tuple[str, int, bytes]]:
    with AnyReader([path], default_typestore=default_typestore()) as reader:
        for connection, log_time, raw in reader.messages():
            yield connection.topic, log_time, bytes(raw)


@pytest.mark.parametrize("order", [MessageOrder.LOG, MessageOrder.STAMP])
def test_blocks_are_the_messages(order: MessageOrder, tmp_path: Path) -> None:
    """BagReader.blocks (IMU decoded in bulk) gives what messages gives: records, order, warnings, counts."""
    from lnn_ros.bag.reader import BagReader
    from lnn_ros.runtime.records import Stream

    entries = flight_entries(3.0)
    for name in ("out_of_order", "duplicates", "corrupt"):
        HOSTILE[name](entries)
    bag = write_entries(tmp_path / "bag", entries)
    streams = [Stream.IMU, Stream.CAMERA, Stream.COMMAND]
    with BagReader(bag, streams=streams) as reader:
        expected = list(reader.messages(order))
        warnings = reader.warnings.lines()
    with BagReader(bag, streams=streams) as reader:
        got = [block.message(i) for block in reader.blocks(order, size=64) for i in range(len(block))]
        assert reader.warnings.lines() == warnings
    assert len(warnings) >= 3 and len(got) == len(expected)
    for a, b in zip(expected, got):
        assert (a.stream, a.log_time_ns, a.record.stamp_ns) == (b.stream, b.log_time_ns, b.record.stamp_ns)
        if isinstance(a.record, ImuSample):
            assert all(np.array_equal(x, y) for x, y in zip(a.record[1:], b.record[1:]))
        else:
            assert a.record == b.record or a.record.data == b.record.data  # type: ignore[union-attr]


@pytest.mark.parametrize("jitter_ns", [2 * MS, 100], ids=["jitter", "steady"])
@pytest.mark.parametrize("limits", [dict(), dict(tolerance_s=0.0), dict(expected_rate_hz=200.0), dict(max_age_s=0.0, max_future_s=0.0)])
def test_gate_run_equals_checks(limits: dict[str, float], jitter_ns: int) -> None:
    """StampGate.accept_run leaves the gate as check() on each message would, across learning and windows."""
    from lnn_ros.runtime.counters import Counters
    from lnn_ros.runtime.records import Stream
    from lnn_ros.runtime.stamp_gate import StampGate, StampLimits

    rng = np.random.default_rng(2)
    stamps = START_NS + np.cumsum(rng.integers(4 * MS, 6 * MS, size=900)).astype(np.int64)
    stamps[500:] += 20 * MS  # missed messages
    now = stamps + 1 * MS + rng.integers(0, jitter_ns, size=len(stamps))
    now = np.maximum.accumulate(now)
    one, run = (StampGate(Stream.IMU, StampLimits(**limits), Counters()) for _ in range(2))
    for gate in (one, run):
        for stamp, at in zip(stamps[:10].tolist(), now[:10].tolist()):
            assert gate.check(stamp, at) is None
    for start, end in ((10, 40), (40, 300), (300, 301), (301, 900)):
        for stamp, at in zip(stamps[start:end].tolist(), now[start:end].tolist()):
            assert one.check(stamp, at) is None
        commit = run.accept_run(stamps[start:end], now[start:end])
        assert commit is not None
        commit()
        state = {k: v for k, v in vars(one).items() if k not in ("_counters", "_learn")}
        assert {k: v for k, v in vars(run).items() if k not in ("_counters", "_learn")} == state
        assert (one._learn is None) == (run._learn is None)
        if one._learn is not None and run._learn is not None:
            assert np.array_equal(one._learn, run._learn)
        assert one._counters == run._counters
    bad = stamps[:3].copy()
    assert run.accept_run(bad + 10**10, now[:3] + 10**10 - 10**9) is None  # would be rejected: no commit


SHIPPED = sorted(p for p in (Path(__file__).resolve().parent.parent / "models").iterdir() if (p / "manifest.yaml").exists())


@pytest.mark.parametrize("bundle", SHIPPED, ids=[p.name for p in SHIPPED])
def test_run_steps_equals_step_calls(bundle: Path) -> None:
    """Engine.run_steps (the step graph unrolled, its Δt guard folded) against Engine.step one by one,
    for every shipped bundle: outputs, state, stamp clock and counters; a run it must refuse changes nothing."""
    from lnn_ros.engine import Engine

    one, run = Engine(bundle), Engine(bundle)
    manifest = one.manifest
    rng = np.random.default_rng(3)
    mean = np.array([f.mean for f in manifest.features], dtype=np.float32)
    std = np.array([f.std for f in manifest.features], dtype=np.float32)
    count = 101
    features = (mean + std * rng.normal(size=(count, len(mean)))).astype(np.float32)
    gaps = rng.integers(1 * MS, 8 * MS, size=count)
    gaps[[20, 21, 60]] = [int(one.max_dt_s * 1e9) + 5 * MS, 1, int(one.max_dt_s * 1e9)]  # a clamped Δt, 1 ns, the limit
    stamps = (START_NS + np.cumsum(gaps)).astype(np.int64)
    for engine in (one, run):
        engine.step(features[0], int(stamps[0]))  # starts the clock
        engine.step(features[1], int(stamps[1]))
    expected = []
    for f, stamp in zip(features[2:], stamps[2:].tolist()):
        result = one.step(f, stamp)
        assert result.output is not None
        expected.append(result.output.copy())
    bad = features[2:].copy()
    bad[7, 0] = np.nan
    assert run.run_steps(bad, stamps[2:]) is None  # a NaN input: refused, nothing changed
    assert run.run_steps(features[2:], stamps[2:] - 10**9) is None  # stamps going back: refused
    got = run.run_steps(features[2:], stamps[2:])
    assert got is not None
    assert np.abs(got.outputs - np.array(expected)).max() <= 1e-6
    assert np.abs(run.hidden - one.hidden).max() <= 1e-6
    assert run.clock.last_stamp_ns == one.clock.last_stamp_ns
    assert run.counters == one.counters and one.counters.dt_clamped >= 1


def _raw_and_warnings(bag: Path, fast: bool) -> tuple[list[tuple[str, int, bytes]], list[str]]:
    from lnn_ros.bag.reader import BagReader
    from lnn_ros.runtime.records import Stream

    try:
        with BagReader(bag, streams=[Stream.IMU, Stream.CAMERA, Stream.COMMAND]) as reader:
            items = [(c.topic, t, bytes(d)) for c, t, d in reader._raw(fast=fast)]
            return items, reader.warnings.lines()
    except Exception as exc:  # a bag that does not open: both must fail alike
        return [], [f"{type(exc).__name__}: {exc}"]


def _records(data: bytearray, at: int) -> Iterator[tuple[int, int, int]]:
    """(opcode, offset, length) of the mcap records from ``at`` until one runs past the data or the footer."""
    while at + 9 <= len(data) and data[at] != 0x02:
        length = int.from_bytes(data[at + 1 : at + 9], "little")
        yield data[at], at, length
        at += 9 + length


def _decoded_and_warnings(bag: Path, blocks: bool) -> tuple[list[tuple[str, int, int]], list[str]]:
    from lnn_ros.bag.reader import BagReader
    from lnn_ros.runtime.records import Stream

    try:
        with BagReader(bag, streams=[Stream.IMU, Stream.CAMERA, Stream.COMMAND]) as reader:
            if blocks:
                got = [b.message(i) for b in reader.blocks(size=100) for i in range(len(b))]
            else:
                got = list(reader.messages())
            return [(m.stream.value, m.log_time_ns, m.record.stamp_ns) for m in got], reader.warnings.lines()
    except Exception as exc:  # a bag that does not open: both must fail alike
        return [], [f"{type(exc).__name__}: {exc}"]


@pytest.mark.parametrize("damage", ["none", "record_length", "message_header", "chunk_body", "truncated"])
def test_fast_mcap_reads_what_rosbags_reads(damage: str, tmp_path: Path) -> None:
    """lnn_ros.bag.fast_mcap yields rosbags' messages, order and errors, on intact and damaged mcap files (3 chunks)
    (read_counts are kept by the callers of _raw, so both also warn of a shortfall alike)."""
    bag = write_flight(tmp_path / "flight", seconds=8.0, width=64, height=48)
    storage = bag / "flight.mcap"
    data = bytearray(storage.read_bytes())
    chunks = [(at, length) for op, at, length in _records(data, 8) if op == 0x06]
    assert len(chunks) >= 3 and len(data) > 2**21
    body = chunks[1][0] + 9  # the second chunk: start, end, size (8 each), crc (4), compression, records length (8)
    records = body + 28 + 4 + int.from_bytes(data[body + 28 : body + 32], "little") + 8
    message = next(at for op, at, _ in _records(data, records) if op == 0x05) if damage != "none" else 0
    if damage == "record_length":  # a message record claims more bytes than its chunk has
        data[message + 1 : message + 9] = (2**40).to_bytes(8, "little")
    elif damage == "message_header":  # a message record too short for its header
        data[message + 1 : message + 9] = (10).to_bytes(8, "little")
    elif damage == "chunk_body":  # a checksum that does not match the chunk
        data[body + 24 : body + 28] = (12345).to_bytes(4, "little")
    elif damage == "truncated":
        del data[int(len(data) * 0.7) :]
    storage.write_bytes(bytes(data))
    fast, warnings_fast = _raw_and_warnings(bag, fast=True)
    slow, warnings_slow = _raw_and_warnings(bag, fast=False)
    assert warnings_fast == warnings_slow
    assert fast == slow
    # BagReader.blocks reads a chunk at a time (fast_mcap.raw_message_lists): as messages() reads through rosbags
    messages, warnings_messages = _decoded_and_warnings(bag, blocks=False)
    blocks, warnings_blocks = _decoded_and_warnings(bag, blocks=True)
    assert warnings_blocks == warnings_messages
    assert blocks == messages
    assert bool(warnings_messages) == (damage != "none"), warnings_messages  # the damage was seen
    if damage == "none":
        assert len(fast) == 8 * (200 + 30 + 50)


@pytest.mark.parametrize("params", [
    {"imu_rate_hz": 200.0, "camera_rate_hz": 30.0, "diagnostics_period_s": 0.25, "failsafe_rate_hz": 50.0,
     "stale_timeout_s": 0.3, "failsafe_action": "hover", "max_command_gap_s": 0.05},
    {"max_age_s": 0.0, "max_future_s": 0.0, "time_base_tolerance_s": 0.0, "stats_window": 50, "failsafe_hover_s": 0.2},
], ids=["rates-fast-timers-hover", "stamp-checks-off"])
def test_node_parameters_equal(params: dict[str, Any], camera_bundle: Path, tmp_path: Path, batches: list[int]) -> None:
    """The node's parameters (expected rates, timers, stale timeout, failsafe action, stamp checks off) through both paths."""
    import yaml

    entries = flight_entries(5.0)
    for name in ("camera_dropout", "imu_pause", "out_of_order", "future_stamps"):
        HOSTILE[name](entries)
    bag = write_entries(tmp_path / "bag", entries)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    step, _ = replay_both(bag, camera_bundle, tmp_path, params_file=path)
    assert batches and step.counters["failsafe_entries"] > 0


@pytest.mark.parametrize("values", [{}, {"state": "ok", "imu.rate_hz": "200.00", "bundle": "drone_cfc"}, {"k": ""}])
def test_diagnostics_encoded_as_rosbags_serialises(values: dict[str, str]) -> None:
    from lnn_ros.bag.messages import diagnostic_array_message

    store = default_typestore()
    for name, message, hardware_id, level in (("lnn_node: policy", "flying", "drone_cfc", 0), ("", "", "", 2), ("ab", "c", "d", 1)):
        expected = store.serialize_cdr(
            diagnostic_array_message(START_NS + 123, name, hardware_id, level, message, values, store),
            "diagnostic_msgs/msg/DiagnosticArray",
        )
        assert cdr.encode_diagnostic_array(START_NS + 123, level, name, message, hardware_id, list(values.items())) == bytes(expected)


@pytest.mark.parametrize("case", range(4), ids=["bgr8_640x480", "mono8_752x480", "bgra8_672x376", "jpeg_1280x720"])
def test_camera_preprocessing_equal(case: int, tmp_path: Path, batches: list[int]) -> None:
    """The shipped policy (its declared preprocessing: crop, resize, colour, jpeg) on large camera frames, both paths."""
    pytest.importorskip("PIL.Image")
    from test_camera_bags import CASES, MODEL, write_camera_bag

    from lnn_ros.bag import BagTopics

    kind, storage, topic = CASES[case]
    bag, _ = write_camera_bag(tmp_path / "bag", kind, storage, topic)
    step, _ = replay_both(bag, MODEL, tmp_path, topics=BagTopics(camera=topic))
    assert batches and step.counters["camera_encoded"] > 0


def test_cli_step_by_step_flag(camera_bundle: Path, tmp_path: Path, batches: list[int]) -> None:
    import json

    from lnn_ros.cli import main

    base = ["replay", str(FIXTURE), "--model", str(camera_bundle), "--no-plot", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "step"), "--step-by-step"]) == 0
    assert not batches
    assert main([*base, "--out", str(tmp_path / "fast")]) == 0
    assert batches
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("step", "fast")]
    assert summaries[0]["counters"] == summaries[1]["counters"]
