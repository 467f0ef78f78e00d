"""The fused CfC rewrite used for export: the same function as the cell, in fewer graph nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from lnn_ros.cells import CfCCell, LTCCell
from lnn_ros.onnx_export import export_step_graph, verify_graphs
from lnn_ros.onnx_export.fuse import FusedCfC, for_export

CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "no_gate": {"mode": "no_gate"},
    "no_backbone": {"backbone_layers": 0},
    "two_silu_layers": {"backbone_layers": 2, "backbone_activation": "silu"},
    "lecun_dropout": {"backbone_layers": 2, "backbone_dropout": 0.2},
    "no_projection": {"proj_size": None},
}


def make_cell(**overrides: Any) -> CfCCell:
    torch.manual_seed(0)
    options: dict[str, Any] = {"backbone_units": 16, "backbone_layers": 1, "proj_size": 3, **overrides}
    return CfCCell(5, 12, **options).eval()


@pytest.mark.parametrize("case", CASES)
def test_fused_module_equals_the_cell(case: str) -> None:
    cell = make_cell(**CASES[case])
    fused = for_export(cell)
    assert isinstance(fused, FusedCfC)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(6, 5, generator=generator)
    hidden = torch.randn(6, 12, generator=generator)
    dt = torch.tensor([[0.01], [0.3], [0.0], [-0.2], [float("nan")], [2.0]])
    with torch.no_grad():
        want_y, want_h = cell(x, hidden, dt)
        got_y, got_h = fused(x, hidden, dt)
    np.testing.assert_allclose(got_h.numpy(), want_h.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(got_y.numpy(), want_y.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(got_h[2:5].numpy(), hidden[2:5].numpy())  # Δt <= 0 or NaN: state kept
    step_form = for_export(cell, zero_dt_rule=False)  # the step graph's form: the same for Δt > 0
    with torch.no_grad():
        step_y, step_h = step_form(x, hidden, dt)
    for row in (0, 1, 5):
        np.testing.assert_allclose(step_h[row].numpy(), want_h[row].numpy(), atol=1e-6, rtol=0)
        np.testing.assert_allclose(step_y[row].numpy(), want_y[row].numpy(), atol=1e-6, rtol=0)


def test_sparsity_mask_is_folded_into_the_heads() -> None:
    mask = np.random.default_rng(0).integers(0, 2, size=(16, 12))
    cell = make_cell(sparsity_mask=mask)
    x, hidden, dt = torch.randn(3, 5), torch.randn(3, 12), torch.full((3, 1), 0.05)
    with torch.no_grad():
        np.testing.assert_allclose(for_export(cell)(x, hidden, dt)[1].numpy(), cell(x, hidden, dt)[1].numpy(), atol=1e-6)


def test_pure_mode_and_other_cells_are_exported_as_they_are() -> None:
    pure = make_cell(mode="pure")
    assert for_export(pure) is pure
    ltc = LTCCell(3, 6)
    assert for_export(ltc) is ltc


def test_exported_step_graph_has_one_gemm_per_layer_and_passes_parity(tmp_path: Path) -> None:
    cell = make_cell()
    path = export_step_graph(cell, tmp_path / "step.onnx")
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    # backbone; the ff pair (one Tanh for both heads); the gates over [z·Δt, z, Δt]; [h', y] in one
    assert ops.count("Gemm") == 4
    assert ops.count("Tanh") == 2 and ops.count("Sigmoid") == 1  # [1 - σ, σ]
    assert "MatMul" not in ops and "Add" not in ops  # the halves are summed inside the last Gemm
    assert ops[-1] == "Split" and ops.count("Split") == 1  # [h', y] -> hidden_out, y: the engine binds it as one
    assert "Where" not in ops and "Greater" not in ops  # no Δt rule in the step graph: the engine never passes Δt <= 0
    # 12 nodes; onnxruntime fuses each Gemm + Tanh / Sigmoid (9), the engine drops the first Concat and the Split (7)
    assert len([op for op in ops if op != "Constant"]) <= 12, ops
    report = verify_graphs(cell, path)
    assert report.within_tolerance, report.summary()
