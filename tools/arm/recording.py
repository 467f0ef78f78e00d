"""Recorded inputs and x86 reference outputs for every graph of a set of bundles.

For each bundle (a folder with ``manifest.yaml`` whose ``graphs`` names ``step`` and
optionally ``window`` and ``encoder``) the sizes are read from the ONNX graphs themselves:

* ``step``: a closed-loop rollout of ``steps`` calls. ``x`` ~ N(0, 1), ``dt`` log-uniform
  over [1e-4, 1] s, ``hidden`` starts at zero and is then the graph's own ``hidden_out``.
* ``window``: the same ``x``/``dt`` sequence cut into windows of its T steps, ``hidden_out``
  fed from one window to the next.
* ``encoder``: a few batches of images with pixels ~ U(0, 1).

Everything goes to a work folder: ``plan.json`` (what to call), ``inputs.npz``,
``reference.npz`` (the x86 outputs, from :func:`lnn_ros_tools.arm.runner.run_plan`) and
``host.json`` (x86 platform and versions).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort
import yaml

from lnn_ros_tools.arm import runner
from lnn_ros_tools.arm.errors import ArmVerifyError

MANIFEST_NAME = "manifest.yaml"
PLAN_NAME = "plan.json"
INPUTS_NAME = "inputs.npz"
REFERENCE_NAME = "reference.npz"
HOST_NAME = "host.json"
DT_RANGE_S = (1e-4, 1.0)
DYNAMIC_BATCH = 2
ENCODER_CALLS = 4
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


class GraphRole(Enum):
    """The graph roles of a bundle, in the order they are verified."""

    STEP = "step"
    WINDOW = "window"
    ENCODER = "encoder"


class GraphFile(NamedTuple):
    """One graph of a bundle: its ONNX file and, for a window graph, the manifest's T."""

    role: GraphRole
    path: Path
    steps: int | None


class TensorSpec(NamedTuple):
    """An ONNX input or output as onnxruntime reports it (``None`` for a symbolic dimension)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: type


def read_bundle_graphs(bundle_dir: Path | str) -> tuple[GraphFile, ...]:
    """The graphs named in ``bundle_dir/manifest.yaml``, checked to exist.

    Raises:
        ArmVerifyError: when the folder, the manifest, the step graph or a file is missing.
    """
    folder = Path(bundle_dir)
    manifest = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise ArmVerifyError(
            f"Bundle folder {str(folder)!r} does not exist; pass the folder that holds {MANIFEST_NAME}."
        )
    if not manifest.is_file():
        raise ArmVerifyError(f"Bundle folder {str(folder)!r} has no {MANIFEST_NAME}; is it an exported bundle?")
    try:
        data = yaml.safe_load(manifest.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ArmVerifyError(f"{str(manifest)!r} cannot be read as YAML ({exc}).") from None
    graphs = data.get("graphs") if isinstance(data, dict) else None
    if not isinstance(graphs, dict) or "step" not in graphs:
        raise ArmVerifyError(f"{str(manifest)!r} has no 'graphs.step' entry; every bundle needs a step graph.")
    unknown = sorted(set(graphs) - {role.value for role in GraphRole})
    if unknown:
        raise ArmVerifyError(
            f"{str(manifest)!r} names graphs {unknown} that the verifier does not know; "
            f"known roles are {[role.value for role in GraphRole]}."
        )
    found = []
    for role in GraphRole:
        spec = graphs.get(role.value)
        if spec is None:
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("file"), str):
            raise ArmVerifyError(f"{str(manifest)!r}: 'graphs.{role.value}.file' must be a file name, got {spec!r}.")
        path = folder / spec["file"]
        if not path.is_file():
            raise ArmVerifyError(
                f"Bundle {str(folder)!r}: the {role.value} graph file {spec['file']!r} named in "
                f"{MANIFEST_NAME} does not exist."
            )
        steps = spec.get("steps")
        found.append(GraphFile(role, path.resolve(), steps if isinstance(steps, int) else None))
    return tuple(found)


def _specs(values: Sequence[Any], where: str) -> dict[str, TensorSpec]:
    specs = {}
    for value in values:
        dtype = _DTYPES.get(value.type)
        if dtype is None:
            raise ArmVerifyError(
                f"{where}: tensor {value.name!r} has type {value.type!r}; only float tensors are supported."
            )
        shape = tuple(dim if isinstance(dim, int) and dim > 0 else None for dim in value.shape)
        specs[value.name] = TensorSpec(value.name, shape, dtype)
    return specs


def _fixed(spec: TensorSpec, axis: int, where: str, fallback: int | None = None) -> int:
    if len(spec.shape) <= axis:
        raise ArmVerifyError(
            f"{where}: input {spec.name!r} has shape {list(spec.shape)}; expected at least {axis + 1} dimensions."
        )
    size = spec.shape[axis] or fallback
    if size is None:
        raise ArmVerifyError(
            f"{where}: dimension {axis} of input {spec.name!r} is symbolic; it must be fixed in the graph."
        )
    return size


def _check_io(inputs: dict[str, TensorSpec], outputs: dict[str, TensorSpec], expected_in: dict[str, int],
              expected_out: set[str], where: str) -> None:
    """Inputs named exactly as ``expected_in`` (name -> rank) and the ``expected_out`` outputs."""
    if set(inputs) != set(expected_in):
        raise ArmVerifyError(f"{where}: inputs are {sorted(inputs)}; expected exactly {sorted(expected_in)}.")
    for name, rank in expected_in.items():
        if len(inputs[name].shape) != rank:
            raise ArmVerifyError(
                f"{where}: input {name!r} has shape {list(inputs[name].shape)}; expected {rank} dimensions."
            )
    missing = sorted(expected_out - set(outputs))
    if missing:
        raise ArmVerifyError(f"{where}: outputs {missing} are missing; it has {sorted(outputs)}.")


def _log_uniform_dt(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    low, high = DT_RANGE_S
    return np.exp(rng.uniform(math.log(low), math.log(high), size=shape))


def _draw_sequence(rng: np.random.Generator, length: int, batch: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``x`` [length, batch, width] ~ N(0, 1) and ``dt`` [length, batch, 1] log-uniform."""
    return rng.standard_normal((length, batch, width)), _log_uniform_dt(rng, (length, batch, 1))


def _record_bundle(
    index: int, graphs: Sequence[GraphFile], bundle: str, steps: int, seed: int
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Plan entries and arrays (inputs) of one bundle's graphs."""
    rng = np.random.default_rng([seed, index])
    entries: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    sequence: tuple[np.ndarray, np.ndarray] | None = None  # x [L, B, F], dt [L, B, 1] of the step graph
    for graph in graphs:
        where = f"Bundle {bundle!r} {graph.role.value} graph {graph.path.name!r}"
        try:
            session = ort.InferenceSession(str(graph.path), providers=[runner.PROVIDER])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ArmVerifyError(f"{where} cannot be loaded by onnxruntime ({exc}).") from None
        inputs = _specs(session.get_inputs(), where)
        outputs = _specs(session.get_outputs(), where)
        key = f"b{index}.{graph.role.value}"
        entry: dict[str, Any] = {"key": key, "bundle": bundle, "role": graph.role.value, "model": str(graph.path),
                                 "outputs": list(outputs)}
        if graph.role is GraphRole.ENCODER:
            _check_io(inputs, outputs, {"image": 4}, set(), where)
            image = inputs["image"]
            batch = _fixed(image, 0, where, DYNAMIC_BATCH)
            chw = tuple(_fixed(image, axis, where) for axis in (1, 2, 3))
            arrays[f"{key}/in/image"] = rng.uniform(0.0, 1.0, (ENCODER_CALLS, batch, *chw)).astype(image.dtype)
            entry.update(calls=ENCODER_CALLS, inputs=["image"], state={})
        else:
            rank = 3 if graph.role is GraphRole.WINDOW else 2
            _check_io(inputs, outputs, {"x": rank, "hidden": 2, "dt": rank}, {"y", "hidden_out"}, where)
            x, hidden = inputs["x"], inputs["hidden"]
            batch = _fixed(x, 0, where, DYNAMIC_BATCH)
            width = _fixed(x, rank - 1, where)
            window = _fixed(x, 1, where, graph.steps) if graph.role is GraphRole.WINDOW else 1
            calls = steps if graph.role is GraphRole.STEP else max(1, steps // window)
            needed = calls * window
            if sequence is None or sequence[0].shape[1:] != (batch, width):
                sequence = _draw_sequence(rng, max(steps, needed), batch, width)
            elif len(sequence[0]) < needed:
                more = _draw_sequence(rng, needed - len(sequence[0]), batch, width)
                sequence = (np.concatenate([sequence[0], more[0]]), np.concatenate([sequence[1], more[1]]))
            seq_x, seq_dt = (part[: calls * window] for part in sequence)
            if graph.role is GraphRole.WINDOW:  # [calls*T, B, .] -> [calls, B, T, .]
                seq_x = seq_x.reshape(calls, window, batch, width).transpose(0, 2, 1, 3)
                seq_dt = seq_dt.reshape(calls, window, batch, 1).transpose(0, 2, 1, 3)
            arrays[f"{key}/in/x"] = np.ascontiguousarray(seq_x, dtype=x.dtype)
            arrays[f"{key}/in/dt"] = np.ascontiguousarray(seq_dt, dtype=inputs["dt"].dtype)
            arrays[f"{key}/init/hidden"] = np.zeros((batch, _fixed(hidden, 1, where)), dtype=hidden.dtype)
            entry.update(calls=calls, inputs=["x", "dt"], state={"hidden": "hidden_out"})
        entries.append(entry)
    return entries, arrays


def record(bundle_dirs: Sequence[Path | str], work_dir: Path, *, steps: int, seed: int) -> dict[str, Any]:
    """Check the bundles, draw their inputs, run the x86 references and save all in ``work_dir``.

    Returns:
        The plan (also saved as ``plan.json``).

    Raises:
        ArmVerifyError: naming the bundle and graph that cannot be verified.
    """
    if not bundle_dirs:
        raise ArmVerifyError("No bundle given; pass at least one bundle folder.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ArmVerifyError(f"steps must be an integer >= 1, got {steps!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ArmVerifyError(f"seed must be an integer >= 0, got {seed!r}.")
    all_graphs = [read_bundle_graphs(folder) for folder in bundle_dirs]  # every folder checked first
    plan: dict[str, Any] = {"settings": {"steps": steps, "seed": seed, "dt_range_s": list(DT_RANGE_S)}, "graphs": []}
    arrays: dict[str, np.ndarray] = {}
    for index, (folder, graphs) in enumerate(zip(bundle_dirs, all_graphs)):
        entries, bundle_arrays = _record_bundle(index, graphs, str(folder), steps, seed)
        plan["graphs"].extend(entries)
        arrays.update(bundle_arrays)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / PLAN_NAME).write_text(json.dumps(plan, indent=2) + "\n")
    np.savez(work_dir / INPUTS_NAME, **arrays)
    try:
        reference = runner.run_plan(plan, arrays)
    except Exception as exc:  # onnxruntime's own errors, e.g. a shape mismatch inside the graph
        raise ArmVerifyError(f"The x86 reference run failed ({exc}); check the bundle's graphs.") from None
    np.savez(work_dir / REFERENCE_NAME, **reference)
    (work_dir / HOST_NAME).write_text(json.dumps(runner.platform_info()) + "\n")
    return plan
