"""``lnn-ros train`` and ``lnn-ros example`` through the real CLI entry point; no torch at CLI import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lnn_ros.bundle import load_bundle
from lnn_ros.cli import main
from lnn_ros.training.checkpoint import load_checkpoint
from lnn_ros.training.data import TimedSequence
from lnn_ros.training.loaders import save_npz_sequences


def dataset(folder: Path, count: int = 12) -> Path:
    generator = np.random.default_rng(0)
    sequences = []
    for _ in range(count):
        x = generator.standard_normal((30, 2)).astype(np.float32) * 4.0 + 1.0
        dt_s = generator.uniform(0.01, 0.2, 30).astype(np.float32)
        sequences.append(TimedSequence(x, dt_s, np.tanh(x[:, :1] - x[:, 1:])))
    return save_npz_sequences(folder / "train.npz", sequences)


def test_cli_modules_do_not_import_torch() -> None:
    code = (
        "import sys, lnn_ros.cli; lnn_ros.cli.build_parser(); "
        "import lnn_ros.training, lnn_ros.onnx_export; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_writes_a_loadable_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = dataset(tmp_path)
    out = tmp_path / "ckpt"
    argv = ["train", str(data), "--out", str(out), "--cell", "cfc", "--units", "6", "--epochs", "2"]
    argv += ["--window-steps", "16", "--tbptt-steps", "8", "--no-progress", "--seed", "3"]
    assert main(argv) == 0
    assert "wrote checkpoint" in capsys.readouterr().out
    checkpoint = load_checkpoint(out)
    assert checkpoint.cell.input_size == 2 and checkpoint.cell.output_size == 1
    assert checkpoint.stats is not None and abs(checkpoint.stats.std[0] - 4.0) < 1.0
    assert checkpoint.metadata["train_result"]["epochs_run"] == 2
    assert checkpoint.metadata["train_config"]["seed"] == 3


def test_train_with_cell_config_overrides(tmp_path: Path) -> None:
    data = dataset(tmp_path, count=4)
    (tmp_path / "cell.yaml").write_text("ode_unfolds: 2\n")
    argv = ["train", str(data), "--out", str(tmp_path / "ckpt"), "--cell", "ltc", "--units", "6", "--epochs", "1"]
    argv += ["--cell-config", str(tmp_path / "cell.yaml"), "--window-steps", "8", "--tbptt-steps", "8", "--no-progress"]
    assert main(argv) == 0
    assert load_checkpoint(tmp_path / "ckpt").cell.config()["ode_unfolds"] == 2


def test_train_reports_bad_data_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert main(["train", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "ckpt"), "--no-progress"]) == 1
    assert "lnn-ros train: error:" in capsys.readouterr().err


def test_example_command_trains_exports_and_compares(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sine_cfc"
    assert main(["example", "--out", str(out), "--epochs", "2", "--units", "8", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "held-out RMSE" in printed and "engine vs torch" in printed
    manifest = load_bundle(out).manifest
    assert manifest.model.kind == "cfc" and [f.source for f in manifest.features] == ["vector"]
    assert (out / "sine_example.png").read_bytes()[:4] == b"\x89PNG"
    assert load_checkpoint(out / "checkpoint").stats is not None
    diff = float(printed.split("max abs diff ")[1].split()[0])
    assert diff <= 1e-5


def test_sine_example_learns_and_the_engine_agrees(tmp_path: Path) -> None:
    """A shortened run of the shipped recipe already fits cos(t) well (the full one reaches ~0.01)."""
    from lnn_ros_examples.sine import SineExampleConfig, run_sine_example

    config = SineExampleConfig(out_dir=tmp_path / "sine", epochs=30, train_sequences=32, progress=False)
    result = run_sine_example(config)
    assert result.test_rmse_torch < 0.1  # predicting 0 gives 0.707
    assert abs(result.test_rmse_engine - result.test_rmse_torch) < 1e-5
    assert result.engine_vs_torch_max_abs <= 1e-5
    assert result.plot_path.is_file() and result.checkpoint_dir == tmp_path / "sine" / "checkpoint"


def test_every_training_kind_has_a_default_config_the_registry_builds() -> None:
    from lnn_ros.cells import CELL_KINDS as REGISTRY_KINDS
    from lnn_ros.cells import build_cell
    from lnn_ros.training.models import CELL_KINDS, default_cell_config

    assert set(CELL_KINDS) == set(REGISTRY_KINDS)
    for kind in CELL_KINDS:
        cell = build_cell(default_cell_config(kind, 22, 4, units=32))
        assert (cell.kind, cell.input_size, cell.output_size) == (kind, 22, 4)
    stack = build_cell(default_cell_config("stack_mlp", 22, 4, units=32)).config()
    assert (stack["stack_features"], stack["hidden_units"]) == (16, 32)
    assert build_cell(default_cell_config("stack_mlp", 2, 1)).config()["stack_features"] == 2


@pytest.mark.parametrize("kind", ["gru", "stack_mlp"])
def test_train_baseline_kinds_from_the_cli(tmp_path: Path, kind: str) -> None:
    data = dataset(tmp_path, count=4)
    argv = ["train", str(data), "--out", str(tmp_path / "ckpt"), "--cell", kind, "--units", "6", "--epochs", "1"]
    argv += ["--window-steps", "8", "--tbptt-steps", "8", "--no-progress"]
    assert main(argv) == 0
    assert load_checkpoint(tmp_path / "ckpt").cell.kind == kind
