"""``lnn-ros export CHECKPOINT --spec SPEC.yaml --out DIR``: a training checkpoint -> a bundle folder.

The spec YAML says what the model's inputs and outputs mean; the normalisation comes from the
checkpoint. Example::

    name: hover_cfc
    description: Velocity command from IMU.
    features:                       # one per model input, in order (no mean/std: from the checkpoint)
      - {name: gyro_x, source: imu, field: angular_velocity.x, unit: rad/s}
      - {name: target_z, source: vector, index: 0, unit: m}
    outputs:                        # one per model output, in order
      - {name: vz, unit: m/s, min: -1.0, max: 1.0, twist_field: linear.z}
    dt: {min_s: 0.001, max_s: 0.1, max_gap_s: 0.5}
    window_steps: 16                # optional (default 16; null for no window graph)

Camera models (an image encoder in front of the cell) are exported from Python with
:func:`lnn_ros.onnx_export.export_bundle`, since a checkpoint holds only the cell.
torch is imported inside the handler only: this module is imported on every ``lnn-ros`` call.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from lnn_ros.bundle.manifest import DtLimits, FeatureSpec, ManifestError, OutputSpec
from lnn_ros.onnx_export.errors import ExportError

DEFAULT_WINDOW_STEPS = 16


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a training checkpoint to a verified bundle folder (ONNX + manifest.yaml)",
        description="Export CHECKPOINT (written by 'lnn-ros train') to an opset-17 bundle: step graph, "
        "optional window graph, manifest.yaml with the checkpoint's feature normalisation. The graphs "
        "are checked (onnx checker, no Loop/Scan/If, dynamic batch), compared with PyTorch through "
        "onnxruntime and run through the onboard Engine before the folder is written.",
    )
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (checkpoint.yaml + weights.safetensors)")
    parser.add_argument("--spec", type=Path, required=True, help="YAML naming features, outputs and Δt limits")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument("--name", default=None, help="bundle name (default: the spec's name)")
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--window-steps", type=int, default=None, help="T of the window graph (default: spec, else 16)")
    window.add_argument("--no-window", action="store_true", help="write no window graph")
    parser.add_argument(
        "--exporter", choices=("torchscript", "dynamo"), default="torchscript", help="torch.onnx exporter (default torchscript)"
    )
    parser.set_defaults(func=run_export)


def _mapping(value: Any, what: str, spec_path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ExportError(f"{spec_path}: {what} must be a mapping, got {value!r}.")
    return value


def read_spec(
    spec_path: Path, mean: tuple[float, ...] | None, std: tuple[float, ...] | None
) -> tuple[dict[str, Any], list[FeatureSpec], list[OutputSpec], DtLimits]:
    """Parse the export spec; fills feature mean/std from the checkpoint statistics when given.

    Returns:
        (the raw spec mapping, features, outputs, Δt limits).

    Raises:
        ExportError: naming the spec file and the bad field.
    """
    try:
        spec = _mapping(yaml.safe_load(spec_path.read_text()), "the spec", spec_path)
    except OSError as exc:
        raise ExportError(f"Cannot read the export spec {str(spec_path)!r} ({exc.strerror}).") from None
    except yaml.YAMLError as exc:
        raise ExportError(f"{spec_path}: is not valid YAML ({exc}).") from None
    if "camera" in spec:
        raise ExportError(f"{spec_path}: camera models cannot be exported from a checkpoint; use export_bundle() in Python.")
    raw_features, raw_outputs = spec.get("features"), spec.get("outputs")
    if not isinstance(raw_features, list) or not isinstance(raw_outputs, list):
        raise ExportError(f"{spec_path}: needs lists 'features' and 'outputs', got {raw_features!r} and {raw_outputs!r}.")
    features: list[FeatureSpec] = []
    try:
        for i, raw in enumerate(raw_features):
            raw = dict(_mapping(raw, f"features[{i}]", spec_path))
            if mean is not None and std is not None:
                if "mean" in raw or "std" in raw:
                    raise ExportError(
                        f"{spec_path}: features[{i}] sets mean/std, but the checkpoint holds the normalisation "
                        "it was trained with; remove them from the spec."
                    )
                if i < len(mean):
                    raw.update(mean=mean[i], std=std[i])
            features.append(FeatureSpec.from_dict(raw, f"features[{i}]"))
        outputs = [OutputSpec.from_dict(_mapping(o, f"outputs[{i}]", spec_path), f"outputs[{i}]") for i, o in enumerate(raw_outputs)]
        dt = DtLimits.from_dict(_mapping(spec.get("dt"), "dt", spec_path))
    except ManifestError as exc:
        raise ExportError(f"{spec_path}: {str(exc).removeprefix('manifest.yaml: ')}") from None
    if mean is not None and len(features) != len(mean):
        raise ExportError(f"{spec_path}: lists {len(features)} features but the checkpoint's model takes {len(mean)}.")
    return spec, features, outputs, dt


def run_export(args: argparse.Namespace) -> int:
    from lnn_ros.onnx_export.bundle_writer import export_bundle_with_report
    from lnn_ros.onnx_export.graphs import Exporter
    from lnn_ros.training.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(args.checkpoint)
    stats = checkpoint.stats
    spec, features, outputs, dt = read_spec(
        args.spec, None if stats is None else stats.mean, None if stats is None else stats.std
    )
    if args.no_window:
        window_steps = None
    elif args.window_steps is not None:
        window_steps = args.window_steps
    else:
        window_steps = spec.get("window_steps", DEFAULT_WINDOW_STEPS)
    if window_steps is not None and (isinstance(window_steps, bool) or not isinstance(window_steps, int) or window_steps < 1):
        raise ExportError(f"window_steps must be an integer >= 1 or null, got {window_steps!r}.")
    name = args.name or spec.get("name")
    if not isinstance(name, str) or not name:
        raise ExportError(f"{args.spec}: needs a 'name' (or pass --name).")
    result = export_bundle_with_report(
        checkpoint.cell,
        args.out,
        name=name,
        features=features,
        outputs=outputs,
        dt=dt,
        window_steps=window_steps,
        description=str(spec.get("description", "")),
        exporter=Exporter(args.exporter),
    )
    print(f"wrote bundle {result.path} ({name}: {', '.join(sorted(result.manifest.graphs))} graphs)")
    print(f"parity   {result.parity.summary()}")
    print(f"engine   max abs diff vs PyTorch {result.engine_error:.2e}")
    return 0
