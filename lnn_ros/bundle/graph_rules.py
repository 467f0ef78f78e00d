"""What an ONNX graph of a bundle may contain, checked on the bytes before onnxruntime sees them.

* opset: the default ONNX domain at version <= :data:`~lnn_ros.bundle.manifest.MAX_OPSET`
  (the onboard onnxruntime builds run opset 17);
* operators: an allow-list, namely every operator of the standard ONNX domain that exists at
  that opset, minus control flow (``Loop``, ``Scan``, ``If``); no custom or contrib domains
  (``com.microsoft``) and no operator with a subgraph attribute, at any depth of a
  model-local function;
* no external data: every tensor's bytes are inside the ``.onnx`` file. Weights in a side
  file would not be covered by the bundle's hashes, and onnxruntime loads them from a path
  relative to the model (or the working directory when given bytes), i.e. from outside the
  bytes that were checked. The exporter never writes them (bundles are far below protobuf's
  2 GB limit), so refusing is simpler and safer than hashing them too.

onnxruntime cannot list a graph's nodes, so the ModelProto is parsed with the ``onnx``
package (protobuf). It is a base dependency; an install without it refuses every bundle
rather than skip the check (fail closed). It is imported only when a bundle is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from lnn_ros.bundle.errors import BundleError
from lnn_ros.bundle.manifest import MAX_OPSET

if TYPE_CHECKING:
    from onnx import FunctionProto, GraphProto, ModelProto, NodeProto, TensorProto

CONTROL_FLOW = frozenset({"Loop", "Scan", "If"})
DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


def _onnx() -> Any:
    try:
        import onnx
        import onnx.defs
    except ImportError as exc:
        raise BundleError(
            f"Checking a bundle's graphs needs the 'onnx' package, which cannot be imported ({exc}); "
            "install it with `pip install 'onnx>=1.16'` (onnxruntime alone cannot list a graph's operators)."
        ) from None
    return onnx


def parse_model(data: bytes, label: str) -> ModelProto:
    """``data`` as an ONNX ModelProto.

    Raises:
        BundleError: the bytes are not a protobuf ModelProto.
    """
    onnx = _onnx()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # google.protobuf DecodeError and friends
        raise BundleError(f"{label}: is not an ONNX model ({type(exc).__name__}: {exc}); re-export the bundle.") from None
    if not model.HasField("graph"):
        raise BundleError(f"{label}: is not an ONNX model (it holds no graph); re-export the bundle.")
    return model  # type: ignore[no-any-return]


def check_graph_rules(data: bytes, label: str, max_opset: int = MAX_OPSET) -> None:
    """Apply the rules of the module docstring to the ONNX bytes ``data``.

    Raises:
        BundleError: naming ``label`` and the rule broken.
    """
    onnx = _onnx()
    model = parse_model(data, label)
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    default = [version for domain, version in opsets.items() if domain in DEFAULT_DOMAINS]
    if not default:
        raise BundleError(f"{label}: imports no version of the standard ONNX operator set; re-export at opset {max_opset}.")
    if max(default) > max_opset:
        raise BundleError(
            f"{label}: uses ONNX opset {max(default)}, but bundles are limited to opset {max_opset} "
            f"(what the onboard onnxruntime builds run); re-export with opset_version={max_opset}."
        )
    functions = {(f.domain, f.name) for f in model.functions}
    for where, node in _nodes(model):
        domain = node.domain
        if (domain, node.op_type) in functions:
            continue  # a call of a model-local function; its body is walked too
        if domain not in DEFAULT_DOMAINS:
            raise BundleError(
                f"{label}: {where} uses operator {node.op_type!r} of domain {domain!r}; only standard ONNX operators "
                "are allowed (no custom or contrib operators)."
            )
        if node.op_type in CONTROL_FLOW:
            raise BundleError(
                f"{label}: {where} is a {node.op_type!r} node; control flow (Loop, Scan, If) is not allowed: "
                "unroll it at export (the CfC closed form and the LTC unfolds are plain operators)."
            )
        try:
            onnx.defs.get_schema(node.op_type, max_opset, "")
        except Exception:  # onnx.defs.SchemaError
            raise BundleError(
                f"{label}: {where} uses {node.op_type!r}, which is not a standard ONNX operator at opset {max_opset}."
            ) from None
        for attribute in node.attribute:
            if attribute.HasField("g") or len(attribute.graphs):
                raise BundleError(
                    f"{label}: {where} has a subgraph attribute {attribute.name!r}; graphs inside graphs are not allowed."
                )
    for where, tensor in _tensors(model):
        if tensor.data_location == _EXTERNAL or len(tensor.external_data):
            source = next((e.value for e in tensor.external_data if e.key == "location"), "?")
            raise BundleError(
                f"{label}: {where} {tensor.name!r} keeps its data in the external file {source!r}; external data "
                "is not allowed (it would escape the bundle's hashes): export with the weights inside the .onnx file."
            )


def _nodes(model: ModelProto) -> Iterator[tuple[str, NodeProto]]:
    for index, node in enumerate(model.graph.node):
        yield f"node {index} ({node.name or node.op_type})", node
    for function in model.functions:
        for index, node in enumerate(function.node):
            yield f"function {function.name!r} node {index} ({node.name or node.op_type})", node


def _tensors(model: ModelProto) -> Iterator[tuple[str, TensorProto]]:
    graph: GraphProto = model.graph
    for tensor in graph.initializer:
        yield "initializer", tensor
    for sparse in graph.sparse_initializer:
        yield "sparse initializer", sparse.values
        yield "sparse initializer indices of", sparse.indices
    bodies: list[tuple[str, Any]] = [("graph", graph.node)]
    bodies += [(f"function {f.name!r}", f.node) for f in _functions(model)]
    for where, nodes in bodies:
        for node in nodes:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield f"{where} constant", attribute.t
                for tensor in attribute.tensors:
                    yield f"{where} constant", tensor
                if attribute.HasField("sparse_tensor"):
                    yield f"{where} sparse constant", attribute.sparse_tensor.values


def _functions(model: ModelProto) -> list[FunctionProto]:
    return list(model.functions)
