"""Checkpoints: a folder with ``weights.safetensors`` and a ``checkpoint.yaml`` sidecar.

A camera model also has ``encoder.safetensors``: its image encoder (:mod:`lnn_ros.training.camera`),
whose config and SHA-256 the sidecar's ``encoder`` section holds. The sidecar holds the cell config (rebuilt with :func:`lnn_ros.cells.build_cell`), the input
normalisation statistics, the SHA-256 of the weights file, what the model's inputs and outputs
are when training knew it (``export``: the export spec's keys, docs/export-spec.md; absent in
older checkpoints) and free-form metadata (training settings, losses, the data's source). Loading never unpickles: weights are read with safetensors, the sidecar
with ``yaml.safe_load``. A ``torch.save``/pickle file is refused with an explanation, because
unpickling a file can run arbitrary code.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import lnn_ros
from lnn_ros.cells import CellConfigError, RecurrentCell, build_cell
from lnn_ros.training.data import FeatureStats
from lnn_ros.training.errors import CheckpointError, DataError, TrainingError

if TYPE_CHECKING:
    from lnn_ros.training.camera import ImageEncoder

FORMAT = "lnn_ros-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_NAME = "weights.safetensors"
ENCODER_WEIGHTS_NAME = "encoder.safetensors"
SIDECAR_NAME = "checkpoint.yaml"
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: The checkpoint folder.
        cell: The rebuilt cell with its trained weights, in eval mode.
        stats: Input normalisation statistics (None if the inputs were not normalised).
        metadata: Free-form data stored with it (e.g. ``train_config``, ``train_result``).
        export: What the inputs and outputs are, in the export spec's keys (``features``,
            ``outputs``, ``dt``, ``camera``, ...), or None when training did not know (generic data).
        encoder: The image encoder in front of the cell (camera models), in eval mode, or None.
    """

    path: Path
    cell: RecurrentCell
    stats: FeatureStats | None
    metadata: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] | None = None
    encoder: torch.nn.Module | None = None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_safetensors(path: Path) -> bool:
    """A safetensors file: u64 little-endian header length N, then N bytes of JSON starting with '{'."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(9)
    return len(head) == 9 and 8 + int.from_bytes(head[:8], "little") <= size and head[8:9] == b"{"


def _looks_pickled(path: Path) -> bool:
    """torch.save writes a zip archive (``PK\\x03\\x04``) or, legacy, a raw pickle (``\\x80`` + protocol 2..5)."""
    with path.open("rb") as stream:
        head = stream.read(4)
    return head == b"PK\x03\x04" or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _refuse_pickle(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path} is a pickle/torch.save file; lnn_ros never unpickles checkpoints because unpickling can run "
        "arbitrary code. Load it yourself only if you trust it, then re-save it with "
        "lnn_ros.training.save_checkpoint (safetensors + checkpoint.yaml)."
    )


def save_checkpoint(
    path: str | Path,
    cell: RecurrentCell,
    *,
    stats: FeatureStats | None = None,
    metadata: dict[str, Any] | None = None,
    export: dict[str, Any] | None = None,
    encoder: ImageEncoder | None = None,
) -> Path:
    """Write ``cell`` (config + weights), ``stats``, ``export`` (spec-shaped, see :class:`Checkpoint`),
    ``metadata`` and a camera model's ``encoder`` into the folder ``path``.

    Raises:
        CheckpointError: The stats do not match the cell, or the config/metadata is not plain data.
    """
    folder = Path(path)
    if stats is not None and stats.size != cell.input_size:
        raise CheckpointError(f"The statistics cover {stats.size} features but the cell takes {cell.input_size}.")
    folder.mkdir(parents=True, exist_ok=True)
    weights = {name: value.detach().to("cpu").contiguous().clone() for name, value in cell.state_dict().items()}
    weights_path = folder / WEIGHTS_NAME
    staged_weights = folder / f".{WEIGHTS_NAME}.{os.getpid()}.tmp"
    save_file(weights, str(staged_weights), metadata={"format": FORMAT})
    encoder_section = None
    if encoder is not None:
        staged_encoder = folder / f".{ENCODER_WEIGHTS_NAME}.{os.getpid()}.tmp"
        tensors = {name: value.detach().to("cpu").contiguous().clone() for name, value in encoder.state_dict().items()}
        save_file(tensors, str(staged_encoder), metadata={"format": FORMAT})
        encoder_section = {"config": encoder.config(), "file": ENCODER_WEIGHTS_NAME, "sha256": _sha256(staged_encoder)}
        os.replace(staged_encoder, folder / ENCODER_WEIGHTS_NAME)  # before the sidecar that names it
    sidecar = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "cell": cell.config(),
        "normalisation": None if stats is None else stats.to_dict(),
        "weights": {"file": WEIGHTS_NAME, "sha256": _sha256(staged_weights)},
        "producer": {"lnn_ros": str(lnn_ros.__version__), "torch": str(torch.__version__)},
        **({} if encoder_section is None else {"encoder": encoder_section}),
        **({} if export is None else {"export": export}),
        "metadata": metadata or {},
    }
    try:
        text = yaml.safe_dump(sidecar, sort_keys=False)
    except yaml.YAMLError as exc:
        staged_weights.unlink(missing_ok=True)
        raise CheckpointError(f"Checkpoint config or metadata is not plain YAML data ({exc}).") from None
    staged_sidecar = folder / f".{SIDECAR_NAME}.{os.getpid()}.tmp"
    staged_sidecar.write_text(text)
    # Each file appears whole (rename within a folder is atomic); the sidecar, which holds the
    # weights' SHA-256, goes last, so a reader never takes a half-written pair for a checkpoint.
    os.replace(staged_weights, weights_path)
    os.replace(staged_sidecar, folder / SIDECAR_NAME)
    return folder


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a folder written by :func:`save_checkpoint` (weights checked against their SHA-256).

    Raises:
        CheckpointError: missing files, a pickle file, a hash mismatch, or weights that do not
            fit the cell config.
    """
    folder = Path(path)
    if folder.is_file():
        if not _is_safetensors(folder) and (_looks_pickled(folder) or folder.suffix.lower() in _PICKLE_SUFFIXES):
            raise _refuse_pickle(folder)
        raise CheckpointError(f"{folder} is a file; pass the checkpoint folder that holds {SIDECAR_NAME} and {WEIGHTS_NAME}.")
    if not folder.is_dir():
        raise CheckpointError(f"Checkpoint folder {str(folder)!r} does not exist.")
    sidecar_path = folder / SIDECAR_NAME
    if not sidecar_path.is_file():
        pickles = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in _PICKLE_SUFFIXES]
        if pickles:
            raise _refuse_pickle(pickles[0])
        raise CheckpointError(f"Checkpoint folder {str(folder)!r} has no {SIDECAR_NAME}; was it written by save_checkpoint?")
    try:
        sidecar = yaml.safe_load(sidecar_path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{sidecar_path}: is not valid YAML ({exc}).") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise CheckpointError(f"{sidecar_path}: is not an lnn_ros checkpoint (format {FORMAT!r} expected).")
    if sidecar.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{sidecar_path}: has version {sidecar.get('version')!r}; this lnn_ros reads {FORMAT_VERSION}.")
    weights_info = sidecar.get("weights") or {}
    weights_path = folder / str(weights_info.get("file", WEIGHTS_NAME))
    if not weights_path.is_file():
        raise CheckpointError(f"{sidecar_path}: weights file {weights_path.name!r} is missing.")
    if not _is_safetensors(weights_path):
        if _looks_pickled(weights_path):
            raise _refuse_pickle(weights_path)
        raise CheckpointError(f"{weights_path}: is not a safetensors file.")
    actual = _sha256(weights_path)
    if actual != weights_info.get("sha256"):
        raise CheckpointError(
            f"{weights_path}: SHA-256 is {actual} but {SIDECAR_NAME} says {weights_info.get('sha256')!r}; "
            "the weights were changed after saving."
        )
    try:
        cell = build_cell(sidecar.get("cell") or {})
        state = load_file(str(weights_path))
        cell.load_state_dict(state, strict=True)
        raw_stats = sidecar.get("normalisation")
        stats = None if raw_stats is None else FeatureStats.from_dict(raw_stats)
    except (CellConfigError, SafetensorError, RuntimeError, DataError) as exc:
        raise CheckpointError(f"{folder}: cannot rebuild the model ({exc}).") from None
    if stats is not None and stats.size != cell.input_size:
        raise CheckpointError(f"{sidecar_path}: normalisation covers {stats.size} features but the cell takes {cell.input_size}.")
    export = sidecar.get("export")
    if export is not None and not isinstance(export, dict):
        raise CheckpointError(f"{sidecar_path}: 'export' must be a mapping of export spec keys, got {export!r}.")
    cell.eval()
    encoder = None if sidecar.get("encoder") is None else _load_encoder(folder, sidecar_path, sidecar["encoder"])
    return Checkpoint(
        path=folder, cell=cell, stats=stats, metadata=dict(sidecar.get("metadata") or {}), export=export, encoder=encoder
    )


def _load_encoder(folder: Path, sidecar_path: Path, section: Any) -> ImageEncoder:
    from lnn_ros.training.camera import build_encoder

    if not isinstance(section, dict) or not isinstance(section.get("file"), str):
        raise CheckpointError(f"{sidecar_path}: 'encoder' must be a mapping with config, file and sha256, got {section!r}.")
    path = folder / section["file"]
    if not path.is_file() or not _is_safetensors(path):
        raise CheckpointError(f"{sidecar_path}: the encoder weights {path.name!r} are missing or not a safetensors file.")
    if _sha256(path) != section.get("sha256"):
        raise CheckpointError(f"{path}: SHA-256 differs from {SIDECAR_NAME}'s; the encoder weights were changed after saving.")
    try:
        encoder = build_encoder(section.get("config"))
        encoder.load_state_dict(load_file(str(path)), strict=True)
    except (TrainingError, SafetensorError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: cannot rebuild the image encoder ({exc}).") from None
    return encoder.eval()
