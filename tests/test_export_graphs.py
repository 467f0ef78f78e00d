"""ONNX export of every cell: parity with PyTorch, no control flow, opset 17, dynamic batch, window = T steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from lnn_ros.cells import AutoNCP, CfCCell, RecurrentCell, build_cell
from lnn_ros.cells.cfc import CfCMode
from lnn_ros.onnx_export import (
    Exporter,
    ExportError,
    ParityReport,
    check_graph_file,
    export_encoder_graph,
    export_step_graph,
    export_window_graph,
    find_control_flow,
    verify_graphs,
)

TOLERANCE = 1e-5
WINDOW = 8
CELL_CONFIGS: dict[str, dict[str, Any]] = {
    "cfc_default": {"kind": "cfc", "input_size": 4, "hidden_size": 12, "backbone_units": 16, "proj_size": 2},
    "cfc_pure": {"kind": "cfc", "input_size": 4, "hidden_size": 12, "mode": "pure", "backbone_units": 16, "proj_size": 2},
    "cfc_no_gate": {"kind": "cfc", "input_size": 4, "hidden_size": 12, "mode": "no_gate", "backbone_layers": 0},
    "wired_cfc": {"kind": "wired_cfc", "input_size": 4, "wiring": AutoNCP(12, 2).to_config()},
    "ltc": {"kind": "ltc", "input_size": 4, "wiring": AutoNCP(10, 2).to_config()},
    "lstm": {"kind": "lstm", "input_size": 4, "units": 8, "output_size": 2},
    "gru": {"kind": "gru", "input_size": 4, "units": 8, "output_size": 2},
    "mlp": {"kind": "mlp", "input_size": 4, "output_size": 2, "hidden_units": 16},
    "stack_mlp": {"kind": "stack_mlp", "input_size": 4, "output_size": 2, "stack_size": 3, "stack_features": 2, "hidden_units": 16},
}


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: extra threads only spin
    yield
    torch.set_num_threads(previous)


class Exported:
    """One cell with its step and window graphs."""

    def __init__(self, name: str, folder: Path) -> None:
        torch.manual_seed(7)
        self.cell: RecurrentCell = build_cell(CELL_CONFIGS[name]).eval()
        self.step = export_step_graph(self.cell, folder / f"{name}_step.onnx")
        self.window = export_window_graph(self.cell, folder / f"{name}_window.onnx", WINDOW)


@pytest.fixture(scope="module", params=sorted(CELL_CONFIGS))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return Exported(request.param, tmp_path_factory.mktemp("graphs"))


def test_rollout_parity_with_pytorch(exported: Exported) -> None:
    report = verify_graphs(exported.cell, exported.step, window_path=exported.window, window_steps=WINDOW)
    assert report.steps == 200 and report.batch_sizes == (1, 3) and report.dt_range_s == (1e-4, 1.0)
    print(exported.cell.config()["kind"], report.summary())
    # Strict: every error, the 200-step rollouts included, within 1e-5 (no drift allowance).
    assert report.within_tolerance, report.summary()
    assert report.step_error <= TOLERANCE
    assert report.step_one_step_error <= TOLERANCE
    assert report.window_error is not None and report.window_error <= TOLERANCE
    assert report.window_vs_step_error is not None and report.window_vs_step_error <= TOLERANCE
    report.raise_if_failed()


def test_graphs_are_opset17_plain_ops_with_dynamic_batch(exported: Exported) -> None:
    for path in (exported.step, exported.window):
        model = check_graph_file(path)
        assert find_control_flow(model) == []
        assert not {"Loop", "Scan", "If"} & {node.op_type for node in model.graph.node}
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
        for value in (*model.graph.input, *model.graph.output):
            assert value.type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("batch", [1, 5])
def test_step_and_window_run_at_any_batch_size(exported: Exported, batch: int) -> None:
    generator = np.random.default_rng(batch)
    cell = exported.cell
    x = generator.standard_normal((batch, WINDOW, cell.input_size)).astype(np.float32)
    dt = np.exp(generator.uniform(np.log(1e-4), 0.0, (batch, WINDOW, 1))).astype(np.float32)
    hidden = generator.standard_normal((batch, cell.state_size)).astype(np.float32)
    step = ort.InferenceSession(str(exported.step), providers=["CPUExecutionProvider"])
    window = ort.InferenceSession(str(exported.window), providers=["CPUExecutionProvider"])

    y_window, h_window = window.run(None, {"x": x, "hidden": hidden, "dt": dt})
    assert y_window.shape == (batch, WINDOW, cell.output_size) and h_window.shape == (batch, cell.state_size)
    h_step, h_torch = hidden, torch.from_numpy(hidden)
    for t in range(WINDOW):  # the window graph equals T calls of the step graph, and torch
        y_step, h_step = step.run(None, {"x": x[:, t], "hidden": h_step, "dt": dt[:, t]})
        with torch.no_grad():
            y_torch, h_torch = cell(torch.from_numpy(x[:, t]), h_torch, torch.from_numpy(dt[:, t]))
        assert np.abs(y_window[:, t] - y_step).max() <= 1e-6
        assert np.abs(y_step - y_torch.numpy()).max() <= TOLERANCE
    assert np.abs(h_window - h_step).max() <= 1e-6
    assert np.abs(h_step - h_torch.numpy()).max() <= TOLERANCE


def test_zero_dt_keeps_the_state_in_the_window_graph(exported: Exported) -> None:
    """The window graph's padding steps rely on the Δt = 0 rule. The step graph is only defined
    for Δt > 0 (the engine drops the rest before the graph); the fused CfC's has no rule."""
    cell = exported.cell
    window = ort.InferenceSession(str(exported.window), providers=["CPUExecutionProvider"])
    hidden = np.random.default_rng(0).standard_normal((2, cell.state_size)).astype(np.float32)
    feeds = {"x": np.ones((2, WINDOW, cell.input_size), np.float32), "hidden": hidden, "dt": np.zeros((2, WINDOW, 1), np.float32)}
    _, hidden_out = window.run(None, feeds)
    np.testing.assert_array_equal(hidden_out, hidden)
    step = ort.InferenceSession(str(exported.step), providers=["CPUExecutionProvider"])
    _, step_hidden = step.run(None, {"x": feeds["x"][:, 0], "hidden": hidden, "dt": feeds["dt"][:, 0]})
    if type(cell) is CfCCell and cell.mode is not CfCMode.PURE:
        assert not np.array_equal(step_hidden, hidden)  # the fused step graph: a step of zero length
    else:  # the cells without an export rewrite keep the rule in the step graph too
        np.testing.assert_array_equal(step_hidden, hidden)


def test_encoder_graph_matches_torch(tmp_path: Path) -> None:
    from bundle_factory import TinyEncoder

    torch.manual_seed(0)
    encoder = TinyEncoder(3, 8)
    step_cell = build_cell(CELL_CONFIGS["mlp"])
    step = export_step_graph(step_cell, tmp_path / "step.onnx")
    path = export_encoder_graph(encoder, tmp_path / "encoder.onnx", (3, 24, 32))
    model = check_graph_file(path)
    assert [v.name for v in model.graph.input] == ["image"] and [v.name for v in model.graph.output] == ["embedding"]
    report = verify_graphs(step_cell, step, encoder=encoder, encoder_path=path)
    assert report.encoder_error is not None and report.encoder_error <= TOLERANCE


def test_encoder_must_output_a_flat_embedding(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"must map \[B,3,8,8\] to \[B,E\]"):
        export_encoder_graph(torch.nn.Conv2d(3, 4, 3), tmp_path / "bad.onnx", (3, 8, 8))


def test_check_graph_file_rejects_control_flow_and_other_opsets(tmp_path: Path) -> None:
    def tensor(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 1])

    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["b"])], "branch", [], [tensor("b")])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Cast", ["s"], ["c"], to=TensorProto.BOOL),
        helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch, name="the_if"),
    ]
    graph = helper.make_graph(nodes, "g", [tensor("x")], [tensor("y")])
    path = tmp_path / "if.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ExportError, match=r"control-flow nodes \['If:the_if'\]"):
        check_graph_file(path)

    plain = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [tensor("x")], [tensor("y")])
    onnx.save(helper.make_model(plain, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    with pytest.raises(ExportError, match="opset 18 but bundles must be opset 17"):
        check_graph_file(path)


def test_dynamo_exporter_gives_the_same_contract(tmp_path: Path) -> None:
    """The fallback exporter also writes opset-17, plain-op, dynamic-batch graphs that match torch."""
    torch.manual_seed(3)
    cell = build_cell(CELL_CONFIGS["cfc_default"])
    path = export_step_graph(cell, tmp_path / "step.onnx", exporter=Exporter.DYNAMO)
    model = check_graph_file(path)
    assert {p.key: p.value for p in model.metadata_props}["lnn_ros.exporter"] == "dynamo"
    report = verify_graphs(cell, path)
    assert report.within_tolerance, report.summary()


def test_parity_report_bounds() -> None:
    base = ParityReport(
        tolerance=1e-5,
        steps=200,
        batch_sizes=(1, 3),
        dt_range_s=(1e-4, 1.0),
        step_error=3e-5,
        step_one_step_error=2e-7,
        reference_drift=1e-5,
        window_error=2e-5,
        window_vs_step_error=0.0,
    )
    # Rollouts may drift like PyTorch float32 itself does (10x its drift from float64) ...
    assert base.passed and not base.within_tolerance and base.rollout_allowance == pytest.approx(1e-4)
    # ... but one step, window-vs-step and NaN never get that allowance.
    assert dataclasses.replace(base, step_one_step_error=2e-5).failures() == {"step_one_step": 2e-5}
    assert not dataclasses.replace(base, window_vs_step_error=2e-5).passed
    assert not dataclasses.replace(base, step_error=float("nan")).passed
    assert not dataclasses.replace(base, reference_drift=1e-7).passed  # 3e-5 > max(1e-5, 1e-6)
    with pytest.raises(ExportError, match="step 3.000e-05 > 1.0e-05"):
        dataclasses.replace(base, reference_drift=1e-7).raise_if_failed()
