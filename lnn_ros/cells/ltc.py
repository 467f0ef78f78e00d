"""Liquid time-constant (LTC) cell, numerically equal to ``ncps.torch.LTCCell``.

Fused semi-implicit Euler solver, ``K = ode_unfolds`` sub-steps of Δt/K per call. With
``φ`` = softplus (implicit constraints) or identity (explicit clipping), ``x̃ = x·w_in + b_in``::

    S_ij   = sensory_mask_ij · φ(sw_ij) · sigmoid(sσ_ij · (x̃_i - sμ_ij))       (input i -> neuron j)
    W_ij   = mask_ij · φ(w_ij) · sigmoid(σ_ij · (v_i - μ_ij))                   (neuron i -> neuron j)
    repeat K times:
        v_j <- (φ(cm_j)/(Δt/K) · v_j + φ(gleak_j) · vleak_j + Σ_i W_ij E_ij + Σ_i S_ij sE_ij)
               / (φ(cm_j)/(Δt/K) + φ(gleak_j) + Σ_i W_ij + Σ_i S_ij + ε)
    y = v[:, :output_dim] · w_out + b_out

Mappings ``"affine"`` (w and b), ``"linear"`` (w only) or None (identity), as in ncps.
With ``implicit_param_constraints=False`` call :meth:`LTCCell.apply_weight_constraints` after each
optimizer step (clips w, sensory_w, cm, gleak at 0 like ncps).

Δt rule: Δt = 0 means no time has passed, so the state is returned unchanged and ``y`` is the output
mapping of that unchanged state; negative Δt is treated like 0. (ncps returns NaN at Δt = 0.) The
solver runs with Δt replaced by 1 where Δt <= 0, so the discarded branch and its gradient stay finite.
"""

from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lnn_ros.cells.base import RecurrentCell, time_step
from lnn_ros.cells.errors import CellConfigError
from lnn_ros.cells.wiring import Wiring, built_copy, wiring_from_config

# Uniform initial ranges of the ncps LTC parameters (drawn in this order, as ncps does).
_INIT_RANGES: dict[str, tuple[float, float]] = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "w": (0.001, 1.0),
}
_SENSORY_INIT_RANGES: dict[str, tuple[float, float]] = {
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
}
_CONSTRAINED = ("w", "sensory_w", "cm", "gleak")


class IOMapping(Enum):
    """Per-feature input/output mapping."""

    AFFINE = "affine"
    LINEAR = "linear"
    NONE = None


def _mapping(value: str | None, name: str) -> IOMapping:
    try:
        return IOMapping(value)
    except ValueError:
        raise CellConfigError(f"Unknown {name} {value!r}; valid choices are {[m.value for m in IOMapping]}.") from None


def _uniform(shape: tuple[int, ...], bounds: tuple[float, float]) -> nn.Parameter:
    low, high = bounds
    return nn.Parameter(torch.rand(*shape) * (high - low) + low)


class LTCCell(RecurrentCell):
    """LTC cell on a wiring; output = motor neurons through the output mapping.

    Args:
        input_size: F (the wiring is copied and built for it).
        wiring: A :class:`~lnn_ros.cells.wiring.Wiring`, a wiring config dict, or an int (fully connected).
        input_mapping: ``"affine"``, ``"linear"`` or None.
        output_mapping: ``"affine"``, ``"linear"`` or None.
        ode_unfolds: Solver sub-steps per call.
        epsilon: Added to the denominator.
        implicit_param_constraints: Softplus on w, sensory_w, cm, gleak (True, the ncps ``LTC``
            default) or raw values kept >= 0 by :meth:`apply_weight_constraints` (False).
    """

    kind = "ltc"
    gleak: nn.Parameter
    vleak: nn.Parameter
    cm: nn.Parameter
    sigma: nn.Parameter
    mu: nn.Parameter
    w: nn.Parameter
    sensory_sigma: nn.Parameter
    sensory_mu: nn.Parameter
    sensory_w: nn.Parameter
    sparsity_mask: Tensor
    sensory_sparsity_mask: Tensor

    def __init__(
        self,
        input_size: int,
        wiring: Wiring | dict[str, Any] | int,
        input_mapping: str | None = "affine",
        output_mapping: str | None = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(wiring, dict):
            wiring = wiring_from_config(wiring)
        self.wiring = built_copy(wiring, input_size)
        if ode_unfolds < 1:
            raise CellConfigError(f"ode_unfolds must be >= 1, got {ode_unfolds!r}.")
        self.input_size = input_size
        self.state_size = self.wiring.units
        self.output_size = self.wiring.output_dim
        self.input_mapping = _mapping(input_mapping, "input_mapping")
        self.output_mapping = _mapping(output_mapping, "output_mapping")
        self.ode_unfolds = ode_unfolds
        self.epsilon = epsilon
        self.implicit_param_constraints = implicit_param_constraints

        units, sensors = self.state_size, input_size
        for name, bounds in _INIT_RANGES.items():
            shape = (units,) if name in ("gleak", "vleak", "cm") else (units, units)
            self.register_parameter(name, _uniform(shape, bounds))
        self.erev = nn.Parameter(torch.tensor(self.wiring.erev_initializer(), dtype=torch.float32))
        for name, bounds in _SENSORY_INIT_RANGES.items():
            self.register_parameter(name, _uniform((sensors, units), bounds))
        self.sensory_erev = nn.Parameter(torch.tensor(self.wiring.sensory_erev_initializer(), dtype=torch.float32))
        assert self.wiring.sensory_adjacency_matrix is not None
        self.register_buffer("sparsity_mask", torch.tensor(abs(self.wiring.adjacency_matrix), dtype=torch.float32))
        self.register_buffer(
            "sensory_sparsity_mask", torch.tensor(abs(self.wiring.sensory_adjacency_matrix), dtype=torch.float32)
        )
        if self.input_mapping in (IOMapping.AFFINE, IOMapping.LINEAR):
            self.input_w = nn.Parameter(torch.ones(sensors))
        if self.input_mapping is IOMapping.AFFINE:
            self.input_b = nn.Parameter(torch.zeros(sensors))
        if self.output_mapping in (IOMapping.AFFINE, IOMapping.LINEAR):
            self.output_w = nn.Parameter(torch.ones(self.output_size))
        if self.output_mapping is IOMapping.AFFINE:
            self.output_b = nn.Parameter(torch.zeros(self.output_size))

    def _positive(self, value: Tensor) -> Tensor:
        return F.softplus(value) if self.implicit_param_constraints else value

    @staticmethod
    def _sigmoid(v: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
        return torch.sigmoid(sigma * (v.unsqueeze(-1) - mu))

    def solve(self, inputs: Tensor, v: Tensor, dt_s: Tensor) -> Tensor:
        """The fused ODE solver without the Δt rule (``dt_s`` must be > 0), [B,H]."""
        sensory_w = self._positive(self.sensory_w) * self._sigmoid(inputs, self.sensory_mu, self.sensory_sigma)
        sensory_w = sensory_w * self.sensory_sparsity_mask
        numerator_sensory = torch.sum(sensory_w * self.sensory_erev, dim=1)
        denominator_sensory = torch.sum(sensory_w, dim=1)
        cm_t = self._positive(self.cm) / (dt_s / self.ode_unfolds)
        w = self._positive(self.w)
        gleak = self._positive(self.gleak)
        for _ in range(self.ode_unfolds):
            w_activation = w * self._sigmoid(v, self.mu, self.sigma) * self.sparsity_mask
            numerator = torch.sum(w_activation * self.erev, dim=1) + numerator_sensory
            denominator = torch.sum(w_activation, dim=1) + denominator_sensory
            v = (cm_t * v + gleak * self.vleak + numerator) / (cm_t + gleak + denominator + self.epsilon)
        return v

    def _map_inputs(self, x: Tensor) -> Tensor:
        if self.input_mapping in (IOMapping.AFFINE, IOMapping.LINEAR):
            x = x * self.input_w
        if self.input_mapping is IOMapping.AFFINE:
            x = x + self.input_b
        return x

    def _map_outputs(self, v: Tensor) -> Tensor:
        y = v[:, : self.output_size] if self.output_size < self.state_size else v
        if self.output_mapping in (IOMapping.AFFINE, IOMapping.LINEAR):
            y = y * self.output_w
        if self.output_mapping is IOMapping.AFFINE:
            y = y + self.output_b
        return y

    def forward(self, x: Tensor, hidden: Tensor, dt_s: Tensor) -> tuple[Tensor, Tensor]:
        step = time_step(dt_s)
        hidden_new = torch.where(step.advance, self.solve(self._map_inputs(x), hidden, step.dt_s), hidden)
        return self._map_outputs(hidden_new), hidden_new

    @torch.no_grad()
    def apply_weight_constraints(self) -> None:
        """Clip w, sensory_w, cm and gleak at 0 in place (explicit mode only; no-op when implicit)."""
        if not self.implicit_param_constraints:
            for name in _CONSTRAINED:
                getattr(self, name).clamp_(min=0.0)

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "input_size": self.input_size,
            "wiring": self.wiring.to_config(),
            "input_mapping": self.input_mapping.value,
            "output_mapping": self.output_mapping.value,
            "ode_unfolds": self.ode_unfolds,
            "epsilon": self.epsilon,
            "implicit_param_constraints": self.implicit_param_constraints,
        }
