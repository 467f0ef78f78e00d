"""Evaluate recorded graph calls with onnxruntime's CPU execution provider.

Standalone on purpose: it imports only the standard library, numpy and onnxruntime, so the
emulated aarch64 Python runs it without lnn_ros installed. The x86 side imports the same
:func:`run_plan` for the reference outputs, so both sides evaluate the plan the same way.

Plan (JSON)::

    {"graphs": [{"key": "b0.step", "model": "/abs/step.onnx", "calls": 300,
                 "inputs": ["x", "dt"], "state": {"hidden": "hidden_out"},
                 "outputs": ["y", "hidden_out"]}, ...]}

Arrays (``inputs.npz``): ``KEY/in/NAME`` stacks the per-call inputs on axis 0,
``KEY/init/NAME`` is the first value of a state input. Call ``i`` feeds ``KEY/in/*[i]`` and
the state, then sets each state input to the output it maps to (a recurrent rollout that
feeds its own ``hidden_out`` back). Results: ``KEY/out/NAME`` stacked the same way.

Usage: ``python runner.py plan.json inputs.npz results.npz`` (writes ``results.json`` beside
``results.npz`` with the platform and library versions).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnxruntime as ort

PROVIDER = "CPUExecutionProvider"


def make_session(model: str) -> ort.InferenceSession:
    """A single-threaded CPU session (default graph optimisations), the same on both sides."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, sess_options=options, providers=[PROVIDER])


def run_graph(graph: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the calls of one plan entry; returns ``KEY/out/NAME`` arrays."""
    key = graph["key"]
    session = make_session(graph["model"])
    state = {name: arrays[f"{key}/init/{name}"] for name in graph["state"]}
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in graph["outputs"]}
    for call in range(int(graph["calls"])):
        feed = {name: arrays[f"{key}/in/{name}"][call] for name in graph["inputs"]}
        feed.update(state)
        values = session.run(list(graph["outputs"]), feed)
        for name, value in zip(graph["outputs"], values):
            outputs[name].append(value)
        named = dict(zip(graph["outputs"], values))
        state = {name: named[source] for name, source in graph["state"].items()}
    return {f"{key}/out/{name}": np.stack(values) for name, values in outputs.items()}


def run_plan(plan: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run every graph of ``plan`` on ``arrays``."""
    results: dict[str, np.ndarray] = {}
    for graph in plan["graphs"]:
        results.update(run_graph(graph, arrays))
    return results


def platform_info() -> dict[str, str]:
    """Machine, Python, numpy and onnxruntime of this process."""
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: runner.py PLAN.json INPUTS.npz RESULTS.npz", file=sys.stderr)
        return 2
    plan_path, inputs_path, results_path = argv
    started = time.perf_counter()
    with open(plan_path, encoding="utf-8") as handle:
        plan = json.load(handle)
    with np.load(inputs_path) as data:
        arrays = {name: data[name] for name in data.files}
    results = run_plan(plan, arrays)
    np.savez(results_path, **results)
    info = dict(platform_info(), run_s=round(time.perf_counter() - started, 3))
    info_path = results_path[: -len(".npz")] + ".json" if results_path.endswith(".npz") else results_path + ".json"
    with open(info_path, "w", encoding="utf-8") as handle:
        json.dump(info, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
