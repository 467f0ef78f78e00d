"""GRU baseline cell with the same interface as the liquid cells (for comparisons).

The hidden tensor is ``h`` (H = units) and the input is ``[x, Δt]``, so the GRU can see time. With
the Δt column of ``W_i`` at zero this is exactly ``torch.nn.GRUCell`` (gate order r, z, n)::

    r, z, n_i = split(W_i [x, Δt] + b_i)        r_h, z_h, n_h = split(W_h h + b_h)
    r  = sigmoid(r + r_h)
    z  = sigmoid(z + z_h)
    n  = tanh(n_i + r · n_h)
    h' = (1 - z) · n + z · h
    y  = readout(h')            (Linear(units, output_size), or h' when output_size is None)

Weights use the default ``nn.Linear`` initialisation.

Δt rule (same as every lnn_ros cell): Δt = 0 means no time has passed, so the state is returned
unchanged and ``y`` is read from it; negative Δt is treated like 0.
"""

from typing import Any

import torch
from torch import Tensor, nn

from lnn_ros.cells.base import RecurrentCell, check_gated_sizes, time_step


class GRUCell(RecurrentCell):
    """Time-aware GRU baseline.

    Args:
        input_size: F.
        units: GRU width, also the state size.
        output_size: If set, a linear readout to this many outputs; else ``y = h``.
    """

    kind = "gru"

    def __init__(self, input_size: int, units: int, output_size: int | None = None) -> None:
        super().__init__()
        check_gated_sizes("GRUCell", input_size, units, output_size)
        self.input_size = input_size
        self.units = units
        self.state_size = units
        self.output_size = units if output_size is None else output_size
        self._readout_size = output_size
        self.input_gates = nn.Linear(input_size + 1, 3 * units)
        self.hidden_gates = nn.Linear(units, 3 * units)
        self.readout: nn.Module = nn.Identity() if output_size is None else nn.Linear(units, output_size)

    def forward(self, x: Tensor, hidden: Tensor, dt_s: Tensor) -> tuple[Tensor, Tensor]:
        step = time_step(dt_s)
        gi = self.input_gates(torch.cat([x, dt_s], dim=1))
        gh = self.hidden_gates(hidden)
        u = self.units  # slices, not torch.chunk: chunk exports as an opset-18 Split that breaks at opset 17
        r = torch.sigmoid(gi[:, :u] + gh[:, :u])
        z = torch.sigmoid(gi[:, u : 2 * u] + gh[:, u : 2 * u])
        n = torch.tanh(gi[:, 2 * u :] + r * gh[:, 2 * u :])
        hidden_new = torch.where(step.advance, (1.0 - z) * n + z * hidden, hidden)
        return self.readout(hidden_new), hidden_new

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "input_size": self.input_size,
            "units": self.units,
            "output_size": self._readout_size,
        }
