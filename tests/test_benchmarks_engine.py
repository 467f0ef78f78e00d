"""``lnn-ros bench`` end to end on tiny sizes: the report's structure (timings are never asserted)."""

from __future__ import annotations

import math
from pathlib import Path

from lnn_ros_benchmarks.engine import BenchConfig, _time_round, format_table, run_bench


def test_contenders_take_turns_within_a_round() -> None:
    calls: list[tuple[str, int]] = []
    contenders = {name: (lambda i, name=name: calls.append((name, i))) for name in ("a", "b")}
    timings = _time_round(contenders, steps=20, warmup=3, slices=4)  # type: ignore[arg-type]
    timed = calls[6:]  # after both warm-ups
    assert [name for name, _ in timed[:5]] == ["a"] * 5 and [name for name, _ in timed[5:10]] == ["b"] * 5
    assert [i for name, i in timed if name == "a"] == list(range(20))
    assert set(timings) == {"a", "b"} and all(math.isfinite(v) for pair in timings.values() for v in pair)


def test_bench_reports_every_contender_and_ratio(tmp_path: Path) -> None:
    result = run_bench(BenchConfig(steps=30, warmup=5, repeats=2), tmp_path)
    names = {t["name"] for t in result["timings_us"]}
    assert {"engine", "ort_run", "torch_eager", "ltc_engine", "ltc_torch_eager"} <= names
    for key in ("engine_over_ort_run", "torch_eager_over_engine", "ltc_engine_over_engine"):
        assert result["ratios"][key] > 0 and len(result["ratio_spread"][key]["rounds"]) == 2
    assert "ncps_eager_over_engine" in format_table(result) or result["ratios"]["ncps_eager_over_engine"] is None
