"""Steps computed ahead: through the window graph (:class:`StepPlan`, used by :meth:`Engine.plan`) and
through the step graph unrolled T times (:class:`UnrolledSteps`, used by :meth:`Engine.run_steps`).

A window graph runs T steps per onnxruntime call. Offline (a bag replay) the inputs of the next
steps are known before the steps are taken, so runs of them can go through it; each planned
step keeps its stamp, its normalised input and its output, and the engine takes a planned
output only for a call with the same stamp and the same input, in order. The hidden state is
known only at the end of each window call; a plan dropped in the middle of a window recomputes
the state of its consumed prefix with one more window call (the unused steps get Δt = 0, which
keeps the state: the Δt rule of every cell).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import onnxruntime as ort

from lnn_ros.engine.session import bound_call

if TYPE_CHECKING:
    import onnx


class WindowRunner:
    """Runs a window graph (``x [1,T,F], hidden [1,H], dt [1,T,1] -> y [1,T,O], hidden_out [1,H]``)."""

    def __init__(self, session: ort.InferenceSession, steps: int) -> None:
        self.session = session
        self.steps = steps

    def run(self, x: np.ndarray, dt: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x`` [n,F] and ``dt`` [n] with n <= T (padded with Δt = 0), ``hidden`` [1,H]; returns y [n,O], hidden [1,H]."""
        count = len(x)
        steps = self.steps
        x_in = np.zeros((1, steps, x.shape[1]), dtype=np.float32)
        dt_in = np.zeros((1, steps, 1), dtype=np.float32)
        x_in[0, :count] = x
        dt_in[0, :count, 0] = dt
        y, hidden_out = self.session.run(None, {"x": x_in, "hidden": hidden, "dt": dt_in})
        return y[0, :count], hidden_out


class StepPlan:
    """Planned steps: stamps, normalised inputs [K,F], Δt [K] (clamped), outputs [K,O], window by window.

    Args:
        window: the window graph.
        stamps_ns: the K stamps, in order.
        x: the K normalised inputs.
        dt: the K Δt values (seconds, clamped as the engine clamps them).
        hidden: the state before the first step [1,H] (copied).
    """

    def __init__(
        self, window: WindowRunner, stamps_ns: list[int], x: np.ndarray, dt: np.ndarray, hidden: np.ndarray
    ) -> None:
        self.window = window
        self.stamps_ns = stamps_ns
        self.x = x
        self.dt = dt
        self.index = 0
        steps = window.steps
        self._starts = [hidden.copy()]  # the state before each window
        outputs = []
        for start in range(0, len(stamps_ns), steps):
            y, state = window.run(x[start : start + steps], dt[start : start + steps], self._starts[-1])
            outputs.append(y)
            self._starts.append(state)
        self.y = np.concatenate(outputs)
        self._rows = [row.tobytes() for row in x]

    @property
    def exhausted(self) -> bool:
        return self.index >= len(self.stamps_ns)

    def take(self, stamp_ns: int, x: np.ndarray, y: np.ndarray, hidden: np.ndarray) -> bool:
        """If the next planned step has this stamp and input ``x`` [F], write its output into ``y``
        [1,O] (and, at the end of a window, the state into ``hidden`` [1,H]) and return True."""
        index = self.index
        if index >= len(self.stamps_ns) or stamp_ns != self.stamps_ns[index] or x.tobytes() != self._rows[index]:
            return False
        y[0] = self.y[index]
        index += 1
        self.index = index
        steps = self.window.steps
        if index % steps == 0 or index == len(self.stamps_ns):
            hidden[...] = self._starts[(index + steps - 1) // steps]
        return True

    def settle(self, hidden: np.ndarray) -> None:
        """Write into ``hidden`` [1,H] the state after the consumed steps (untouched if none were)."""
        index = self.index
        steps = self.window.steps
        if index == 0 or index % steps == 0 or index == len(self.stamps_ns):
            return  # nothing consumed, or take() already wrote the state at the window's end
        start = index - index % steps
        _, state = self.window.run(self.x[start:index], self.dt[start:index], self._starts[start // steps])
        hidden[...] = state


UNROLLED_STEPS = 16
"""Steps per onnxruntime call of :meth:`~lnn_ros.engine.Engine.run_steps` (16 to 200 cost the same per step
computed; a longer unrolling computes more steps in vain at the end of a run)."""

FACTORED = True
"""Whether :class:`UnrolledSteps` runs the first layer's input share and the readout once over the T
rows (see there); False: every copy is the step graph's own operators, bit for bit equal to step calls."""


class StepRun(NamedTuple):
    """What :meth:`~lnn_ros.engine.Engine.run_steps` did with K inputs that all stepped.

    ``outputs`` [K,O] (clamped as :meth:`~lnn_ros.engine.Engine.step` clamps them) and ``dt_s`` [K]
    (the raw Δt, before the clamp, as :meth:`~lnn_ros.engine.Engine.step` returns it) are new arrays.
    """

    outputs: np.ndarray
    dt_s: np.ndarray


class UnrolledSteps:
    """The bundle's step graph unrolled T times into one graph: T steps per onnxruntime call.

    Built in memory from the step graph's checked bytes (no export, no torch), see
    :func:`unrolled_step_graph`: copy ``k`` of the step's nodes reads row ``k`` of ``x`` [T,F],
    ``dt_k`` [1,1] and the previous copy's state; the weights are shared. Each copy is the step
    graph's own operators on the same inputs (less its Δt > 0 guard, which every step run here
    passes), except where the graph has the recognised shapes that go faster as one operator
    over all T rows: the input's share of the first layer (``Gemm(Concat(x, hidden))``) and the
    readout (``y = Gemm(hidden_out)``). The readout's rows come out with the same bits as one step's
    (tested); the first layer adds the same products in another order (``(x W_x + b) + h W_h``), so
    the outputs equal T step calls to float rounding (a few 1e-7 on the shipped CfC bundles, tested
    to 1e-6). With ``factored`` False (default: :data:`FACTORED`) every copy is the step graph's
    own, bit for bit equal to step calls (tested).
    With fewer nodes per step than the window graph and one bound call per T steps, it is what
    :meth:`~lnn_ros.engine.Engine.run_steps` runs. Inputs and outputs are bound once to
    preallocated arrays (:attr:`x` [T,F], rows of :attr:`dt` [T,1], :attr:`y` [T,O], :attr:`h`
    [T,H], :attr:`hidden` [1,H]); a run of n < T steps leaves the rest of the rows as they were
    (their outputs are not read; the state after step n is ``h[n - 1]``).

    Raises:
        ValueError: the step graph has control flow or not the step graph's inputs and outputs.
    """

    def __init__(self, step_graph: bytes, steps: int, open_graph: Callable[[bytes], ort.InferenceSession],
                 run_options: ort.RunOptions, sizes: tuple[int, int, int], factored: bool | None = None) -> None:
        self.steps = steps
        features, state, outputs = sizes
        self.factored = FACTORED if factored is None else factored
        self.session = open_graph(unrolled_step_graph(step_graph, steps, sizes, self.factored))
        self.x = np.zeros((steps, features), dtype=np.float32)
        self.dt = np.zeros((steps, 1), dtype=np.float32)
        self.y = np.zeros((steps, outputs), dtype=np.float32)
        self.h = np.zeros((steps, state), dtype=np.float32)
        self.hidden = np.zeros((1, state), dtype=np.float32)
        binding = self.session.io_binding()
        binding.bind_input("hidden", "cpu", 0, np.float32, [1, state], self.hidden.ctypes.data)
        binding.bind_input("x", "cpu", 0, np.float32, [steps, features], self.x.ctypes.data)
        for k in range(steps):
            binding.bind_input(f"dt_{k}", "cpu", 0, np.float32, [1, 1], self.dt[k].ctypes.data)
        binding.bind_output("y", "cpu", 0, np.float32, [steps, outputs], self.y.ctypes.data)
        binding.bind_output("h", "cpu", 0, np.float32, [steps, state], self.h.ctypes.data)
        self._binding = binding  # kept alive with the call that uses it
        self._call = bound_call(self.session, binding, run_options)  # as the engine's step calls it

    def run(self, x: np.ndarray, dt: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Step ``x`` [K,F] (normalised) with ``dt`` [K] (clamped) from ``hidden`` [1,H], T steps per call.

        Returns the outputs [K,O] and the state after the last step [1,H] (new arrays).
        """
        count = len(x)
        steps = self.steps
        y = np.empty((count, self.y.shape[1]), dtype=np.float32)
        x_in, dt_in, y_out, h_out, state = self.x, self.dt[:, 0], self.y, self.h, self.hidden
        state[...] = hidden
        call = self._call
        for start in range(0, count, steps):
            stop = min(start + steps, count)
            n = stop - start
            x_in[:n] = x[start:stop]
            dt_in[:n] = dt[start:stop]
            call()
            y[start:stop] = y_out[:n]
            state[0] = h_out[n - 1]
        return y, state.copy()


_X_PART, _H_PART, _X_PROJECTED = "unrolled.x_weight", "unrolled.hidden_weight", "unrolled.x_projected"


def unrolled_step_graph(step_graph: bytes, steps: int, sizes: tuple[int, int, int], factored: bool = True) -> bytes:
    """The serialised ONNX model of :class:`UnrolledSteps` (see there) from a step graph's bytes.

    Inputs ``x`` [T,F], ``hidden`` [1,H], ``dt_0`` ... ``dt_{T-1}`` [1,1]; outputs ``y`` [T,O] and
    ``h`` [T,H] (the state after each step). ``factored``: the first layer's input share and the
    readout as one operator over the T rows where the graph has their shapes (see
    :func:`_first_layer`, :func:`_readout`).

    Raises:
        ValueError: the step graph has control flow or not the step graph's inputs and outputs.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(step_graph)
    graph = model.graph
    if {i.name for i in graph.input} - {i.name for i in graph.initializer} != {"x", "hidden", "dt"} or {
        o.name for o in graph.output
    } != {"y", "hidden_out"}:
        raise ValueError("The step graph must have inputs x, hidden, dt and outputs y, hidden_out to be unrolled.")
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        raise ValueError("The step graph has control flow (a subgraph); it is not unrolled.")
    features, state, outputs = sizes
    weights = {i.name: i for i in graph.initializer}
    step_nodes = _without_dt_guard(model)
    initializers = list(graph.initializer)
    nodes: list[onnx.NodeProto] = []
    first = _first_layer(step_nodes, weights, features) if factored else None
    readout = _readout(step_nodes, weights) if factored else None
    if first is not None:  # x [T,F] @ W_x + b for all T rows at once; each step adds hidden @ W_h to its row
        gemm = step_nodes[first[1]]
        weight = numpy_helper.to_array(weights[gemm.input[1]])
        transposed = _attribute(gemm, "transB", 0) == 1
        x_part, h_part = (weight[:, :features], weight[:, features:]) if transposed else (weight[:features], weight[features:])
        initializers += [numpy_helper.from_array(np.ascontiguousarray(x_part), _X_PART),
                         numpy_helper.from_array(np.ascontiguousarray(h_part), _H_PART)]
        nodes.append(helper.make_node("Gemm", ["x", _X_PART, gemm.input[2]], [_X_PROJECTED], transB=int(transposed)))
        nodes.append(helper.make_node("Split", [_X_PROJECTED], [f"{_X_PROJECTED}_{k}" for k in range(steps)], axis=0))
        skipped = {first[0]}
    else:
        nodes.append(helper.make_node("Split", ["x"], [f"x_{k}" for k in range(steps)], axis=0))
        skipped = set()
    if readout is not None:
        skipped.add(readout)
    constants = {i.name for i in initializers}
    for k in range(steps):
        names = {"x": f"x_{k}", "dt": f"dt_{k}", "hidden": "hidden" if k == 0 else f"h_{k - 1}",
                 "hidden_out": f"h_{k}", "y": f"y_{k}"}

        def rename(value: str, names: dict[str, str] = names, k: int = k) -> str:
            if not value or value in constants:
                return value
            return names.get(value, f"{value}__{k}")

        for index, node in enumerate(step_nodes):
            if index in skipped:
                continue
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = f"{node.name}__{k}"
            if first is not None and index == first[1]:
                copy.input[:] = [rename("hidden"), _H_PART, f"{_X_PROJECTED}_{k}"]
            else:
                copy.input[:] = [rename(v) for v in node.input]
            copy.output[:] = [rename(v) for v in node.output]
            nodes.append(copy)
    nodes.append(helper.make_node("Concat", [f"h_{k}" for k in range(steps)], ["h"], axis=0))
    if readout is not None:
        fc = onnx.NodeProto()
        fc.CopyFrom(step_nodes[readout])
        fc.input[0], fc.output[0] = "h", "y"
        nodes.append(fc)
    else:
        nodes.append(helper.make_node("Concat", [f"y_{k}" for k in range(steps)], ["y"], axis=0))
    used = {name for node in nodes for name in node.input}
    initializers = [i for i in initializers if i.name in used]  # the whole first-layer weight, once cut in two
    f32 = onnx.TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("hidden", f32, [1, state]), helper.make_tensor_value_info("x", f32, [steps, features])]
    inputs += [helper.make_tensor_value_info(f"dt_{k}", f32, [1, 1]) for k in range(steps)]
    results = [helper.make_tensor_value_info("y", f32, [steps, outputs]), helper.make_tensor_value_info("h", f32, [steps, state])]
    unrolled = helper.make_model(
        helper.make_graph(nodes, "unrolled_step", inputs, results, initializer=initializers),
        opset_imports=list(model.opset_import),
    )
    unrolled.ir_version = model.ir_version
    data: bytes = unrolled.SerializeToString()
    return data


def _attribute(node: onnx.NodeProto, name: str, default: float) -> float:
    """The node's float or int attribute ``name`` (``default`` if it has none)."""
    for attribute in node.attribute:
        if attribute.name == name:
            return float(attribute.f if attribute.type == attribute.FLOAT else attribute.i)
    return default


def _plain_gemm(node: onnx.NodeProto, weights: dict[str, onnx.TensorProto]) -> bool:
    """A ``Gemm(A, W, b)`` with constant W (2-D) and b, no transposed A, alpha = beta = 1."""
    return (
        node.op_type == "Gemm"
        and len(node.input) == 3
        and node.input[1] in weights
        and node.input[2] in weights
        and len(weights[node.input[1]].dims) == 2
        and _attribute(node, "transA", 0) == 0
        and _attribute(node, "alpha", 1.0) == 1.0
        and _attribute(node, "beta", 1.0) == 1.0
    )


def _first_layer(nodes: list[onnx.NodeProto], weights: dict[str, onnx.TensorProto], features: int) -> tuple[int, int] | None:
    """The indices of ``Concat(x, hidden)`` (axis 1) and of the plain Gemm that alone reads it, if so.

    ``Gemm(Concat(x, h), W, b)`` = ``(x W_x + b) + h W_h`` with W cut after the F input rows (to
    float rounding: the products are added in another order); the x share of all T steps is one
    Gemm, each step's Gemm adds ``h W_h`` to its row.
    """
    for index, node in enumerate(nodes):
        if node.op_type != "Concat" or list(node.input) != ["x", "hidden"] or _attribute(node, "axis", 0) not in (1, -1):
            continue
        users = [i for i, n in enumerate(nodes) if node.output[0] in n.input]
        if len(users) != 1:
            return None
        gemm = nodes[users[0]]
        if not _plain_gemm(gemm, weights) or gemm.input[0] != node.output[0] or node.output[0] == "hidden_out":
            return None
        dims = list(weights[gemm.input[1]].dims)
        if dims[1 if _attribute(gemm, "transB", 0) == 1 else 0] <= features:
            return None
        return index, users[0]
    return None


def _readout(nodes: list[onnx.NodeProto], weights: dict[str, onnx.TensorProto]) -> int | None:
    """The index of ``y = Gemm(hidden_out, W, b)`` (plain), which can run once over the T states, if so."""
    if any("y" in node.input for node in nodes):
        return None
    for index, node in enumerate(nodes):
        if node.output[:1] == ["y"]:
            return index if _plain_gemm(node, weights) and node.input[0] == "hidden_out" else None
    return None


def _without_dt_guard(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The step graph's nodes without its ``Δt > 0`` guard: ``Where(Greater(dt, 0), new, hidden)`` becomes ``new``.

    The guard keeps the state for Δt = 0; :meth:`~lnn_ros.engine.Engine.run_steps` only runs
    steps with Δt > 0, where the guard always selects ``new`` (exactly: ``Where`` copies it).
    Taken only when the pattern is exact: ``Greater``'s inputs are the graph input ``dt`` and a
    constant 0, and ``new`` has the ``Where`` output's shape (so no broadcast is lost). Any other
    graph keeps its nodes.
    """
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    zeros = {i.name for i in graph.initializer if not numpy_helper.to_array(i).any() and numpy_helper.to_array(i).size == 1}
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            value = numpy_helper.to_array(node.attribute[0].t)
            if value.size == 1 and not value.any():
                zeros.add(node.output[0])
    guards = {n.output[0] for n in graph.node if n.op_type == "Greater" and list(n.input)[:1] == ["dt"] and n.input[1] in zeros}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # no shapes, no fold
        return list(graph.node)
    shapes = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
              for v in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input)}
    renames: dict[str, str] = {}
    dropped: set[int] = set()
    for index, node in enumerate(graph.node):
        if node.op_type == "Where" and node.input[0] in guards:
            new, out = node.input[1], node.output[0]
            if new not in shapes or shapes.get(new) != shapes.get(out) or new in {i.name for i in graph.input}:
                return list(graph.node)
            renames[new] = out
            dropped.add(index)
    used = {v for i, n in enumerate(graph.node) if i not in dropped for v in n.input}
    nodes = []
    for index, node in enumerate(graph.node):
        if index in dropped or (node.op_type == "Greater" and node.output[0] in guards and node.output[0] not in used):
            continue
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [renames.get(v, v) for v in node.input]
        copy.output[:] = [renames.get(v, v) for v in node.output]
        nodes.append(copy)
    return nodes
