"""Steps computed ahead through the window graph: :class:`StepPlan` (used by :meth:`Engine.plan`).

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
"""Steps per onnxruntime call of :meth:`~lnn_ros.engine.Engine.run_steps` (16 to 48 cost the same per step)."""


class StepRun(NamedTuple):
    """What :meth:`~lnn_ros.engine.Engine.run_steps` did with K inputs that all stepped.

    ``outputs`` [K,O] (clamped as :meth:`~lnn_ros.engine.Engine.step` clamps them) and ``dt_s`` [K]
    (the raw Δt, before the clamp, as :meth:`~lnn_ros.engine.Engine.step` returns it) are new arrays.
    """

    outputs: np.ndarray
    dt_s: np.ndarray


class UnrolledSteps:
    """The bundle's step graph unrolled T times into one graph: T steps per onnxruntime call.

    Built in memory from the step graph's checked bytes (no export, no torch): copy ``k`` of every
    node reads ``x_k`` [1,F], ``dt_k`` [1,1] and the previous copy's state, and writes ``y_k`` [1,O]
    and ``h_k`` [1,H]; the weights are shared. Each copy is the step graph's own operators on the
    same inputs (less its Δt > 0 guard, which every step run here passes), so its outputs equal
    T step calls (bit for bit with onnxruntime's CPU kernels, tested), unlike the exported window
    graph, which is another graph checked to float rounding.
    With fewer nodes per step than the window graph and one bound call per T steps, it is what
    :meth:`~lnn_ros.engine.Engine.run_steps` runs. Inputs and outputs are bound once to rows of
    preallocated arrays (:attr:`x` [T,F], :attr:`dt` [T,1], :attr:`y` [T,O], :attr:`h` [T,H],
    :attr:`hidden` [1,H]); a run of n < T steps leaves the rest of the rows as they were (their
    outputs are not read; the state after step n is ``h[n - 1]``).

    Raises:
        ValueError: the step graph has control flow or not the step graph's inputs and outputs.
    """

    def __init__(self, step_graph: bytes, steps: int, open_graph: Callable[[bytes], ort.InferenceSession],
                 run_options: ort.RunOptions, sizes: tuple[int, int, int]) -> None:
        self.steps = steps
        features, state, outputs = sizes
        self.session = open_graph(unrolled_step_graph(step_graph, steps, sizes))
        self.x = np.zeros((steps, features), dtype=np.float32)
        self.dt = np.zeros((steps, 1), dtype=np.float32)
        self.y = np.zeros((steps, outputs), dtype=np.float32)
        self.h = np.zeros((steps, state), dtype=np.float32)
        self.hidden = np.zeros((1, state), dtype=np.float32)
        binding = self.session.io_binding()
        binding.bind_input("hidden", "cpu", 0, np.float32, [1, state], self.hidden.ctypes.data)
        for k in range(steps):
            binding.bind_input(f"x_{k}", "cpu", 0, np.float32, [1, features], self.x[k].ctypes.data)
            binding.bind_input(f"dt_{k}", "cpu", 0, np.float32, [1, 1], self.dt[k].ctypes.data)
            binding.bind_output(f"y_{k}", "cpu", 0, np.float32, [1, outputs], self.y[k].ctypes.data)
            binding.bind_output(f"h_{k}", "cpu", 0, np.float32, [1, state], self.h[k].ctypes.data)
        self._binding = binding  # kept alive with the call that uses it
        self._call = bound_call(self.session, binding, run_options)  # as the engine's step calls it

    def run(self, x: np.ndarray, dt: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Step ``x`` [K,F] (normalised) with ``dt`` [K] (clamped) from ``hidden`` [1,H], T steps per call.

        Returns the outputs [K,O] and the state after the last step [1,H] (new arrays).
        """
        count = len(x)
        steps = self.steps
        y = np.empty((count, self.y.shape[1]), dtype=np.float32)
        self.hidden[...] = hidden
        for start in range(0, count, steps):
            n = min(steps, count - start)
            self.x[:n] = x[start : start + n]
            self.dt[:n, 0] = dt[start : start + n]
            self._call()
            y[start : start + n] = self.y[:n]
            self.hidden[0] = self.h[n - 1]
        return y, self.hidden.copy()


def unrolled_step_graph(step_graph: bytes, steps: int, sizes: tuple[int, int, int]) -> bytes:
    """The serialised ONNX model of :class:`UnrolledSteps` (see there) from a step graph's bytes.

    Raises:
        ValueError: the step graph has control flow or not the step graph's inputs and outputs.
    """
    import onnx
    from onnx import helper

    model = onnx.load_from_string(step_graph)
    graph = model.graph
    if {i.name for i in graph.input} - {i.name for i in graph.initializer} != {"x", "hidden", "dt"} or {
        o.name for o in graph.output
    } != {"y", "hidden_out"}:
        raise ValueError("The step graph must have inputs x, hidden, dt and outputs y, hidden_out to be unrolled.")
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        raise ValueError("The step graph has control flow (a subgraph); it is not unrolled.")
    constants = {i.name for i in graph.initializer}
    step_nodes = _without_dt_guard(model)
    nodes = []
    for k in range(steps):
        names = {"x": f"x_{k}", "dt": f"dt_{k}", "hidden": "hidden" if k == 0 else f"h_{k - 1}",
                 "hidden_out": f"h_{k}", "y": f"y_{k}"}

        def rename(value: str, names: dict[str, str] = names, k: int = k) -> str:
            if not value or value in constants:
                return value
            return names.get(value, f"{value}__{k}")

        for node in step_nodes:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = f"{node.name}__{k}"
            copy.input[:] = [rename(v) for v in node.input]
            copy.output[:] = [rename(v) for v in node.output]
            nodes.append(copy)
    features, state, outputs = sizes
    f32 = onnx.TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("hidden", f32, [1, state])]
    inputs += [helper.make_tensor_value_info(f"x_{k}", f32, [1, features]) for k in range(steps)]
    inputs += [helper.make_tensor_value_info(f"dt_{k}", f32, [1, 1]) for k in range(steps)]
    results = [helper.make_tensor_value_info(f"y_{k}", f32, [1, outputs]) for k in range(steps)]
    results += [helper.make_tensor_value_info(f"h_{k}", f32, [1, state]) for k in range(steps)]
    unrolled = helper.make_model(
        helper.make_graph(nodes, "unrolled_step", inputs, results, initializer=list(graph.initializer)),
        opset_imports=list(model.opset_import),
    )
    unrolled.ir_version = model.ir_version
    data: bytes = unrolled.SerializeToString()
    return data


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
