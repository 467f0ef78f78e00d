"""The step graph with ``x`` and ``hidden`` read from one buffer: one graph node and one bound input fewer per step.

A CfC step graph starts with ``Concat([x, hidden], axis=1)``: onnxruntime copies both inputs
into a new ``[1, F + H]`` tensor on every call. When that Concat is the only use of ``x`` and
``hidden``, :func:`fused_input_graph` rewrites the graph to take ``xh = [x, hidden]`` as one
input and feeds the Concat's users from it directly. The engine then keeps the normalised input
and the state side by side in one buffer per io-binding (the state written by one call lands
right after the input row of the next), so nothing is copied: about 0.5-0.8 µs of a 10 µs step
on this project's x86 machine (the Concat node and the second bound input). The arithmetic is
the same operators on the same values; the engine checks the rewritten graph against the
bundle's on one random input at load and keeps the bundle's graph if they differ at all.

A step graph exported before the Δt rule left the step graph (the bundles shipped in
``models/``) ends with ``Where(Greater(dt, 0), new, hidden)``, a second use of ``hidden``; the
engine never calls the step graph with Δt <= 0, where the guard always selects ``new`` (and
``Where`` copies it exactly), so the guard is folded away first
(:func:`lnn_ros.engine.plan._without_dt_guard`, the same fold as the replay's unrolled steps).

A step graph that ends in ``Split(hy, [H, O]) -> (hidden_out, y)`` (the CfC step graphs
exported since ``FusedCfC`` computes ``[h', y]`` with one Gemm, :mod:`lnn_ros.onnx_export.fuse`)
loses that Split too: the graph's one output is ``hy = [hidden_out, y]``, which the engine binds
right after the input row of the buffer of the next call, so one buffer per binding is laid out
``[x | hidden | y]`` and neither the state nor the output is ever copied (the Split was about
0.5 µs of a 9 µs step, ``lnn-ros bench``).

The bundle's own graph is what is verified, hashed and shipped; this is an in-memory rewrite of
it, like onnxruntime's own graph optimisations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

FUSED_INPUT = "xh"
FUSED_OUTPUT = "hy"


def fused_input_graph(step_graph: bytes) -> bytes | None:
    """The serialised step graph taking ``xh = [x, hidden]`` (float32 ``[B, F + H]``) instead of
    ``x`` and ``hidden``, or None when the graph does not have the pattern (then it is used as it is).
    When it also ends in the Split of :func:`_fuse_output`, its one output is ``hy = [hidden_out, y]``
    (float32 ``[B, H + O]``) instead of ``y`` and ``hidden_out``.

    The pattern: exactly one node uses ``x`` or ``hidden`` once a ``Δt > 0`` guard is folded
    away, a ``Concat`` of exactly ``(x, hidden)`` on axis 1 (or -1), and neither is a graph output.
    """
    import onnx
    from onnx import helper

    from lnn_ros.engine.plan import _without_dt_guard

    model = onnx.load_from_string(step_graph)
    graph = model.graph
    nodes = _without_dt_guard(model)
    del graph.node[:]
    graph.node.extend(nodes)
    inputs = {i.name: i for i in graph.input}
    if "x" not in inputs or "hidden" not in inputs or {"x", "hidden"} & {o.name for o in graph.output}:
        return None
    users = [n for n in graph.node if {"x", "hidden"} & set(n.input)]
    if len(users) != 1:
        return None
    concat = users[0]
    axis = next((a.i for a in concat.attribute if a.name == "axis"), None)
    if concat.op_type != "Concat" or list(concat.input) != ["x", "hidden"] or axis not in (1, -1):
        return None
    dims_x = inputs["x"].type.tensor_type.shape.dim
    dims_h = inputs["hidden"].type.tensor_type.shape.dim
    if len(dims_x) != 2 or len(dims_h) != 2 or not dims_x[1].dim_value or not dims_h[1].dim_value:
        return None
    batch = dims_x[0].dim_param or dims_x[0].dim_value or "batch"
    joined = concat.output[0]
    graph.node.remove(concat)
    for node in graph.node:
        node.input[:] = [FUSED_INPUT if name == joined else name for name in node.input]
    for output in graph.output:
        if output.name == joined:  # the Concat was an output too: not the step graph's shape
            return None
    kept = [i for i in graph.input if i.name not in ("x", "hidden")]
    xh = helper.make_tensor_value_info(
        FUSED_INPUT, onnx.TensorProto.FLOAT, [batch, dims_x[1].dim_value + dims_h[1].dim_value]
    )
    del graph.input[:]
    graph.input.extend([xh, *kept])
    _fuse_output(graph, batch)
    data: bytes = model.SerializeToString()
    return data


def _fuse_output(graph: onnx.GraphProto, batch: str | int) -> None:
    """Replace a final ``Split(hy, [H, O], axis=1) -> (hidden_out, y)`` by the graph output ``hy``
    (``[B, H + O]``); any other ending is left as it is. Only when ``hy`` has no other use."""
    import onnx
    from onnx import helper, numpy_helper

    outputs = {o.name: o for o in graph.output}
    if set(outputs) != {"hidden_out", "y"}:
        return
    split = next((n for n in graph.node if "hidden_out" in n.output), None)
    if split is None or split.op_type != "Split" or list(split.output) != ["hidden_out", "y"] or len(split.input) != 2:
        return
    axis = next((a.i for a in split.attribute if a.name == "axis"), 0)
    sizes_node = next((n for n in graph.node if split.input[1] in n.output), None)
    if axis not in (1, -1) or sizes_node is None or sizes_node.op_type != "Constant":
        return
    widths = [_width(outputs["hidden_out"]), _width(outputs["y"])]
    value = next((a.t for a in sizes_node.attribute if a.name == "value"), None)
    if value is None or numpy_helper.to_array(value).tolist() != widths or 0 in widths:
        return
    joined = split.input[0]
    if sum(joined in n.input for n in graph.node) != 1:  # the Split is its only user
        return
    graph.node.remove(split)
    if not any(split.input[1] in n.input for n in graph.node):
        graph.node.remove(sizes_node)
    for node in graph.node:
        node.output[:] = [FUSED_OUTPUT if name == joined else name for name in node.output]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(FUSED_OUTPUT, onnx.TensorProto.FLOAT, [batch, sum(widths)]))


def _width(value: onnx.ValueInfoProto) -> int:
    dims = value.type.tensor_type.shape.dim
    return dims[1].dim_value if len(dims) == 2 else 0
