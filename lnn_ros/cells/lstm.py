"""LSTM baseline cell with the same interface as the liquid cells (for comparisons).

The hidden tensor is ``[h | c]`` (H = 2·units) and the input is ``[x, Δt]``, so the LSTM can see time::

    i, f, g, o = split(W [x, Δt, h] + b)
    c' = sigmoid(f) · c + sigmoid(i) · tanh(g)
    h' = sigmoid(o) · tanh(c')
    y  = readout(h')            (Linear(units, output_size), or h' when output_size is None)

The forget-gate bias starts at 1 (a common LSTM initialisation); other weights use the default
``nn.Linear`` initialisation.

Δt rule (same as every lnn_ros cell): Δt = 0 means no time has passed, so the state is returned
unchanged and ``y`` is read from it; negative Δt is treated like 0.
"""

from typing import Any

import torch
from torch import Tensor, nn

from lnn_ros.cells.base import RecurrentCell, check_gated_sizes, time_step


class LSTMCell(RecurrentCell):
    """Time-aware LSTM baseline.

    Args:
        input_size: F.
        units: LSTM width; the state size is ``2 * units``.
        output_size: If set, a linear readout to this many outputs; else ``y = h``.
    """

    kind = "lstm"

    def __init__(self, input_size: int, units: int, output_size: int | None = None) -> None:
        super().__init__()
        check_gated_sizes("LSTMCell", input_size, units, output_size)
        self.input_size = input_size
        self.units = units
        self.state_size = 2 * units
        self.output_size = units if output_size is None else output_size
        self._readout_size = output_size
        self.gates = nn.Linear(input_size + 1 + units, 4 * units)
        with torch.no_grad():
            self.gates.bias[units : 2 * units].fill_(1.0)
        self.readout: nn.Module = nn.Identity() if output_size is None else nn.Linear(units, output_size)

    def forward(self, x: Tensor, hidden: Tensor, dt_s: Tensor) -> tuple[Tensor, Tensor]:
        step = time_step(dt_s)
        h, c = hidden[:, : self.units], hidden[:, self.units :]
        gates = self.gates(torch.cat([x, dt_s, h], dim=1))
        u = self.units  # slices, not torch.chunk: chunk exports as an opset-18 Split that breaks at opset 17
        i, f, g, o = gates[:, :u], gates[:, u : 2 * u], gates[:, 2 * u : 3 * u], gates[:, 3 * u :]
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        hidden_new = torch.where(step.advance, torch.cat([h_new, c_new], dim=1), hidden)
        return self.readout(hidden_new[:, : self.units]), hidden_new

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "input_size": self.input_size,
            "units": self.units,
            "output_size": self._readout_size,
        }
