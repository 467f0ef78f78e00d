"""Inference-only rewrites of a cell for export: the same function in fewer, larger operators.

onnxruntime pays a fixed cost per graph node on every call (about 0.25 µs on a desktop core,
more on a Jetson); a batch-1 CfC step is dominated by it, not by arithmetic. :func:`for_export`
returns a module computing what the cell computes with fewer nodes; cells it does not know
are exported as they are. For :class:`~lnn_ros.cells.CfCCell` in ``default`` / ``no_gate`` mode
(:class:`FusedCfC`):

* the heads are one Gemm followed by one Split, instead of four Gemms (the sparsity mask is
  multiplied into the weights);
* LeCun's tanh ``1.7159 · tanh(0.666 · x)`` loses its two Muls: 0.666 goes into the preceding
  Linear's weight and bias, 1.7159 into the following layer's weight;
* ``default`` mode: the gate ``f1 · (1 - σ) + σ · f2`` is computed on pairs of width 2H. The one
  Gemm (width 6H) gives ``[ff1, ff2]``, ``[-time_a, time_a]`` and ``[-time_b, time_b]``; one
  Sigmoid of ``[-u, u]`` (``u = time_a · Δt + time_b``) is ``[1 - σ, σ]`` (σ(-u) = 1 - σ(u)), one
  Tanh covers both ff heads, one Mul weighs them, and one MatMul with ``[I; I]`` adds the two
  halves: 8 nodes between the backbone and the Δt rule instead of 10 (about 0.7 µs per step on
  this project's x86 machine, ``lnn-ros bench``). That is the window graph's form;
* ``default`` mode, step graph (no Δt rule): no Split of the heads. ``tanh(pair)`` is one Gemm
  and a Tanh, and the gates ``[1 - σ, σ]`` are one Gemm and a Sigmoid over ``[z · Δt, z, Δt]``
  (``u = time_a · Δt + time_b`` with ``time_a``'s bias in the Δt column); onnxruntime runs each
  Gemm + activation as one ``FusedGemm``. The last Gemm gives ``[h', y]`` at once (weights
  ``[S, S Wfcᵀ]``, ``S`` adding the two halves), split into ``hidden_out`` and ``y``; the engine
  drops that Split and binds ``[h', y]`` as one buffer (:mod:`lnn_ros.engine.fused_input`).
  7 nodes run per step instead of 10: the engine's step 9.3 → 7.6 µs (``lnn-ros bench``);
* ``no_gate`` mode: ``f1 + σ · f2`` on four heads of width H;
* the Δt rule: the window graph keeps ``where(Δt > 0, update, hidden)`` (its padding steps
  have Δt = 0) but drops the division-safe Δt (only there for training gradients; in the
  forward pass the discarded branch may be anything, NaN included). The *step* graph has no
  Δt rule at all (``zero_dt_rule=False``): the engine calls it only with 0 < Δt <= ``dt.max_s``
  (the stamp rule drops a duplicate or earlier stamp before the graph, :mod:`lnn_ros.engine.clock`),
  so the ``Greater`` and ``Where`` nodes only cost time, about 0.8 µs per call on this
  project's x86 machine. A step graph of this kind fed Δt = 0 does a step of zero length,
  not the identity (``docs/bundle.md``).

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
    ``zero_dt_rule=False`` leaves out the Δt rule (Δt <= 0 keeps the state): the step graph's
    form, for a caller that never passes Δt <= 0.
    """

    sum_halves: Tensor

    def __init__(self, cell: CfCCell, *, zero_dt_rule: bool = True) -> None:
        super().__init__()
        self.zero_dt_rule = zero_dt_rule
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
            weights: dict[str, Tensor] = {}
            biases: dict[str, Tensor] = {}
            for name in ("ff1", "ff2", "time_a", "time_b"):
                head: nn.Linear = getattr(cell, name)
                weight = head.weight * scale_in
                if mask is not None and name in ("ff1", "ff2"):
                    weight = weight * mask
                weights[name] = weight
                biases[name] = head.bias
            # no_gate: [ff1, ff2, time_a, time_b]; default: [ff1, ff2, -time_a, time_a, -time_b, time_b].
            signs: tuple[tuple[int, str], ...] = ((1, "ff1"), (1, "ff2"), (1, "time_a"), (1, "time_b"))
            if not self.no_gate:
                signs = ((1, "ff1"), (1, "ff2"), (-1, "time_a"), (1, "time_a"), (-1, "time_b"), (1, "time_b"))
            heads = nn.Linear(weights["ff1"].shape[1], len(signs) * self.hidden_size)
            heads.weight.copy_(torch.cat([sign * weights[name] for sign, name in signs], 0))
            heads.bias.copy_(torch.cat([sign * biases[name] for sign, name in signs], 0))
        self.backbone = nn.Sequential(*layers) if layers else None
        self.heads = heads
        self.fc = cell.fc
        eye = torch.eye(self.hidden_size)
        self.register_buffer("sum_halves", torch.cat([eye, eye], 0), persistent=False)  # [2H, H]
        if not self.no_gate:
            self._build_step_form(weights, biases)

    def _build_step_form(self, weights: dict[str, Tensor], biases: dict[str, Tensor]) -> None:
        """The default mode's step form (no Δt rule): ``pair`` (Gemm + Tanh, one FusedGemm in
        onnxruntime), ``gate`` (one Gemm + Sigmoid over ``[z · Δt, z, Δt]``: ``u = time_a · Δt +
        time_b`` without a Split, a Mul and an Add) and ``out`` (one Gemm giving ``[h', y]``: the
        two halves summed and the output projection in one)."""
        hidden = self.hidden_size
        with torch.no_grad():
            ff = torch.cat([weights["ff1"], weights["ff2"]], 0)
            self.pair = nn.Linear(ff.shape[1], 2 * hidden)
            self.pair.weight.copy_(ff)
            self.pair.bias.copy_(torch.cat([biases["ff1"], biases["ff2"]], 0))
            time_a, time_b = weights["time_a"], weights["time_b"]
            bias_a, bias_b = biases["time_a"], biases["time_b"]
            # u = [z·Δt, z, Δt] @ [Wa; Wb; ba]ᵀ + bb, as the pair [-u, u].
            gate = torch.cat([time_a, time_b, bias_a[:, None]], 1)  # [H, 2Z + 1]
            self.gate = nn.Linear(gate.shape[1], 2 * hidden)
            self.gate.weight.copy_(torch.cat([-gate, gate], 0))
            self.gate.bias.copy_(torch.cat([-bias_b, bias_b], 0))
            # [h', y] = (tanh(pair) · gates) @ [S, S Wfcᵀ] + [0, b_fc]  (S sums the two halves)
            eye = torch.eye(hidden)
            fc = self.fc
            fc_weight = fc.weight if isinstance(fc, nn.Linear) else eye
            fc_bias = fc.bias if isinstance(fc, nn.Linear) else torch.zeros(hidden)
            summed = torch.cat([eye, eye], 1)  # [H, 2H]: Sᵀ
            self.out = nn.Linear(2 * hidden, hidden + fc_weight.shape[0])
            self.out.weight.copy_(torch.cat([summed, fc_weight @ summed], 0))
            self.out.bias.copy_(torch.cat([torch.zeros(hidden), fc_bias], 0))

    def forward(self, x: Tensor, hidden: Tensor, dt_s: Tensor) -> tuple[Tensor, Tensor]:
        z = torch.cat([x, hidden], 1)
        if self.backbone is not None:
            z = self.backbone(z)
        if not self.zero_dt_rule and not self.no_gate:
            gates = torch.sigmoid(self.gate(torch.cat([z * dt_s, z, dt_s], 1)))  # [1 - σ, σ]
            hidden_y = self.out(torch.tanh(self.pair(z)) * gates)
            hidden_new, y = torch.split(hidden_y, [self.hidden_size, self.out.out_features - self.hidden_size], dim=1)
            return y, hidden_new
        if self.no_gate:
            f1, f2, ta, tb = torch.split(self.heads(z), self.hidden_size, dim=1)
            update = torch.tanh(f1) + torch.sigmoid(ta * dt_s + tb) * torch.tanh(f2)
        else:
            pair, time_a, time_b = torch.split(self.heads(z), 2 * self.hidden_size, dim=1)
            gates = torch.sigmoid(time_a * dt_s + time_b)  # [1 - σ, σ]
            update = (torch.tanh(pair) * gates) @ self.sum_halves  # f1 · (1 - σ) + f2 · σ
        hidden_new = torch.where(dt_s > 0, update, hidden) if self.zero_dt_rule else update
        return self.fc(hidden_new), hidden_new


def for_export(cell: RecurrentCell, *, zero_dt_rule: bool = True) -> nn.Module:
    """The module to trace for ``cell``'s graphs: a fused rewrite when one exists, else ``cell``.

    ``zero_dt_rule=False`` (the step graph) lets a rewrite leave out the Δt <= 0 rule; cells
    without a rewrite keep it.
    """
    if type(cell) is CfCCell and cell.mode is not CfCMode.PURE:
        return FusedCfC(cell, zero_dt_rule=zero_dt_rule).eval()
    return cell
