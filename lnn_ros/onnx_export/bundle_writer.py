"""Write a complete, verified bundle folder: ONNX graphs + ``manifest.yaml``.

Everything is written to a staging folder inside ``out_dir`` first. Only when the graphs pass
:func:`~lnn_ros.onnx_export.checks.check_graph_file`, match PyTorch within the tolerance
(:func:`~lnn_ros.onnx_export.verify.verify_graphs`), load back through
:func:`~lnn_ros.bundle.load_bundle` and step through the torch-free
:class:`~lnn_ros.engine.Engine` like PyTorch does, are the files moved into ``out_dir``
(manifest last), so a failed export never leaves a half-written bundle behind.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch
import yaml
from torch import nn

import lnn_ros
from lnn_ros.bundle import (
    CameraSpec,
    DtLimits,
    FeatureSpec,
    GraphSpec,
    Manifest,
    ModelSpec,
    OutputSpec,
    load_bundle,
    write_manifest,
)
from lnn_ros.bundle.manifest import MANIFEST_NAME
from lnn_ros.cells import RecurrentCell
from lnn_ros.engine import Engine, EngineConfig, Outcome
from lnn_ros.errors import BundleError
from lnn_ros.onnx_export.checks import OPSET
from lnn_ros.onnx_export.errors import ExportError, ParityError
from lnn_ros.onnx_export.graphs import (
    Exporter,
    eval_mode,
    export_encoder_graph,
    export_step_graph,
    export_window_graph,
    torch_threads,
)
from lnn_ros.onnx_export.verify import DEFAULT_TOLERANCE, ParityReport, log_uniform_dt, verify_graphs

LOG = logging.getLogger("lnn_ros.onnx_export")
GRAPH_FILES = {"step": "step.onnx", "window": "window.onnx", "encoder": "encoder.onnx"}
ENGINE_CHECK_STEPS = 50


@dataclass(frozen=True)
class BundleExport:
    """What :func:`export_bundle_with_report` wrote and measured.

    Attributes:
        path: The bundle folder.
        manifest: The manifest as written (file hashes filled in).
        parity: Graphs vs PyTorch (see :class:`~lnn_ros.onnx_export.verify.ParityReport`).
        engine_error: Largest |Engine output - PyTorch output| over a short stamped rollout.
    """

    path: Path
    manifest: Manifest
    parity: ParityReport
    engine_error: float


def producer_versions() -> dict[str, str]:
    """Versions of the packages that wrote a bundle, for its manifest."""
    return {
        "lnn_ros": str(lnn_ros.__version__),
        "torch": str(torch.__version__),
        "onnx": str(onnx.__version__),
        "onnxruntime": str(onnxruntime.__version__),
    }


def _model_spec(cell: RecurrentCell) -> ModelSpec:
    config = cell.config()
    try:  # the manifest is YAML: the config must be plain data
        yaml.safe_dump(config)
    except yaml.YAMLError as exc:
        raise ExportError(f"The cell config of {type(cell).__name__} is not plain YAML data ({exc}).") from None
    return ModelSpec(
        kind=str(config["kind"]),
        input_size=cell.input_size,
        state_size=cell.state_size,
        output_size=cell.output_size,
        config=config,
    )


def _engine_error(folder: Path, cell: RecurrentCell, encoder: nn.Module | None, dt: DtLimits, seed: int) -> float:
    """Step the Engine with stamped raw features and compare with the cell stepped in torch.

    The engine's first input only initialises the stamp; torch sees that input with Δt = 0,
    which leaves the state unchanged, so both sides are compared from the second input on.
    """
    engine = Engine(load_bundle(folder), EngineConfig(clamp_outputs=False))
    manifest = engine.manifest
    mean = np.array([f.mean for f in manifest.features], dtype=np.float32)
    std = np.array([f.std for f in manifest.features], dtype=np.float32)
    inv_std = np.array([1.0 / f.std for f in manifest.features], dtype=np.float32)  # as the engine does
    generator = np.random.default_rng(seed)
    dts = log_uniform_dt(generator, (ENGINE_CHECK_STEPS,), (dt.min_s, dt.max_s))
    stamps_ns = np.concatenate([[10**9], 10**9 + np.cumsum(np.round(dts.astype(np.float64) * 1e9))]).astype(np.int64)
    error = 0.0
    with eval_mode(cell), torch.no_grad():
        hidden = cell.initial_state(1)
        for i, stamp_ns in enumerate(stamps_ns):
            raw = generator.standard_normal(cell.input_size).astype(np.float32) * std + mean
            result = engine.step(raw, int(stamp_ns))
            expected = Outcome.INITIALISED if i == 0 else Outcome.STEPPED
            if result.outcome is not expected:
                raise ExportError(f"The engine check step {i} ended {result.outcome.value!r}, expected {expected.value!r}.")
            x = torch.from_numpy((raw - mean) * inv_std).unsqueeze(0)
            y, hidden = cell(x, hidden, torch.full((1, 1), result.dt_s))  # Δt = 0 at the first input
            if result.output is not None:
                error = max(error, float(np.max(np.abs(result.output - y[0].numpy()))))
        if encoder is not None and manifest.camera is not None:
            camera = manifest.camera
            image = generator.standard_normal((1, camera.channels, camera.height, camera.width)).astype(np.float32)
            with eval_mode(encoder):
                embedding = encoder(torch.from_numpy(image))[0].numpy()
            error = max(error, float(np.max(np.abs(engine.encode(image) - embedding))))
    return error


def _remove_stale_graphs(out_dir: Path, keep: set[str]) -> None:
    """Delete graph files an older manifest in ``out_dir`` listed that the new one does not."""
    old_manifest = out_dir / MANIFEST_NAME
    if not old_manifest.is_file():
        return
    try:
        old_files = (yaml.safe_load(old_manifest.read_text()) or {}).get("files", {}) or {}
    except yaml.YAMLError:
        return
    for name in old_files:
        stale = out_dir / str(name)
        if str(name) not in keep and stale.is_file() and stale.parent == out_dir:
            stale.unlink()


def export_bundle_with_report(
    cell: RecurrentCell,
    out_dir: str | Path,
    *,
    name: str,
    features: list[FeatureSpec],
    outputs: list[OutputSpec],
    dt: DtLimits,
    window_steps: int | None = 16,
    encoder: nn.Module | None = None,
    camera: CameraSpec | None = None,
    description: str = "",
    exporter: Exporter = Exporter.TORCHSCRIPT,
    tolerance: float = DEFAULT_TOLERANCE,
    verify_steps: int = 200,
    seed: int = 0,
) -> BundleExport:
    """Export ``cell`` (and ``encoder``) as a verified bundle in ``out_dir``; see the module docstring.

    Args:
        cell: The float32 recurrent cell; its inputs are the *normalised* features.
        out_dir: The bundle folder (created if needed; other files in it are left alone).
        name: Bundle name for the manifest.
        features: One spec per element of ``x``, in order, with the normalisation ``mean``/``std``.
        outputs: One spec per element of ``y``, in order.
        dt: Δt range the model was trained on and the gap that resets it.
        window_steps: T of the window graph; None for no window graph.
        encoder: Image encoder ``[B,C,H,W] -> [B,E]`` for camera models (needs ``camera``).
        camera: How images are fed to ``encoder``.
        description: Free text for the manifest.
        exporter: Which torch exporter to use (see :mod:`lnn_ros.onnx_export.graphs`).
        tolerance: Largest accepted |graph - PyTorch| (see :class:`~lnn_ros.onnx_export.verify.ParityReport`
            for how rollouts of models that amplify float32 rounding are judged; the engine check
            uses the same bound as the rollouts).
        verify_steps: Rollout length of the parity check.
        seed: Seeds the verification inputs.

    Raises:
        ExportError: The description is inconsistent, an export or check failed, or parity is
            above ``tolerance`` (:class:`ParityError`).
    """
    out_dir = Path(out_dir)
    if (encoder is None) != (camera is None):
        raise ExportError(
            f"Camera models need both an encoder and a CameraSpec; got encoder={type(encoder).__name__ if encoder else None!r} "
            f"and camera={camera!r}."
        )
    graphs = {"step": GraphSpec(GRAPH_FILES["step"])}
    if window_steps is not None:
        graphs["window"] = GraphSpec(GRAPH_FILES["window"], steps=window_steps)
    if camera is not None:
        graphs["encoder"] = GraphSpec(GRAPH_FILES["encoder"])
    try:
        manifest = Manifest(
            name=name,
            description=description,
            model=_model_spec(cell),
            graphs=graphs,
            features=tuple(features),
            outputs=tuple(outputs),
            dt=dt,
            camera=camera,
            opset=OPSET,
            producer=producer_versions(),
        )
    except BundleError as exc:
        raise ExportError(f"Cannot describe bundle {name!r}: {exc}") from None

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out_dir) as staging_name:
        staging = Path(staging_name)
        export_step_graph(cell, staging / GRAPH_FILES["step"], exporter=exporter)
        if window_steps is not None:
            export_window_graph(cell, staging / GRAPH_FILES["window"], window_steps, exporter=exporter)
        if encoder is not None and camera is not None:
            export_encoder_graph(
                encoder, staging / GRAPH_FILES["encoder"], (camera.channels, camera.height, camera.width), exporter=exporter
            )
            with eval_mode(encoder), torch.no_grad():
                embedding_size = encoder(torch.zeros(1, camera.channels, camera.height, camera.width)).shape[-1]
            if embedding_size != camera.embedding_size:
                raise ExportError(
                    f"The encoder outputs {embedding_size} features but camera.embedding_size is {camera.embedding_size}."
                )
        parity = verify_graphs(
            cell,
            staging / GRAPH_FILES["step"],
            window_path=None if window_steps is None else staging / GRAPH_FILES["window"],
            window_steps=window_steps,
            encoder=encoder,
            encoder_path=None if encoder is None else staging / GRAPH_FILES["encoder"],
            steps=verify_steps,
            tolerance=tolerance,
            seed=seed,
        )
        parity.raise_if_failed()
        written = write_manifest(staging, manifest)
        try:
            with torch_threads(1):
                engine_error = _engine_error(staging, cell, encoder, dt, seed)
        except BundleError as exc:
            raise ExportError(f"The exported bundle does not load back: {exc}") from None
        if not engine_error <= parity.rollout_allowance:
            raise ParityError(
                f"The Engine running bundle {name!r} differs from PyTorch by {engine_error:.3e} "
                f"(> {parity.rollout_allowance:.1e}, see ParityReport.rollout_allowance)."
            )
        _remove_stale_graphs(out_dir, set(written.files))
        for file_name in [*written.files, MANIFEST_NAME]:
            os.replace(staging / file_name, out_dir / file_name)
    bundle = load_bundle(out_dir)
    LOG.info("Wrote bundle %r to %s; %s; engine vs PyTorch %.2e.", name, out_dir, parity.summary(), engine_error)
    return BundleExport(path=out_dir, manifest=bundle.manifest, parity=parity, engine_error=engine_error)


def export_bundle(cell: RecurrentCell, out_dir: str | Path, **options: Any) -> Manifest:
    """:func:`export_bundle_with_report` (the same keyword arguments) returning only the written manifest."""
    return export_bundle_with_report(cell, out_dir, **options).manifest
