"""``lnn-ros export``: a checkpoint and a spec YAML become a bundle with the checkpoint's normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lnn_ros.bundle import load_bundle
from lnn_ros.cells import build_cell
from lnn_ros.cli import main
from lnn_ros.training.checkpoint import save_checkpoint
from lnn_ros.training.data import FeatureStats

SPEC = {
    "name": "imu_vz",
    "description": "test export",
    "features": [
        {"name": "gyro_z", "source": "imu", "field": "angular_velocity.z", "unit": "rad/s"},
        {"name": "target_z", "source": "vector", "index": 0, "unit": "m"},
    ],
    "outputs": [{"name": "vz", "unit": "m/s", "min": -1.0, "max": 1.0, "twist_field": "linear.z"}],
    "dt": {"min_s": 0.001, "max_s": 0.1, "max_gap_s": 0.5},
    "window_steps": 4,
}


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    cell = build_cell({"kind": "cfc", "input_size": 2, "hidden_size": 6, "backbone_units": 8, "proj_size": 1})
    return save_checkpoint(tmp_path / "ckpt", cell, stats=FeatureStats((0.1, 2.0), (0.5, 3.0)))


def write_spec(path: Path, **changes: object) -> Path:
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return path


def test_export_uses_the_checkpoint_normalisation(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bundle"
    assert main(["export", str(checkpoint), "--spec", str(write_spec(tmp_path / "spec.yaml")), "--out", str(out)]) == 0
    assert "parity" in capsys.readouterr().out
    manifest = load_bundle(out).manifest
    assert manifest.name == "imu_vz" and manifest.graphs["window"].steps == 4
    assert [(f.mean, f.std) for f in manifest.features] == [(0.1, 0.5), (2.0, 3.0)]
    assert manifest.outputs[0].twist_field == "linear.z"


def test_export_without_window(tmp_path: Path, checkpoint: Path) -> None:
    argv = ["export", str(checkpoint), "--spec", str(write_spec(tmp_path / "s.yaml")), "--out", str(tmp_path / "b")]
    assert main([*argv, "--no-window", "--name", "renamed"]) == 0
    manifest = load_bundle(tmp_path / "b").manifest
    assert sorted(manifest.graphs) == ["step"] and manifest.name == "renamed"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"features": [{**SPEC["features"][0], "mean": 1.0}, SPEC["features"][1]]}, "sets mean/std, but the checkpoint holds"),
        ({"features": SPEC["features"][:1]}, "lists 1 features but the checkpoint's model takes 2"),
        ({"outputs": [{"name": "vz", "unit": "m/s", "min": 1.0, "max": -1.0}]}, "has min 1.0 above max -1.0"),
        ({"dt": {"min_s": 0.1, "max_s": 0.01, "max_gap_s": 0.5}}, "min_s <= max_s <= max_gap_s"),
        ({"window_steps": 0}, "window_steps must be an integer >= 1 or null, got 0"),
    ],
)
def test_bad_specs_exit_1_with_the_reason(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, object], message: str
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", **changes)
    assert main(["export", str(checkpoint), "--spec", str(spec), "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "lnn-ros export: error:" in err and message in err
    assert not (tmp_path / "b" / "manifest.yaml").exists()
