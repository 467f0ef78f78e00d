"""The replay's outputs written in chunks from its on-disk spools: equal to the in-memory computations, and bounded in memory."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lnn_ros.bag.metrics import MetricsAccumulator, StampPairer, command_metrics, pair_by_stamp, pearson
from lnn_ros.bag.plot import Envelope, envelope
from lnn_ros.bag.replay_outputs import RECORDED_DTYPE, PublishedLog, RecordedLog, published_dtype, write_outputs
from lnn_ros.bag.spool import RecordSpool
from lnn_ros.runtime import Command

AXES = [("vx", "linear.x", 0), ("yaw_rate", "angular.z", 5)]
MB = 1024 * 1024


def _chunks(count: int, sizes: list[int]) -> list[slice]:
    """``count`` rows cut into slices of the given sizes (repeated), the last one shorter."""
    cuts, begin, index = [], 0, 0
    while begin < count:
        size = max(1, sizes[index % len(sizes)])
        cuts.append(slice(begin, begin + size))
        begin += size
        index += 1
    return cuts


# ------------------------------------------------------------------------------------------ spool
def test_spool_gives_back_rows_and_arrays_in_order_in_chunks(tmp_path: Path) -> None:
    dtype = published_dtype(3)
    with RecordSpool(dtype, tmp_path, order_key="stamp_ns", block_rows=4) as spool:
        expected = np.zeros(23, dtype=dtype)
        expected["stamp_ns"] = np.arange(23) * 10
        expected["log_time_ns"] = np.arange(23) * 10 + 3
        expected["values"] = np.arange(69, dtype=np.float32).reshape(23, 3)
        for index in range(9):  # one by one: two block flushes and a part block
            row = spool.row()
            row["stamp_ns"], row["log_time_ns"], row["values"] = expected[index].tolist()
            spool.commit_row()
        spool.append(expected[9:20])
        for index in range(20, 23):
            row = spool.row()
            row["stamp_ns"], row["log_time_ns"], row["values"] = expected[index].tolist()
            spool.commit_row()
        assert len(spool) == 23 and spool.ordered
        assert list(tmp_path.iterdir()) == []  # no name on disk: the file goes with the process
        for size in (1, 5, 23, 100):
            got = np.concatenate([chunk.copy() for chunk in spool.chunks(size)])
            np.testing.assert_array_equal(got, expected)
        spool.append(expected[:1])  # appending after reading continues at the end
        assert len(spool) == 24 and not spool.ordered  # the stamp went back
        assert np.concatenate([c.copy() for c in spool.chunks(7)])[-1] == expected[0]
        with pytest.raises(TypeError, match="RecordSpool of"):
            spool.append(np.zeros(2, dtype=np.float64))


def test_spool_order_follows_rows_inside_an_appended_array(tmp_path: Path) -> None:
    with RecordSpool(published_dtype(1), tmp_path, order_key="stamp_ns") as spool:
        rows = np.zeros(3, dtype=spool.dtype)
        rows["stamp_ns"] = [1, 3, 2]
        spool.append(rows)
        assert not spool.ordered


# -------------------------------------------------------------------------------- pairing, metrics
@settings(max_examples=60, deadline=None)
@given(
    predictions=st.lists(st.integers(0, 400), min_size=1, max_size=120),
    recorded=st.lists(st.integers(0, 400), min_size=1, max_size=60),
    prediction_chunks=st.lists(st.integers(1, 40), min_size=1, max_size=5),
    recorded_chunks=st.lists(st.integers(1, 30), min_size=1, max_size=5),
    max_age=st.one_of(st.none(), st.integers(0, 100)),
    ordered=st.booleans(),
)
def test_stamp_pairer_in_chunks_equals_pairing_all_at_once(
    predictions: list[int], recorded: list[int], prediction_chunks: list[int], recorded_chunks: list[int],
    max_age: int | None, ordered: bool,
) -> None:
    prediction_ns = np.array(sorted(predictions) if ordered else predictions, dtype=np.int64)
    recorded_ns = np.sort(np.array(recorded, dtype=np.int64), kind="stable")
    twists = np.arange(len(recorded_ns) * 6, dtype=np.float64).reshape(-1, 6)  # row i identifies recorded i
    max_age_s = None if max_age is None else max_age / 1e9
    source = iter([(recorded_ns[s], twists[s]) for s in _chunks(len(recorded_ns), recorded_chunks)])
    pairer = StampPairer(source, max_age_s, ordered=ordered)
    valid, paired = [], []
    for part in _chunks(len(prediction_ns), prediction_chunks):
        ok, row = pairer.pair(prediction_ns[part])
        valid.append(ok)
        paired.append(row)
    expected = pair_by_stamp(prediction_ns, recorded_ns, max_age_s)
    np.testing.assert_array_equal(np.concatenate(valid), expected >= 0)
    np.testing.assert_array_equal(np.concatenate(paired)[expected >= 0], twists[expected[expected >= 0]])


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(0, 300),
    sizes=st.lists(st.integers(1, 90), min_size=1, max_size=4),
    scale=st.sampled_from([1e-3, 1.0, 1e4]),
    offset=st.sampled_from([0.0, 1e3]),
    seed=st.integers(0, 2**16),
)
def test_metrics_in_chunks_equal_the_two_pass_formulas(
    count: int, sizes: list[int], scale: float, offset: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    predicted = rng.normal(offset, scale, (count, 6))
    recorded = 0.7 * predicted + rng.normal(0.0, scale, (count, 6))
    valid = rng.random(count) < 0.8
    accumulator = MetricsAccumulator(AXES, 0.5)
    for part in _chunks(count, sizes):
        accumulator.add(predicted[part], recorded[part], valid[part])
    metrics = accumulator.result()
    assert (metrics.paired, metrics.unpaired, metrics.max_age_s) == (int(valid.sum()), int((~valid).sum()), 0.5)
    for axis, (_, _, column) in zip(metrics.axes, AXES):
        p, r = predicted[valid, column], recorded[valid, column]
        if not len(p):
            assert np.isnan(axis.mse) and np.isnan(axis.mae) and axis.pearson is None
            continue
        assert axis.mse == pytest.approx(np.mean((p - r) ** 2), rel=1e-12)
        assert axis.mae == pytest.approx(np.mean(np.abs(p - r)), rel=1e-12)
        reference = pearson(p, r)
        assert (axis.pearson is None) == (reference is None)
        if reference is not None:  # both formulas lose digits as offset / scale grows: allow for it
            assert axis.pearson == pytest.approx(reference, abs=1e-12 + 10 * np.finfo(float).eps * offset / scale)


def test_metrics_of_a_constant_axis_have_no_correlation() -> None:
    predicted = np.zeros((10, 6))
    predicted[:, 0] = np.arange(10.0)
    recorded = np.zeros((10, 6))
    recorded[:, 0] = 2.0  # constant: no correlation
    recorded[:, 5] = np.arange(10.0)
    metrics, _ = command_metrics(np.arange(10), predicted, np.arange(10), recorded, AXES)
    assert metrics.axes[0].pearson is None and metrics.axes[1].pearson is None  # yaw_rate predicted is constant
    assert metrics.axes[0].mse == pytest.approx(np.mean((np.arange(10.0) - 2.0) ** 2))


# ------------------------------------------------------------------------------------------ envelope
def _envelope_all_at_once(values: np.ndarray, limit: int) -> np.ndarray:
    """The envelope's definition, written out over the whole series (the code before it was streamed)."""
    count = len(values)
    if count <= limit:
        return np.arange(count)
    buckets = max(1, limit // 2)
    size = count // buckets
    body = values[: buckets * size].reshape(buckets, size)
    starts = np.arange(buckets) * size
    picked = np.concatenate([starts + np.argmin(body, axis=1), starts + np.argmax(body, axis=1), [0, count - 1],
                             np.arange(buckets * size, count)])
    return np.unique(picked)


@settings(max_examples=80, deadline=None)
@given(
    count=st.integers(1, 3000),
    limit=st.integers(2, 300),
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_envelope_in_chunks_picks_the_points_of_the_whole_series(count: int, limit: int, sizes: list[int], seed: int) -> None:
    values = np.random.default_rng(seed).normal(size=(count, 2))
    stamps = np.arange(count, dtype=np.int64) * 5_000_000
    picked = Envelope(count, 2, limit)
    for part in _chunks(count, sizes):
        picked.add(stamps[part], values[part])
    for column in range(2):
        rows, xs, ys = picked.points(column)
        expected = _envelope_all_at_once(values[:, column], limit)
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_array_equal(xs, stamps[expected])
        np.testing.assert_array_equal(ys, values[expected, column])


def test_envelope_of_one_series_is_the_streamed_one() -> None:
    values = np.sin(np.linspace(0.0, 60.0, 10_007))
    np.testing.assert_array_equal(envelope(values, limit=500), _envelope_all_at_once(values, 500))


# ------------------------------------------------------------------------------------- write_outputs
def _logs(tmp_path: Path, count: int, recorded_count: int, shuffle_recorded: bool, seed: int = 0,
          ) -> tuple[PublishedLog, RecordedLog, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    stamps = 1_000_000_000 + np.arange(count, dtype=np.int64) * 5_000_000
    values = rng.normal(size=(count, 2)).astype(np.float32)
    recorded_ns = 1_100_000_000 + np.arange(recorded_count, dtype=np.int64) * 20_000_000 - 3_000_000
    recorded_twists = np.zeros((recorded_count, 6))
    recorded_twists[:, [0, 5]] = rng.normal(size=(recorded_count, 2))
    order = rng.permutation(recorded_count) if shuffle_recorded else np.arange(recorded_count)
    published, recorded = PublishedLog(2, tmp_path), RecordedLog(tmp_path)
    half = count // 2
    for index in range(half):  # one by one, then as a batch: both paths of the loop
        published.add(Command(int(stamps[index]), (0.0,) * 6, values[index]), int(stamps[index]) + 1)
    published.add_batch(stamps[half:], stamps[half:] + 1, values[half:])
    recorded.extend(Command(int(recorded_ns[i]), tuple(recorded_twists[i].tolist())) for i in order)
    return published, recorded, stamps, values, recorded_ns[order], recorded_twists[order]


def _twists(values: np.ndarray) -> np.ndarray:
    twists = np.zeros((len(values), 6))
    twists[:, 0], twists[:, 5] = values[:, 0], values[:, 1]
    return twists


@pytest.mark.parametrize("shuffle_recorded", [False, True], ids=["recorded in stamp order", "recorded out of order"])
def test_outputs_equal_the_in_memory_computation(tmp_path: Path, shuffle_recorded: bool) -> None:
    published, recorded, stamps, values, recorded_ns, recorded_twists = _logs(tmp_path, 20_011, 5_003, shuffle_recorded)
    assert recorded.spool.ordered is not shuffle_recorded
    metrics, files = write_outputs(tmp_path, published, recorded, _twists, ["vx", "yaw_rate"], AXES, 0.05, "t")
    expected, pairs = command_metrics(stamps, _twists(values), recorded_ns, recorded_twists, AXES, 0.05)
    assert metrics is not None and (metrics.paired, metrics.unpaired) == (expected.paired, expected.unpaired)
    assert metrics.unpaired > 0  # the first predictions, before the first recorded command
    for got, want in zip(metrics.axes, expected.axes):
        assert got.mse == pytest.approx(want.mse, rel=1e-12) and got.mae == pytest.approx(want.mae, rel=1e-12)
        assert got.pearson == pytest.approx(want.pearson, abs=1e-12)
    assert json.loads(files["metrics_json"].read_text())["paired"] == expected.paired
    with files["commands_csv"].open() as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["stamp_ns", "log_time_ns", "vx", "yaw_rate", "recorded_vx", "recorded_yaw_rate"]
    assert [int(r[0]) for r in rows[1:]] == stamps.tolist() and [int(r[1]) for r in rows[1:]] == (stamps + 1).tolist()
    np.testing.assert_array_equal(np.array([[float(r[2]), float(r[3])] for r in rows[1:]], dtype=np.float32), values)
    paired = pairs >= 0
    assert [r[4] == "" for r in rows[1:]] == (~paired).tolist()
    np.testing.assert_array_equal([float(r[5]) for r, ok in zip(rows[1:], paired) if ok], recorded_twists[pairs[paired], 5])
    assert files["plot_png"].stat().st_size > 10_000
    published.close()
    recorded.close()


def test_outputs_without_recorded_commands_are_the_csv_only(tmp_path: Path) -> None:
    published, recorded, stamps, _, _, _ = _logs(tmp_path, 100, 0, False)
    metrics, files = write_outputs(tmp_path, published, recorded, _twists, ["vx", "yaw_rate"], AXES, 0.5, "t")
    assert metrics is None and set(files) == {"commands_csv"}
    with files["commands_csv"].open() as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["stamp_ns", "log_time_ns", "vx", "yaw_rate"] and len(rows) == 1 + len(stamps)


def _traced_peaks(tmp_path: Path, count: int) -> tuple[int, int, int]:
    """Traced allocations (numpy's included) while ``count`` commands at 200 Hz with recorded ones at
    50 Hz are logged and written out: what logging keeps, its peak, and the peak of :func:`write_outputs`."""
    stamps = 1_000_000_000 + np.arange(count, dtype=np.int64) * 5_000_000
    values = np.sin(stamps[:, None] / 1e9 * np.array([1.0, 0.3])).astype(np.float32)
    recorded_rows = np.zeros(count // 4, dtype=RECORDED_DTYPE)
    recorded_rows["stamp_ns"] = 1_000_000_000 + np.arange(count // 4) * 20_000_000
    recorded_rows["twist"][:, 0] = np.cos(recorded_rows["stamp_ns"] / 1e9)
    tmp_path.mkdir()
    tracemalloc.start()
    try:
        published, recorded = PublishedLog(2, tmp_path), RecordedLog(tmp_path)
        for begin in range(0, count, 4096):  # the loop's batches
            published.add_batch(stamps[begin : begin + 4096], stamps[begin : begin + 4096], values[begin : begin + 4096])
            recorded.spool.append(recorded_rows[begin // 4 : (begin + 4096) // 4])
        for index in range(1000):  # and one by one
            published.add(Command(int(stamps[-1]) + index + 1, (0.0,) * 6, values[index]), 0)
        logged, logging_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        metrics, _ = write_outputs(tmp_path, published, recorded, _twists, ["vx", "yaw_rate"], AXES, 0.5, None)
        _, writing_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert metrics is not None and metrics.paired == count + 1000
    published.close()
    recorded.close()
    return logged, logging_peak, writing_peak


def test_memory_of_the_outputs_does_not_grow_with_the_commands(tmp_path: Path) -> None:
    """Four times the commands (60 000 -> 240 000, whose arrays alone would be ~19 MB): the same memory."""
    small = _traced_peaks(tmp_path / "small", 60_000)
    large = _traced_peaks(tmp_path / "large", 240_000)
    for name, a, b in zip(("kept by logging", "logging's peak", "write_outputs' peak"), small, large):
        assert b < a * 1.1 + 0.25 * MB, f"{name}: {a / MB:.2f} MB for 60 000 commands, {b / MB:.2f} MB for 240 000"
    assert large[2] < 8 * MB
