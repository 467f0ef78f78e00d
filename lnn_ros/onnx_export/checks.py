"""Structural checks of an exported ONNX file: validity, opset, no control flow, dynamic batch.

The onboard runtimes (onnxruntime on a Jetson, TensorRT) run opset 17 and the engine feeds one
sample at a time while tests and offline evaluation feed batches, so every graph must have
a symbolic batch axis 0 on each input and output and a fixed size on every other axis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx

from lnn_ros.onnx_export.errors import ExportError

OPSET = 17
CONTROL_FLOW_OPS = frozenset({"Loop", "Scan", "If"})


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph``, including the nodes of subgraphs held in attributes."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _nodes(subgraph)


def find_control_flow(model: onnx.ModelProto) -> list[str]:
    """Names (``op_type:node_name``) of all Loop/Scan/If nodes in the graph and its local functions."""
    found = [f"{node.op_type}:{node.name}" for node in _nodes(model.graph) if node.op_type in CONTROL_FLOW_OPS]
    for function in model.functions:
        found += [f"{node.op_type}:{function.name}/{node.name}" for node in function.node if node.op_type in CONTROL_FLOW_OPS]
    return found


def _default_opset(model: onnx.ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return None


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in value.type.tensor_type.shape.dim]


def check_graph_file(path: Path, *, dynamic_batch: bool = True) -> onnx.ModelProto:
    """Validate an exported graph and return it.

    Runs ``onnx.checker.check_model(full_check=True)`` (which includes strict shape inference),
    then checks that the default-domain opset is 17, that there is no Loop/Scan/If node, that
    every input and output is float32 and (with ``dynamic_batch``) that axis 0 of each is a
    named symbolic dimension and every other axis a fixed size.

    Args:
        path: The ``.onnx`` file.
        dynamic_batch: Require the symbolic batch axis described above.

    Raises:
        ExportError: naming the file and the rule it breaks.
    """
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises ValidationError, InferenceError, DecodeError, OSError
        raise ExportError(f"{path}: onnx.checker rejected the graph ({exc}).") from None
    opset = _default_opset(model)
    if opset != OPSET:
        raise ExportError(f"{path}: the graph uses ai.onnx opset {opset!r} but bundles must be opset {OPSET}.")
    control_flow = find_control_flow(model)
    if control_flow:
        raise ExportError(
            f"{path}: the graph has control-flow nodes {control_flow!r}; bundles must be plain ops "
            "(unroll Python loops over fixed counts and replace data-dependent branches by where())."
        )
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
                element = onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type)
                raise ExportError(f"{path}: {kind} {value.name!r} is {element} but must be FLOAT (float32).")
            dims = _dims(value)
            if not dynamic_batch:
                continue
            if not dims or not isinstance(dims[0], str) or not dims[0]:
                raise ExportError(f"{path}: {kind} {value.name!r} has shape {dims!r}; axis 0 must be a symbolic batch axis.")
            if any(not isinstance(d, int) or d < 1 for d in dims[1:]):
                raise ExportError(f"{path}: {kind} {value.name!r} has shape {dims!r}; only axis 0 may be symbolic.")
    return model
