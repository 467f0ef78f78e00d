"""The scaling benchmarks (benchmarks/*_scaling.py) on tiny sizes: the reports' structure, never timings."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from lnn_ros_benchmarks import camera_scaling, engine_scaling, replay_scaling

REPO = Path(__file__).resolve().parent.parent
DRONE_CFC = REPO / "models" / "drone_cfc"


def _check_spread(figure: dict[str, Any], rounds: int) -> None:
    assert set(figure) == {"median", "min", "max", "rounds"}
    assert len(figure["rounds"]) == rounds
    assert all(math.isfinite(v) and v > 0 for v in figure["rounds"])
    assert figure["min"] <= figure["median"] <= figure["max"]


def test_engine_scaling_reports_every_model_and_contender(tmp_path: Path) -> None:
    report = engine_scaling.run((4, 8), (2,), steps=20, warmup=5, repeats=2, ncps=False, workdir=tmp_path)
    assert report["sweeps"] == {
        "cfc units": ["cfc units=4 inputs=8", "cfc units=8 inputs=8"],
        "cfc inputs": ["cfc units=32 inputs=2"],
        "ltc units": ["ltc units=4 inputs=8", "ltc units=8 inputs=8"],
        "ltc inputs": ["ltc units=32 inputs=2"],
    }
    assert len(report["models"]) == 6
    for row in report["models"].values():
        for name in ("engine", "ort_run", "ort_bound"):
            _check_spread(row[name]["median_us"], 2)
            _check_spread(row[name]["p99_us"], 2)
        _check_spread(row["engine_over_ort_bound"], 2)
        assert "ncps_eager" not in row
    for sweep, keys in report["sweeps"].items():
        growth = report["engine_growth_over_smallest"][sweep]
        assert list(growth) == keys
        assert growth[keys[0]]["rounds"] == [1.0, 1.0]  # each round's smallest size over itself
    assert "| 8 |" in engine_scaling.format_table(report)
    assert engine_scaling.plot(report, tmp_path / "engine.png").stat().st_size > 0
    assert not list(tmp_path.glob("lnn_engine_scaling_*")), "the exported bundles are removed"


def test_long_flight_is_write_flight_streamed(tmp_path: Path) -> None:
    from rosbags.rosbag2 import Reader

    from lnn_ros_tools.synthetic.flight import write_flight

    def messages(bag: Path) -> list[tuple[str, int, bytes]]:
        with Reader(bag) as reader:
            return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]

    streamed = replay_scaling.write_long_flight(tmp_path / "streamed", 0.7, 16, 12)
    listed = write_flight(tmp_path / "listed", seconds=0.7, width=16, height=12)
    assert messages(streamed) == messages(listed)


def test_replay_scaling_measures_each_length_in_its_own_process(tmp_path: Path) -> None:
    report = replay_scaling.run((0.02, 0.05), 1, DRONE_CFC, tmp_path)
    assert list(report["lengths"]) == ["0.02", "0.05"]
    for row in report["lengths"].values():
        assert row["messages"] > 0 and row["commands"] > 0
        for key in ("loop_x_real_time", "total_x_real_time", "peak_rss_mb", "rss_after_loop_mb", "rss_after_imports_mb"):
            _check_spread(row[key], 1)
        (run,) = row["runs"]
        # os.wait4's ru_maxrss also counts this process at the fork: an upper bound of the child's own peak
        assert run["child_ru_maxrss_mb"] >= run["peak_rss_mb"] - 1.0
        assert {"before_write_outputs", "after_plot_commands", "after_write_outputs"} <= set(run["probes"])
    assert report["lengths"]["0.05"]["messages"] > report["lengths"]["0.02"]["messages"]
    assert set(report["growth"]) >= {"peak_rss_mb_per_bag_minute", "bytes_per_command_after_loop"}
    attribution = report["attribution"]
    assert attribution["lines"] and all(line["line"].startswith("lnn_ros/") for line in attribution["lines"])
    assert 0 < attribution["traced_mb"]["lnn_ros_mb"] <= attribution["traced_mb"]["total_mb"]
    assert "0.02 min" in replay_scaling.format_table(report)
    assert replay_scaling.plot(report, tmp_path / "replay.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flight_0.02min", "flight_0.05min", "replay.png"]


def test_replay_child_leaves_the_replay_module_as_it_was(tmp_path: Path) -> None:
    import lnn_ros.bag.plot
    import lnn_ros.bag.replay as replay

    before = (replay.write_outputs, lnn_ros.bag.plot.plot_commands)
    bag = replay_scaling.write_long_flight(tmp_path / "bag", 0.5, 64, 48)
    report = replay_scaling.replay_child(bag, DRONE_CFC, tmp_path / "out")
    assert report["commands"] > 0 and report["peak_rss_mb"] >= report["rss_after_imports_mb"]
    assert (replay.write_outputs, lnn_ros.bag.plot.plot_commands) == before


def test_camera_scaling_reports_every_size_format_and_stage(tmp_path: Path) -> None:
    sizes = ((64, 48), (100, 60))
    report = camera_scaling.run(sizes, ("rgb8", "jpeg"), frames=3, warmup=1, repeats=2, model=DRONE_CFC)
    assert list(report["frames"]) == ["64x48 rgb8", "100x60 rgb8", "64x48 jpeg", "100x60 jpeg"]
    for key, row in report["frames"].items():
        assert row["bytes"] > 0 and row["pixels"] == row["width"] * row["height"]
        for stage in camera_scaling.STAGES:
            _check_spread(row[f"{stage}_ms"]["p50"], 2)
            _check_spread(row[f"{stage}_ms"]["p99"], 2)
        _check_spread(report["on_image_over_smallest"][key], 2)
    assert report["frames"]["64x48 rgb8"]["bytes"] == 64 * 48 * 3
    assert "100x60 | jpeg" in camera_scaling.format_table(report)
    assert camera_scaling.plot(report, tmp_path / "camera.png").stat().st_size > 0


def test_the_recorded_command_names_only_the_options_changed() -> None:
    import argparse

    from lnn_ros_benchmarks.report import REPO, command_line, shown_path

    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths-min", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-ncps", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("a.json"))
    assert command_line("x", parser, parser.parse_args(["--out", "b.json"])) == "python -m lnn_ros_benchmarks.x"
    args = parser.parse_args(["--lengths-min", "1", "2.5", "--no-ncps", "--repeats", "3"])
    assert command_line("x", parser, args) == "python -m lnn_ros_benchmarks.x --lengths-min 1 2.5 --no-ncps"
    assert shown_path(REPO / "models" / "drone_cfc") == "models/drone_cfc" and shown_path(Path("/elsewhere")) == "/elsewhere"


def test_a_scaling_benchmark_writes_its_report_figure_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """engine_scaling's main end to end (report.publish): the JSON with its header first, the figure beside it, the table."""
    out = tmp_path / "engine_size.json"
    argv = ["--units", "16", "--inputs", "4", "--steps", "20", "--repeats", "1", "--no-ncps", "--out", str(out)]
    assert engine_scaling.main(argv) == 0
    report = json.loads(out.read_text())
    assert list(report)[:4] == ["benchmark", "command", "machine", "wall_s"] and "models" in report
    assert report["command"] == "python -m lnn_ros_benchmarks.engine_scaling " + " ".join(argv[:-2])
    assert report["machine"]["versions"]["onnxruntime"] and report["wall_s"] > 0
    assert out.with_suffix(".png").stat().st_size > 0
    assert f"wrote {out}" in capsys.readouterr().out
