"""Plotting, the CLI entry points, evaluation summaries, and the torch-free import."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from lnn_ros.sim.cli import register
from lnn_ros.sim.evaluate import evaluate, format_stats
from lnn_ros.sim.expert.expert import fly_expert
from lnn_ros.sim.plot import plot_episode
from lnn_ros.sim.world.config import SimConfig

REPO = Path(__file__).resolve().parent.parent


def test_importing_the_simulator_loads_neither_torch_nor_matplotlib() -> None:
    code = "import sys, lnn_ros.sim; print(sorted(m for m in ('torch', 'matplotlib', 'rclpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_plot_episode_writes_a_png(tmp_path: Path) -> None:
    result = fly_expert(SimConfig(duration_s=1.0), "nominal", 0)
    path = plot_episode(result, tmp_path / "sub" / "episode.png", success_radius_m=1.0)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_evaluate_counts_outcomes_per_variant() -> None:
    never = lambda sim: (lambda event: None)  # noqa: E731 - a factory of a controller that never commands
    stats = evaluate(never, ["nominal", "wind"], seeds=[0, 1], config=SimConfig(duration_s=0.5))
    assert [(s.variant.value, s.episodes, s.reached) for s in stats] == [("nominal", 2, 0), ("wind", 2, 0)]
    assert stats[0].success_rate == 0.0
    assert "nominal" in format_stats(stats)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lnn-ros")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


def test_cli_demos_and_expert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("sim", "demos", "--out", str(tmp_path / "d"), "--episodes", "1", "--duration", "0.5")
    assert args.func(args) == 0
    assert len(list((tmp_path / "d").glob("*.npz"))) == 1
    args = _parse("sim", "expert", "--seeds", "1", "--duration", "0.5", "--variants", "nominal,jitter",
                  "--plot-dir", str(tmp_path / "plots"))  # fmt: skip
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "jitter" in out and "reached" in out
    assert len(list((tmp_path / "plots").glob("*.png"))) == 2


def test_cli_rejects_an_unknown_variant_with_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("sim", "expert", "--variants", "fog", "--seeds", "1")
    assert args.func(args) == 1
    assert "Unknown scenario variant 'fog'" in capsys.readouterr().out
