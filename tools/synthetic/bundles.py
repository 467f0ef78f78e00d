"""Real, small bundles with random-init cells, for tests of everything downstream of export.

Each ``make_*`` function exports a freshly seeded model through
:func:`lnn_ros.onnx_export.export_bundle_with_report` (so the bundle passed the same checks as a
shipped one: onnx checker, no control flow, parity with PyTorch, load-back, Engine run) and
returns a :class:`FactoryBundle`. The same arguments give the same weights, so a
session-scoped fixture can build one bundle and share it::

    @pytest.fixture(scope="session")
    def imu_model(tmp_path_factory):
        return make_imu_bundle(tmp_path_factory.mktemp("imu"))

    engine = Engine(imu_model.path)             # or Engine(imu_model): it is os.PathLike
    imu_model.cell                              # the torch cell, for reference outputs

Each call takes well under 5 s on 2 cores (most of it the 200-step parity check). The tests'
``tests/bundle_factory.py`` wraps them in module-scoped fixtures.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lnn_ros.bundle import CameraSpec, DtLimits, FeatureSpec, Manifest, OutputSpec, load_bundle, write_manifest
from lnn_ros.cells import AutoNCP, RecurrentCell, build_cell
from lnn_ros.onnx_export import export_bundle_with_report

IMU_FEATURES = (
    ("angular_velocity.x", "rad/s", 0.0, 0.5),
    ("angular_velocity.y", "rad/s", 0.0, 0.5),
    ("angular_velocity.z", "rad/s", 0.0, 0.5),
    ("linear_acceleration.x", "m/s^2", 0.0, 2.0),
    ("linear_acceleration.y", "m/s^2", 0.0, 2.0),
    ("linear_acceleration.z", "m/s^2", 9.81, 2.0),
)
TWIST_OUTPUTS = (
    OutputSpec("vx", "m/s", -2.0, 2.0, "linear.x"),
    OutputSpec("vy", "m/s", -2.0, 2.0, "linear.y"),
    OutputSpec("vz", "m/s", -1.0, 1.0, "linear.z"),
    OutputSpec("yaw_rate", "rad/s", -1.0, 1.0, "angular.z"),
)
DT_LIMITS = DtLimits(min_s=1e-4, max_s=0.5, max_gap_s=1.0)
CAMERA = CameraSpec(
    width=32, height=24, encoding="rgb8", embedding_size=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
)


@dataclass(frozen=True)
class FactoryBundle:
    """A bundle written by this module, with the torch models it was exported from.

    It is ``os.PathLike`` (the bundle folder), so it can be passed wherever a path is expected.
    """

    path: Path
    manifest: Manifest
    cell: RecurrentCell
    encoder: nn.Module | None = None

    def __fspath__(self) -> str:
        return str(self.path)


class TinyEncoder(nn.Module):
    """A small conv net: normalised image [B,C,H,W] -> embedding [B,E] in (-1, 1)."""

    def __init__(self, channels: int = 3, embedding_size: int = 8) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, 8, kernel_size=5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, embedding_size),
            nn.Tanh(),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)


def small_cell_config(kind: str, input_size: int, output_size: int, units: int = 8) -> dict[str, Any]:
    """A small config of every cell kind with ``output_size`` outputs."""
    if kind == "cfc":
        return {"kind": kind, "input_size": input_size, "hidden_size": units, "backbone_units": 16, "proj_size": output_size}
    if kind in ("wired_cfc", "ltc"):
        wiring = AutoNCP(max(units, output_size + 4), output_size).to_config()
        extra = {"ode_unfolds": 3} if kind == "ltc" else {}
        return {"kind": kind, "input_size": input_size, "wiring": wiring, **extra}
    if kind in ("lstm", "gru"):
        return {"kind": kind, "input_size": input_size, "units": units, "output_size": output_size}
    if kind == "mlp":
        return {"kind": kind, "input_size": input_size, "output_size": output_size, "hidden_units": 16}
    if kind == "stack_mlp":  # the stack is the camera embedding of the camera bundles (all inputs if fewer)
        stack_features = min(CAMERA.embedding_size, input_size)
        return {"kind": kind, "input_size": input_size, "output_size": output_size, "hidden_units": 16, "stack_features": stack_features}
    raise ValueError(f"Unknown cell kind {kind!r}; use cfc, wired_cfc, ltc, lstm, gru, mlp or stack_mlp.")


def _seeded_cell(kind: str, input_size: int, output_size: int, units: int, seed: int) -> RecurrentCell:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_cell(small_cell_config(kind, input_size, output_size, units))


def _export(
    directory: str | os.PathLike[str],
    cell: RecurrentCell,
    *,
    name: str,
    features: list[FeatureSpec],
    outputs: list[OutputSpec],
    window_steps: int | None,
    encoder: nn.Module | None = None,
    camera: CameraSpec | None = None,
) -> FactoryBundle:
    result = export_bundle_with_report(
        cell,
        Path(directory),
        name=name,
        features=features,
        outputs=outputs,
        dt=DT_LIMITS,
        window_steps=window_steps,
        encoder=encoder,
        camera=camera,
        description=f"Random-init {cell.config()['kind']} test bundle from tests/bundle_factory.py.",
    )
    return FactoryBundle(path=result.path, manifest=result.manifest, cell=cell, encoder=encoder)


def make_vector_bundle(
    directory: str | os.PathLike[str],
    kind: str = "cfc",
    *,
    inputs: int = 3,
    outputs: int = 2,
    units: int = 8,
    window_steps: int | None = 8,
    seed: int = 0,
) -> FactoryBundle:
    """A bundle fed by a plain vector: features ``v0..v{inputs-1}`` (source ``vector``), outputs ``y0..``.

    Feature ``i`` has mean ``0.1 * i`` and std ``1 + i`` so that normalisation is not the identity.
    Outputs are limited to [-5, 5] and not mapped to a Twist.
    """
    features = [FeatureSpec(f"v{i}", "vector", mean=0.1 * i, std=1.0 + i, index=i) for i in range(inputs)]
    output_specs = [OutputSpec(f"y{i}", "", -5.0, 5.0) for i in range(outputs)]
    cell = _seeded_cell(kind, inputs, outputs, units, seed)
    return _export(directory, cell, name=f"test_vector_{kind}", features=features, outputs=output_specs, window_steps=window_steps)


def imu_features() -> list[FeatureSpec]:
    """The 6 IMU features: angular velocity x/y/z, then linear acceleration x/y/z."""
    return [
        FeatureSpec(field.replace(".", "_"), "imu", mean=mean, std=std, field=field, unit=unit)
        for field, unit, mean, std in IMU_FEATURES
    ]


def make_imu_bundle(
    directory: str | os.PathLike[str],
    kind: str = "cfc",
    *,
    units: int = 8,
    window_steps: int | None = 8,
    seed: int = 0,
    camera: bool = False,
) -> FactoryBundle:
    """IMU in (6 features), velocity command out: vx, vy, vz, yaw_rate -> Twist linear.x/y/z, angular.z.

    With ``camera``, the features are the 6 IMU features then ``camera_0..7``, the embedding of
    a 3x24x32 rgb8 image by a :class:`TinyEncoder` (seeded with ``seed + 1``).
    """
    features = imu_features()
    if camera:
        features += [FeatureSpec(f"camera_{i}", "camera", index=i) for i in range(CAMERA.embedding_size)]
    cell = _seeded_cell(kind, len(features), len(TWIST_OUTPUTS), units, seed)
    encoder = None
    if camera:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            encoder = TinyEncoder(CAMERA.channels, CAMERA.embedding_size)
    return _export(
        directory,
        cell,
        name=f"test_imu_camera_{kind}" if camera else f"test_imu_{kind}",
        features=features,
        outputs=list(TWIST_OUTPUTS),
        window_steps=window_steps,
        encoder=encoder,
        camera=CAMERA if camera else None,
    )


def make_imu_camera_bundle(directory: str | os.PathLike[str], kind: str = "cfc", **options: Any) -> FactoryBundle:
    """:func:`make_imu_bundle` with ``camera=True``: IMU (6) + camera embedding (8) in, the same 4 Twist outputs."""
    return make_imu_bundle(directory, kind, camera=True, **options)


def narrowed_copy(bundle: str | os.PathLike[str], folder: Path, limit: float) -> Path:
    """A copy of ``bundle`` in ``folder`` with every output limited to [-limit, limit] (so clamping happens)."""
    shutil.copytree(bundle, folder)
    manifest = load_bundle(folder).manifest
    outputs = tuple(dataclasses.replace(o, min=-limit, max=limit) for o in manifest.outputs)
    write_manifest(folder, dataclasses.replace(manifest, outputs=outputs))
    return folder


# ---------------------------------------------------------------------- pytest fixtures
