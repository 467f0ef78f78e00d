"""Rolling percentiles and rates against direct numpy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lnn_ros.runtime import RateMeter, RollingWindow

MS = 1_000_000


def test_percentiles_cover_only_the_last_samples() -> None:
    window = RollingWindow(100)
    assert all(math.isnan(v) for v in window.summary()[1:]) and window.summary().samples == 0
    samples = np.random.default_rng(0).exponential(1e-3, 250)
    for value in samples:
        window.add(float(value))
    summary = window.summary()
    last = samples[-100:]
    assert summary.samples == 250
    assert summary.p50 == pytest.approx(np.percentile(last, 50))
    assert summary.p99 == pytest.approx(np.percentile(last, 99))
    assert summary.max == pytest.approx(last.max())


def test_rate_of_a_steady_stream_and_of_a_stopped_one() -> None:
    meter = RateMeter(1000)
    assert meter.rate_hz(0, 1.0) == 0.0
    t = 0
    for _ in range(500):  # 200 Hz for 2.5 s
        t += 5 * MS
        meter.tick(t)
    assert meter.rate_hz(t, 1.0) == pytest.approx(200.0, rel=0.01)
    assert meter.rate_hz(t + 500 * MS, 1.0) == pytest.approx(100.0, rel=0.02)  # half the window silent
    assert meter.rate_hz(t + 1_001 * MS, 1.0) == 0.0


def test_rate_when_the_ring_is_shorter_than_the_window() -> None:
    meter = RateMeter(10)
    t = 0
    for _ in range(50):  # 1 kHz
        t += 1 * MS
        meter.tick(t)
    assert meter.rate_hz(t, 1.0) == pytest.approx(1000.0, rel=0.15)


def test_invalid_capacity() -> None:
    with pytest.raises(ValueError, match="got 0"):
        RollingWindow(0)
    with pytest.raises(ValueError, match="got 1"):
        RateMeter(1)


def test_arrivals_after_now_are_not_recent() -> None:
    """After the clock stepped back, arrivals stamped in the future must not look like a live stream."""
    for capacity in (10, 1000):
        meter = RateMeter(capacity)
        t = 100_000 * MS
        for _ in range(500):  # 200 Hz
            t += 5 * MS
            meter.tick(t)
        back = t - 60_000 * MS  # the clock stepped back a minute; the stream is silent since
        assert meter.rate_hz(back, 1.0) == 0.0
        for _ in range(100):  # it resumes at 100 Hz on the new clock
            back += 10 * MS
            meter.tick(back)
        assert meter.rate_hz(back, 1.0) == pytest.approx(100.0, rel=0.15)  # the short ring: 10 arrivals over 90 ms


def test_numpy_ma_is_imported_with_the_stamp_gates() -> None:
    """np.median (the gates' rate learning) imports numpy.ma on first use (~7 ms): it must happen
    at start-up, not in a message callback mid-flight (np.percentile's import in the node's first
    diagnostics report was the demo's worst latency before this)."""
    import subprocess
    import sys

    code = "import sys, lnn_ros.runtime.stamp_gate; print('numpy.ma' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "True"


@pytest.mark.parametrize("count", [1, 2, 3, 7, 100, 101, 999, 1000, 2500])
def test_summary_equals_numpy_percentile_exactly(count: int) -> None:
    window = RollingWindow(1000)
    for value in np.random.default_rng(count).normal(size=count):
        window.add(float(value))
    summary, values = window.summary(), window.values()
    assert (summary.p50, summary.p99, summary.max) == (np.percentile(values, 50), np.percentile(values, 99), values.max())


@pytest.mark.parametrize(("before", "added"), [(0, 5), (7, 20), (3, 45), (25, 1)])
def test_extend_stores_what_one_call_per_value_stores(before: int, added: int) -> None:
    rng = np.random.default_rng(before + added)
    first, values = rng.normal(size=before), rng.normal(size=added)
    one_by_one, at_once = RollingWindow(16), RollingWindow(16)
    for value in (*first, *values):
        one_by_one.add(float(value))
    for value in first:
        at_once.add(float(value))
    at_once.extend(values)
    assert at_once.count == one_by_one.count
    np.testing.assert_array_equal(at_once.values(), one_by_one.values())
    ticks = np.cumsum(rng.integers(1, 10**7, size=before + added))
    meter_one, meter_all = RateMeter(16), RateMeter(16)
    for t in ticks:
        meter_one.tick(int(t))
    for t in ticks[:before]:
        meter_all.tick(int(t))
    meter_all.extend(ticks[before:])
    now = int(ticks[-1])
    assert meter_all.count == meter_one.count and meter_all.rate_hz(now, 0.05) == meter_one.rate_hz(now, 0.05)
