"""Checkpoints round-trip exactly (safetensors + YAML) and nothing is ever unpickled."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest
import torch
import yaml

from lnn_ros.cells import AutoNCP, RecurrentCell, build_cell
from lnn_ros.training.checkpoint import SIDECAR_NAME, WEIGHTS_NAME, load_checkpoint, save_checkpoint
from lnn_ros.training.data import FeatureStats
from lnn_ros.training.errors import CheckpointError

CONFIGS = [
    {"kind": "cfc", "input_size": 3, "hidden_size": 6, "backbone_units": 8, "proj_size": 2},
    {"kind": "wired_cfc", "input_size": 3, "wiring": AutoNCP(8, 2).to_config()},
    {"kind": "ltc", "input_size": 3, "wiring": AutoNCP(8, 2).to_config(), "implicit_param_constraints": False},
    {"kind": "lstm", "input_size": 3, "units": 4, "output_size": 2},
    {"kind": "gru", "input_size": 3, "units": 4, "output_size": 2},
    {"kind": "mlp", "input_size": 3, "output_size": 2},
    {"kind": "stack_mlp", "input_size": 3, "output_size": 2, "stack_features": 2},
]
STATS = FeatureStats(mean=(0.5, -1.0, 2.0), std=(1.5, 0.25, 3.0))


class Boom:
    """Unpickling this creates the marker file: proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def saved(folder: Path, config: dict[str, object], seed: int = 0) -> RecurrentCell:
    torch.manual_seed(seed)
    cell = build_cell(config)
    with torch.no_grad():
        for parameter in cell.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)  # not the init values
    save_checkpoint(folder, cell, stats=STATS, metadata={"note": "test", "losses": [0.5, 0.25]})
    return cell


@pytest.mark.parametrize("config", CONFIGS, ids=[c["kind"] for c in CONFIGS])
def test_round_trip_is_exact(tmp_path: Path, config: dict[str, object]) -> None:
    cell = saved(tmp_path / "ckpt", config)
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.cell.config() == cell.config()
    original, restored = cell.state_dict(), loaded.cell.state_dict()
    assert original.keys() == restored.keys()
    for name, value in original.items():
        assert restored[name].dtype == value.dtype and torch.equal(restored[name], value), name
    assert loaded.stats == STATS
    assert loaded.metadata == {"note": "test", "losses": [0.5, 0.25]}
    x, hidden, dt = torch.randn(2, 3), torch.randn(2, cell.state_size), torch.rand(2, 1)
    with torch.no_grad():
        for a, b in zip(cell.eval()(x, hidden, dt), loaded.cell(x, hidden, dt)):
            assert torch.equal(a, b)


def test_files_are_safetensors_and_plain_yaml(tmp_path: Path) -> None:
    saved(tmp_path, CONFIGS[0])
    sidecar = yaml.safe_load((tmp_path / SIDECAR_NAME).read_text())
    assert sidecar["format"] == "lnn_ros-checkpoint" and sidecar["normalisation"] == STATS.to_dict()
    assert sidecar["weights"]["file"] == WEIGHTS_NAME
    assert (tmp_path / WEIGHTS_NAME).read_bytes()[8:9] == b"{"  # safetensors: u64 header length, JSON header


def test_pickle_checkpoints_are_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    folder = tmp_path / "legacy"
    folder.mkdir()
    torch.save({"weights": Boom(marker)}, folder / "model.pt")  # a zip archive holding a pickle
    (folder / "raw.pkl").write_bytes(pickle.dumps(Boom(marker)))
    for target in (folder, folder / "model.pt", folder / "raw.pkl"):
        with pytest.raises(CheckpointError, match="pickle/torch.save file; lnn_ros never unpickles"):
            load_checkpoint(target)
    assert not marker.exists()


def test_pickle_in_place_of_the_weights_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    saved(tmp_path / "ckpt", CONFIGS[0])
    torch.save({"weights": Boom(marker)}, tmp_path / "ckpt" / WEIGHTS_NAME)
    with pytest.raises(CheckpointError, match="pickle/torch.save file"):
        load_checkpoint(tmp_path / "ckpt")
    assert not marker.exists()


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    saved(tmp_path, CONFIGS[0])
    data = bytearray((tmp_path / WEIGHTS_NAME).read_bytes())
    data[-1] ^= 0x01
    (tmp_path / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="the weights were changed after saving"):
        load_checkpoint(tmp_path)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path: Path) -> None:
    saved(tmp_path, CONFIGS[0])
    sidecar = yaml.safe_load((tmp_path / SIDECAR_NAME).read_text())
    sidecar["cell"]["hidden_size"] = 7
    (tmp_path / SIDECAR_NAME).write_text(yaml.safe_dump(sidecar))
    with pytest.raises(CheckpointError, match="cannot rebuild the model"):
        load_checkpoint(tmp_path)


def test_missing_folder_and_mismatched_stats(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="cover 2 features but the cell takes 3"):
        save_checkpoint(tmp_path, build_cell(CONFIGS[0]), stats=FeatureStats((0.0, 0.0), (1.0, 1.0)))


def test_safetensors_header_that_looks_like_a_pickle_opcode_loads(tmp_path: Path) -> None:
    """A safetensors header length whose low byte is 0x80 (the pickle PROTO opcode) is still safetensors."""
    from safetensors.torch import save_file

    cell = saved(tmp_path, CONFIGS[0])
    weights = {name: value.contiguous() for name, value in cell.state_dict().items()}
    for pad in range(512):
        save_file(weights, str(tmp_path / WEIGHTS_NAME), metadata={"format": "lnn_ros-checkpoint", "pad": "x" * pad})
        if (tmp_path / WEIGHTS_NAME).read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length with low byte 0x80")
    sidecar = yaml.safe_load((tmp_path / SIDECAR_NAME).read_text())
    sidecar["weights"]["sha256"] = hashlib.sha256((tmp_path / WEIGHTS_NAME).read_bytes()).hexdigest()
    (tmp_path / SIDECAR_NAME).write_text(yaml.safe_dump(sidecar))
    loaded = load_checkpoint(tmp_path)
    assert all(torch.equal(loaded.cell.state_dict()[k], v) for k, v in weights.items())
