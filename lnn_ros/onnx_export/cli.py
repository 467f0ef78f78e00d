"""``lnn-ros export CHECKPOINT --out DIR [--spec SPEC.yaml]``: a training checkpoint -> a bundle folder.

What the model's inputs and outputs are (features, outputs and their limits, Δt range) comes
from the checkpoint when it was trained from bags, and from ``--spec`` otherwise; a spec given
for such a checkpoint overrides it key by key. The normalisation always comes from the
checkpoint. The spec format, with an example: docs/export-spec.md (:mod:`lnn_ros.onnx_export.spec`).

A camera model's checkpoint (``lnn-ros train`` on camera bags) also holds the image encoder and
its spec the ``camera`` section (size, normalisation, preprocessing): the bundle then gets the
encoder graph beside the step graph. torch is imported inside the handler only: this module is imported on every ``lnn-ros`` call.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lnn_ros.onnx_export.spec import REFERENCE, ExportSpec, build_spec, check_spec, merge_specs, read_spec_file

if TYPE_CHECKING:
    from lnn_ros.training.checkpoint import Checkpoint


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
    parser.add_argument(
        "--spec", type=Path, default=None,
        help="YAML naming features, outputs and Δt limits (docs/export-spec.md); needed only for checkpoints not "
        "trained from bags, else its keys override the checkpoint's",
    )
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument("--name", default=None, help="bundle name (default: the spec's, else the checkpoint's)")
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--window-steps", type=int, default=None, help="T of the window graph (default: spec, else 16)")
    window.add_argument("--no-window", action="store_true", help="write no window graph")
    parser.add_argument(
        "--exporter", choices=("torchscript", "dynamo"), default="torchscript", help="torch.onnx exporter (default torchscript)"
    )
    parser.set_defaults(func=run_export)


def resolve_spec(args: argparse.Namespace, checkpoint: Checkpoint) -> ExportSpec:
    """The checkpoint's spec, overridden by ``--spec``, then by ``--name`` / ``--window-steps`` / ``--no-window``.

    Raises:
        ExportError (from :mod:`lnn_ros.onnx_export.spec`): a bad spec, or neither source says what the
            inputs and outputs are.
    """
    from lnn_ros.training.checkpoint import SIDECAR_NAME

    sidecar = str(checkpoint.path / SIDECAR_NAME)
    layers: list[tuple[str, dict[str, Any] | None]] = []
    if checkpoint.export is not None:
        layers.append((sidecar, check_spec(checkpoint.export, f"{sidecar} (export)")))
    if args.spec is not None:
        layers.append((str(args.spec), read_spec_file(args.spec)))
    options: dict[str, Any] = {}
    if args.name is not None:
        options["name"] = args.name
    if args.no_window:
        options["window_steps"] = None
    elif args.window_steps is not None:
        options["window_steps"] = args.window_steps
    layers.append(("the command line", check_spec(options, "the command line")))
    spec, origins = merge_specs(layers)
    if args.spec is None:
        hint = (
            f": checkpoint {str(checkpoint.path)!r} does not say what its inputs and outputs are (it was trained from "
            "data without topics, such as .npz, not from bags). Pass --spec SPEC.yaml with the missing keys "
            f"(and 'name' or --name); the format and an example: {REFERENCE}."
        )
    else:
        hint = f": add the missing keys to {str(args.spec)!r} ({REFERENCE})."
    stats = checkpoint.stats
    cell = checkpoint.cell
    return build_spec(
        spec, origins, input_size=cell.input_size, output_size=cell.output_size,
        mean=None if stats is None else stats.mean, std=None if stats is None else stats.std, missing_hint=hint,
    )


def run_export(args: argparse.Namespace) -> int:
    from lnn_ros.onnx_export.bundle_writer import export_bundle_with_report
    from lnn_ros.onnx_export.errors import ExportError
    from lnn_ros.onnx_export.graphs import Exporter
    from lnn_ros.training.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(args.checkpoint)
    spec = resolve_spec(args, checkpoint)
    if (spec.camera is None) != (checkpoint.encoder is None):
        raise ExportError(
            f"Checkpoint {str(args.checkpoint)!r} has an image encoder but the spec no 'camera' section; add it ({REFERENCE})."
            if spec.camera is None
            else f"{args.spec}: key 'camera' describes an image encoder, but checkpoint {str(args.checkpoint)!r} has none "
            "(it was trained without a camera); remove the key."
        )
    result = export_bundle_with_report(
        checkpoint.cell,
        args.out,
        name=spec.name,
        features=list(spec.features),
        outputs=list(spec.outputs),
        dt=spec.dt,
        window_steps=spec.window_steps,
        description=spec.description,
        encoder=checkpoint.encoder,
        camera=spec.camera,
        exporter=Exporter(args.exporter),
    )
    print(f"wrote bundle {result.path} ({spec.name}: {', '.join(sorted(result.manifest.graphs))} graphs)")
    print(f"parity   {result.parity.summary()}")
    print(f"engine   max abs diff vs PyTorch {result.engine_error:.2e}")
    return 0
