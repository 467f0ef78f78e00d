"""Inference-only rewrites of a cell for export: the same function in fewer, larger operators.

onnxruntime pays a fixed cost per graph node on every call (about 0.25 µs on a desktop core,
more on a Jetson); a batch-1 CfC step is dominated by it, not by arithmetic. :func:`for_export`
returns a module computing what the cell computes with fewer nodes; cells it does not know
are exported as they are. For :class:`~lnn_ros.cells.CfCCell` in ``default`` / ``no_gate`` mode
(:class:`FusedCfC`):

* the four heads (``ff1``, ``ff2``, ``time_a``, ``time_b``) are one Gemm of width 4H followed by
  one Split, instead of four Gemms (the sparsity mask is multiplied into the weights);
* LeCun's tanh ``1.7159 · tanh(0.666 · x)`` loses its two Muls: 0.666 goes into the preceding
  Linear's weight and bias, 1.7159 into the following layer's weight;
* the gate ``f1 · (1 - σ) + σ · f2`` is computed as ``f1 + σ · (f2 - f1)`` (one node fewer);
* the Δt rule keeps its ``where(Δt > 0, update, hidden)`` but drops the division-safe Δt
  (only there for training gradients; in the forward pass the discarded branch may be
  anything, NaN included).

The graph changes rounding in the last bits only; every exported graph is still checked
against the original cell in PyTorch (:func:`~lnn_ros.onnx_export.verify.verify_graphs`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lnn_ros.cells import CfCCell, RecurrentCell
from lnn_ros.cells.cfc import CfCMode, LeCunTanh

_LECUN_INNER = 0.666
_LECUN_OUTER = 1.7159


class FusedCfC(nn.Module):
    """A :class:`~lnn_ros.cells.CfCCell` (``default`` or ``no_gate``) with fused heads; eval only.

    The weights are copied (detached) at construction: rebuild it after training further.
    """

    def __init__(self, cell: CfCCell) -> None:
        super().__init__()
        if cell.mode is CfCMode.PURE:
            raise ValueError("FusedCfC fuses the default and no_gate modes only; export a pure CfC as it is.")
        self.hidden_size = cell.state_size
        self.no_gate = cell.mode is CfCMode.NO_GATE
        layers: list[nn.Module] = []
        scale_in = 1.0  # carried into the next Linear's weight (LeCun's outer factor)
        with torch.no_grad():
            for module in cell.backbone or ():
                if isinstance(module, nn.Linear):
                    linear = nn.Linear(module.in_features, module.out_features)
                    linear.weight.copy_(module.weight * scale_in)
                    linear.bias.copy_(module.bias)
                    layers.append(linear)
                    scale_in = 1.0
                elif isinstance(module, LeCunTanh):
                    last = layers[-1]
                    assert isinstance(last, nn.Linear)
                    last.weight.mul_(_LECUN_INNER)
                    last.bias.mul_(_LECUN_INNER)
                    layers.append(nn.Tanh())
                    scale_in = _LECUN_OUTER
                elif isinstance(module, nn.Dropout):
                    continue  # identity in eval mode
                else:
                    layers.append(module)
            mask = cell.sparsity_mask
            weights: list[Tensor] = []
            biases: list[Tensor] = []
            for name in ("ff1", "ff2", "time_a", "time_b"):
                head: nn.Linear = getattr(cell, name)
                weight = head.weight * scale_in
                if mask is not None and name in ("ff1", "ff2"):
                    weight = weight * mask
                weights.append(weight)
                biases.append(head.bias)
            heads = nn.Linear(weights[0].shape[1], 4 * self.hidden_size)
            heads.weight.copy_(torch.cat(weights, 0))
            heads.bias.copy_(torch.cat(biases, 0))
        self.backbone = nn.Sequential(*layers) if layers else None
        self.heads = heads
        self.fc = cell.fc

    def forward(self, x: Tensor, hidden: Tensor, dt_s: Tensor) -> tuple[Tensor, Tensor]:
        z = torch.cat([x, hidden], 1)
        if self.backbone is not None:
            z = self.backbone(z)
        f1, f2, ta, tb = torch.split(self.heads(z), self.hidden_size, dim=1)
        f1 = torch.tanh(f1)
        f2 = torch.tanh(f2)
        sigma = torch.sigmoid(ta * dt_s + tb)
        update = f1 + sigma * f2 if self.no_gate else f1 + sigma * (f2 - f1)
        hidden_new = torch.where(dt_s > 0, update, hidden)
        return self.fc(hidden_new), hidden_new


def for_export(cell: RecurrentCell) -> nn.Module:
    """The module to trace for ``cell``'s step graph: a fused rewrite when one exists, else ``cell``."""
    if type(cell) is CfCCell and cell.mode is not CfCMode.PURE:
        return FusedCfC(cell).eval()
    return cell
