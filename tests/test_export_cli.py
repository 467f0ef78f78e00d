"""``lnn-ros export``: a checkpoint and a spec YAML become a bundle with the checkpoint's normalisation; a
checkpoint that knows its inputs and outputs needs no spec (the spec overrides it); bad specs are one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lnn_ros.bundle import load_bundle
from lnn_ros.cells import build_cell
from lnn_ros.cli import main
from lnn_ros.onnx_export.spec import build_spec, check_spec, merge_specs
from lnn_ros.training.checkpoint import load_checkpoint, save_checkpoint
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


CAMERA = {"width": 32, "height": 24, "encoding": "rgb8", "embedding_size": 4, "mean": [0.5] * 3, "std": [0.2] * 3}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"features": [{**SPEC["features"][0], "mean": 1.0}, SPEC["features"][1]]}, "sets mean/std, but the checkpoint holds"),
        ({"features": SPEC["features"][:1]}, "lists 1 features but the checkpoint's model takes 2"),
        ({"outputs": [{"name": "vz", "unit": "m/s", "min": 1.0, "max": -1.0}]}, "has min 1.0 above max -1.0"),
        ({"dt": {"min_s": 0.1, "max_s": 0.01, "max_gap_s": 0.5}}, "min_s <= max_s <= max_gap_s"),
        ({"window_steps": 0}, "key 'window_steps' must be an integer >= 1, or null for no window graph, got 0"),
        ({"outptus": []}, "key 'outptus' is not an export spec key; did you mean 'outputs'?"),
        ({"window": 4}, "key 'window' is not an export spec key; did you mean 'window_steps'?"),
        ({"features": "gyro_z"}, "key 'features' must be a list of mappings, one per model input, in order, got 'gyro_z'"),
        ({"outputs": [["vz"]]}, "key 'outputs' must be a list of mappings, one per model output"),
        ({"name": 3}, "key 'name' must be a non-empty string"),
        ({"dt": [0.01, 0.1]}, "key 'dt' must be a mapping with min_s, max_s and max_gap_s"),
        ({"dt": {"min_s": 0.001, "max_s": 0.1}}, "field 'dt.max_gap_s' is missing"),
        ({"outputs": [{**SPEC["outputs"][0], "maxx": 2.0}]}, "field 'outputs[0].maxx' is not a known field; did you mean 'max'?"),
        ({"outputs": [{**SPEC["outputs"][0], "min": "slow"}]}, "field 'outputs[0].min' must be a finite number, got 'slow'"),
        ({"features": [{**SPEC["features"][0], "field": "gyro.z"}, SPEC["features"][1]]}, "field 'features[0].field' must be one of"),
        ({"outputs": SPEC["outputs"] * 2}, "lists 2 outputs but the checkpoint's model gives 1"),
        ({"camera": {"width": 32}}, "field 'camera.encoding' is missing"),
        ({"camera": CAMERA}, "key 'camera' describes an image encoder, but checkpoint"),
        ({"camera": [32, 24]}, "key 'camera' must be a mapping: the manifest's camera section"),
    ],
)
def test_bad_specs_exit_1_with_the_reason(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, object], message: str
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", **changes)
    assert main(["export", str(checkpoint), "--spec", str(spec), "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "lnn-ros export: error:" in err and message in err and str(spec) in err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert not (tmp_path / "b" / "manifest.yaml").exists()


def test_a_spec_missing_keys_says_which(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({k: v for k, v in SPEC.items() if k not in ("dt", "outputs")}))
    assert main(["export", str(checkpoint), "--spec", str(spec), "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "The export spec lacks 'outputs', 'dt': add the missing keys to" in err and str(spec) in err


def test_without_a_spec_a_checkpoint_from_generic_data_is_refused_clearly(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_checkpoint(checkpoint).export is None  # as every checkpoint written before checkpoints knew
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "The export spec lacks 'name', 'features', 'outputs', 'dt'" in err
    assert "does not say what its inputs and outputs are" in err and "Pass --spec SPEC.yaml" in err
    assert "docs/export-spec.md" in err


def test_an_old_checkpoint_sidecar_still_loads(tmp_path: Path, checkpoint: Path) -> None:
    sidecar = checkpoint / "checkpoint.yaml"
    data = yaml.safe_load(sidecar.read_text())
    assert "export" not in data and data["version"] == 1
    assert load_checkpoint(checkpoint).cell.input_size == 2


def test_the_spec_overrides_what_the_checkpoint_knows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    cell = build_cell({"kind": "cfc", "input_size": 2, "hidden_size": 6, "backbone_units": 8, "proj_size": 1})
    known = {k: v for k, v in SPEC.items() if k != "window_steps"}
    path = save_checkpoint(tmp_path / "ckpt", cell, stats=FeatureStats((0.1, 2.0), (0.5, 3.0)), export=known)
    assert main(["export", str(path), "--out", str(tmp_path / "plain"), "--no-window"]) == 0
    plain = load_bundle(tmp_path / "plain").manifest
    assert plain.name == "imu_vz" and plain.outputs[0].max == 1.0 and plain.dt.max_gap_s == 0.5

    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({
        "outputs": [{"name": "climb", "unit": "m/s", "min": -0.5, "max": 0.5, "twist_field": "linear.z"}],
        "dt": {"max_gap_s": 2.0},  # dt is merged field by field
        "window_steps": 3,
    }))
    assert main(["export", str(path), "--spec", str(override), "--out", str(tmp_path / "b")]) == 0, capsys.readouterr().err
    manifest = load_bundle(tmp_path / "b").manifest
    assert manifest.name == "imu_vz" and manifest.graphs["window"].steps == 3
    assert (manifest.outputs[0].name, manifest.outputs[0].max) == ("climb", 0.5)
    assert (manifest.dt.min_s, manifest.dt.max_s, manifest.dt.max_gap_s) == (0.001, 0.1, 2.0)
    assert [f.field for f in manifest.features] == ["angular_velocity.z", None]

    # A bad value the checkpoint holds is named as the checkpoint's.
    bad = save_checkpoint(tmp_path / "bad", cell, stats=FeatureStats((0.1, 2.0), (0.5, 3.0)), export={**known, "dt": {"min_s": 1}})
    assert main(["export", str(bad), "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert f"{bad / 'checkpoint.yaml'}: field 'dt.max_s' is missing" in err


def test_the_documented_example_spec_is_valid() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "export-spec.md").read_text()
    example = text.split("```yaml\n")[1].split("```")[0]
    raw = check_spec(yaml.safe_load(example), "docs/export-spec.md")
    spec = build_spec(*merge_specs([("docs", raw)]), input_size=6, output_size=4, mean=(0.0,) * 6, std=(1.0,) * 6)
    assert spec.name == "hover_cfc" and [o.twist_field for o in spec.outputs] == ["linear.x", "linear.y", "linear.z", "angular.z"]
