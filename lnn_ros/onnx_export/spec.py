"""The export spec: what a model's inputs and outputs are, for ``lnn-ros export``.

A checkpoint trained from bags carries its spec (``checkpoint.yaml``'s ``export`` section); a
spec file given with ``--spec`` overrides it key by key (``dt`` field by field) and is the only
source for checkpoints trained on generic data. The keys, their types and an example are in
docs/export-spec.md. Every problem is one :class:`ExportError` that names the file, the key and
the fix. Only yaml and the manifest types are imported (no torch): the CLI imports this module.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lnn_ros.bundle.manifest import CameraSpec, DtLimits, FeatureSpec, ManifestError, OutputSpec
from lnn_ros.onnx_export.errors import ExportError

SPEC_KEYS = ("name", "description", "features", "outputs", "dt", "window_steps", "camera")
REQUIRED_KEYS = ("name", "features", "outputs", "dt")
DEFAULT_WINDOW_STEPS = 16
REFERENCE = "docs/export-spec.md"


@dataclass(frozen=True)
class ExportSpec:
    """A validated spec: the manifest's features (with the normalisation), outputs, Δt limits and, for a
    camera model, how frames feed its encoder."""

    name: str
    description: str
    features: tuple[FeatureSpec, ...]
    outputs: tuple[OutputSpec, ...]
    dt: DtLimits
    window_steps: int | None
    camera: CameraSpec | None = None


def _type_problem(key: str, value: Any) -> str | None:
    """Why the top-level ``value`` of ``key`` has the wrong type (None when it is fine)."""
    if key == "name" and not (isinstance(value, str) and value):
        return "must be a non-empty string such as 'hover_cfc'"
    if key == "description" and not isinstance(value, str):
        return "must be text"
    if key in ("features", "outputs") and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
        return "must be a list of mappings, one per model " + ("input" if key == "features" else "output") + ", in order"
    if key == "dt" and not isinstance(value, dict):
        return "must be a mapping with min_s, max_s and max_gap_s (seconds)"
    if key == "camera" and not isinstance(value, dict):
        return "must be a mapping: the manifest's camera section (width, height, encoding, embedding_size, mean, std, preprocess)"
    if key == "window_steps" and value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        return "must be an integer >= 1, or null for no window graph"
    return None


def check_spec(raw: Any, where: str) -> dict[str, Any]:
    """Check a spec mapping's keys and the types of their values (entries are checked by :func:`build_spec`).

    Raises:
        ExportError: not a mapping, an unknown key (with the closest known one) or a value of the wrong type.
    """
    if not isinstance(raw, dict):
        raise ExportError(f"{where}: an export spec must be a mapping of {list(SPEC_KEYS)}, got {raw!r} ({REFERENCE}).")
    for key, value in raw.items():
        if key not in SPEC_KEYS:
            close = difflib.get_close_matches(str(key), SPEC_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ExportError(f"{where}: key {key!r} is not an export spec key; {hint}the keys are {list(SPEC_KEYS)} ({REFERENCE}).")
        problem = _type_problem(key, value)
        if problem is not None:
            raise ExportError(f"{where}: key {key!r} {problem}, got {value!r} ({REFERENCE}).")
    return raw


def read_spec_file(path: Path) -> dict[str, Any]:
    """Read and check (:func:`check_spec`) a spec YAML file.

    Raises:
        ExportError: unreadable, not YAML, or a bad key or value.
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ExportError(f"Cannot read the export spec {str(path)!r} ({exc.strerror}).") from None
    except yaml.YAMLError as exc:
        raise ExportError(f"{path}: is not valid YAML ({exc}).") from None
    return check_spec(raw, str(path))


def merge_specs(layers: list[tuple[str, dict[str, Any] | None]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Lay ``(where, spec)`` layers over each other, later ones winning key by key (``dt`` field by field).

    Returns:
        (the merged spec, for every key the ``where`` of the layer it was taken from).
    """
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for where, spec in layers:
        for key, value in (spec or {}).items():
            if key == "dt" and isinstance(merged.get(key), dict) and isinstance(value, dict):
                value = {**merged[key], **value}
            merged[key] = value
            origins[key] = where
    return merged, origins


def _parsed(origin: str, parse: Any, *args: Any) -> Any:
    try:
        return parse(*args)
    except ManifestError as exc:
        raise ExportError(f"{origin}: {str(exc).removeprefix('manifest.yaml: ')} ({REFERENCE})") from None


def build_spec(
    spec: dict[str, Any],
    origins: dict[str, str],
    *,
    input_size: int,
    output_size: int,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    missing_hint: str = "",
) -> ExportSpec:
    """Validate a merged spec against the model and fill the features' normalisation.

    Args:
        spec: The merged spec (:func:`merge_specs`), its keys already checked.
        origins: Where every key came from, named in errors.
        input_size: The model's inputs: one feature each.
        output_size: The model's outputs: one output each.
        mean: The checkpoint's normalisation (None: the spec's features may set mean/std).
        std: As ``mean``.
        missing_hint: Appended to the error for missing keys (how to give them).

    Raises:
        ExportError: a key is missing, an entry is invalid, or the counts do not match the model.
    """
    missing = [key for key in REQUIRED_KEYS if key not in spec]
    if missing:
        raise ExportError(f"The export spec lacks {', '.join(repr(k) for k in missing)}{missing_hint}")
    features: list[FeatureSpec] = []
    for i, raw in enumerate(spec["features"]):
        raw = dict(raw)
        if mean is not None and std is not None:
            if "mean" in raw or "std" in raw:
                raise ExportError(
                    f"{origins['features']}: features[{i}] sets mean/std, but the checkpoint holds the normalisation "
                    "it was trained with; remove them from the spec."
                )
            if i < len(mean):
                raw.update(mean=mean[i], std=std[i])
        features.append(_parsed(origins["features"], FeatureSpec.from_dict, raw, f"features[{i}]"))
    if len(features) != input_size:
        raise ExportError(
            f"{origins['features']}: lists {len(features)} features but the checkpoint's model takes {input_size}; "
            "list one feature per model input, in order."
        )
    outputs = [_parsed(origins["outputs"], OutputSpec.from_dict, raw, f"outputs[{i}]") for i, raw in enumerate(spec["outputs"])]
    if len(outputs) != output_size:
        raise ExportError(
            f"{origins['outputs']}: lists {len(outputs)} outputs but the checkpoint's model gives {output_size}; "
            "list one output per model output, in order."
        )
    dt = _parsed(origins["dt"], DtLimits.from_dict, spec["dt"], "dt")
    camera = None if spec.get("camera") is None else _parsed(origins["camera"], CameraSpec.from_dict, spec["camera"], "camera")
    return ExportSpec(
        name=spec["name"],
        description=str(spec.get("description", "")),
        features=tuple(features),
        outputs=tuple(outputs),
        dt=dt,
        window_steps=spec.get("window_steps", DEFAULT_WINDOW_STEPS),
        camera=camera,
    )
