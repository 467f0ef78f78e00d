"""Closed-form continuous-time (CfC) cell, numerically equal to ``ncps.torch.CfCCell`` + ``CfC``'s ``fc``.

Equations, with ``z = backbone([x, h])`` (``z = [x, h]`` when ``backbone_layers == 0``) and Δt > 0::

    f1 = W1 z + b1       f2 = W2 z + b2          (W1, W2 masked by sparsity_mask if given)
    ta = Wa z + ba       tb = Wb z + bb           (never masked, as in ncps)
    σ  = sigmoid(ta · Δt + tb)
    default:  h' = tanh(f1) · (1 - σ) + σ · tanh(f2)
    no_gate:  h' = tanh(f1) + σ · tanh(f2)
    pure:     h' = -A · exp(-Δt · (|w_τ| + |f1|)) · f1 + A
    y = fc(h')            (fc = Linear(H, proj_size), or identity when proj_size is None)

Δt rule: Δt = 0 means no time has passed, so the state is returned unchanged: ``h' = h`` and
``y = fc(h)`` wherever Δt <= 0 (negative Δt is treated like 0). ncps instead evaluates the formula
at Δt = 0, which is not the identity.
"""

from enum import Enum
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import Tensor, nn

from lnn_ros.cells.base import RecurrentCell, time_step
from lnn_ros.cells.errors import CellConfigError


class CfCMode(str, Enum):
    """The three CfC solution forms of ncps."""

    DEFAULT = "default"
    PURE = "pure"
    NO_GATE = "no_gate"


class LeCunTanh(nn.Module):
    """LeCun's scaled tanh, ``1.7159 · tanh(0.666 · x)`` (the ncps default backbone activation)."""

    def forward(self, x: Tensor) -> Tensor:
        return 1.7159 * torch.tanh(0.666 * x)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "lecun_tanh": LeCunTanh,
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
}


def parse_mode(mode: str) -> CfCMode:
    """The :class:`CfCMode` named ``mode``.

    Raises:
        CellConfigError: ``mode`` is not one of the three modes.
    """
    try:
        return CfCMode(mode)
    except ValueError:
        raise CellConfigError(f"Unknown CfC mode {mode!r}; valid modes are {[m.value for m in CfCMode]}.") from None


class CfCCell(RecurrentCell):
    """CfC cell with an optional MLP backbone, sparsity mask and output projection.

    Args:
        input_size: F.
        hidden_size: H (= state_size).
        mode: ``"default"``, ``"pure"`` or ``"no_gate"``.
        backbone_activation: One of :data:`ACTIVATIONS`.
        backbone_units: Width of each backbone layer (unused when ``backbone_layers == 0``).
        backbone_layers: Number of Linear+activation layers before the heads; 0 for none.
        backbone_dropout: Dropout after every backbone layer (ncps skips it after the first layer).
        sparsity_mask: Optional [in, H] array (ncps orientation, ``in`` = heads' input width); its
            absolute value multiplies the ``f1``/``f2`` weights.
        proj_size: If set, ``y = Linear(H, proj_size)(h')`` like ncps ``CfC(proj_size=...)``.
    """

    kind = "cfc"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        mode: str = "default",
        backbone_activation: str = "lecun_tanh",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_dropout: float = 0.0,
        sparsity_mask: ArrayLike | None = None,
        proj_size: int | None = None,
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1 or backbone_layers < 0:
            raise CellConfigError(
                f"CfCCell needs input_size >= 1, hidden_size >= 1 and backbone_layers >= 0, got "
                f"{input_size!r}, {hidden_size!r} and {backbone_layers!r}."
            )
        if backbone_activation not in ACTIVATIONS:
            raise CellConfigError(
                f"Unknown backbone_activation {backbone_activation!r}; valid choices are {sorted(ACTIVATIONS)}."
            )
        if backbone_layers > 0 and backbone_units < 1:
            raise CellConfigError(f"backbone_units must be >= 1 with a backbone, got {backbone_units!r}.")
        if not 0.0 <= backbone_dropout < 1.0:
            raise CellConfigError(f"backbone_dropout must be in [0, 1), got {backbone_dropout!r}.")
        if proj_size is not None and proj_size < 1:
            raise CellConfigError(f"proj_size must be None or >= 1, got {proj_size!r}.")
        self.input_size = input_size
        self.state_size = hidden_size
        self.output_size = hidden_size if proj_size is None else proj_size
        self.mode = parse_mode(mode)
        self.backbone_activation = backbone_activation
        self.backbone_units = backbone_units
        self.backbone_layers = backbone_layers
        self.backbone_dropout = backbone_dropout
        self.proj_size = proj_size

        layers: list[nn.Module] = []
        width = input_size + hidden_size
        for _ in range(backbone_layers):
            layers += [nn.Linear(width, backbone_units), ACTIVATIONS[backbone_activation]()]
            if backbone_dropout > 0.0:
                layers.append(nn.Dropout(backbone_dropout))
            width = backbone_units
        self.backbone = nn.Sequential(*layers) if layers else None

        self.sparsity_mask: Tensor | None
        if sparsity_mask is None:
            self.register_buffer("sparsity_mask", None)
        else:
            mask = np.abs(np.asarray(sparsity_mask, dtype=np.float32))
            if mask.shape != (width, hidden_size):
                raise CellConfigError(f"sparsity_mask must have shape {(width, hidden_size)!r}, got {mask.shape!r}.")
            self.register_buffer("sparsity_mask", torch.from_numpy(np.ascontiguousarray(mask.T)))

        self.ff1 = nn.Linear(width, hidden_size)
        if self.mode is CfCMode.PURE:
            self.w_tau = nn.Parameter(torch.zeros(1, hidden_size))
            self.A = nn.Parameter(torch.ones(1, hidden_size))
        else:
            self.ff2 = nn.Linear(width, hidden_size)
            self.time_a = nn.Linear(width, hidden_size)
            self.time_b = nn.Linear(width, hidden_size)
        for parameter in self.parameters():  # ncps init: Xavier on every 2-D weight, incl. A and w_tau
            if parameter.dim() == 2:
                nn.init.xavier_uniform_(parameter)
        self.fc: nn.Module = nn.Identity() if proj_size is None else nn.Linear(hidden_size, proj_size)

    def _head(self, layer: nn.Linear, z: Tensor) -> Tensor:
        if self.sparsity_mask is None:
            return layer(z)
        return F.linear(z, layer.weight * self.sparsity_mask, layer.bias)

    def update(self, x: Tensor, hidden: Tensor, dt_s: Tensor) -> Tensor:
        """The CfC formula without the Δt rule (``dt_s`` must be > 0 to be meaningful), [B,H]."""
        z = torch.cat([x, hidden], 1)
        if self.backbone is not None:
            z = self.backbone(z)
        f1 = self._head(self.ff1, z)
        if self.mode is CfCMode.PURE:
            return -self.A * torch.exp(-dt_s * (torch.abs(self.w_tau) + torch.abs(f1))) * f1 + self.A
        f2 = torch.tanh(self._head(self.ff2, z))
        f1 = torch.tanh(f1)
        sigma = torch.sigmoid(self.time_a(z) * dt_s + self.time_b(z))
        if self.mode is CfCMode.NO_GATE:
            return f1 + sigma * f2
        return f1 * (1.0 - sigma) + sigma * f2

    def forward(self, x: Tensor, hidden: Tensor, dt_s: Tensor) -> tuple[Tensor, Tensor]:
        step = time_step(dt_s)
        hidden_new = torch.where(step.advance, self.update(x, hidden, step.dt_s), hidden)
        return self.fc(hidden_new), hidden_new

    def config(self) -> dict[str, Any]:
        mask = self.sparsity_mask
        return {
            "kind": self.kind,
            "input_size": self.input_size,
            "hidden_size": self.state_size,
            "mode": self.mode.value,
            "backbone_activation": self.backbone_activation,
            "backbone_units": self.backbone_units,
            "backbone_layers": self.backbone_layers,
            "backbone_dropout": self.backbone_dropout,
            "sparsity_mask": None if mask is None else mask.T.cpu().tolist(),
            "proj_size": self.proj_size,
        }
