"""Feed-forward (MLP) baseline with the recurrent-cell interface (for comparisons).

It has no memory: ``y = MLP([x, Δt])``. To keep one interface (and ONNX graphs that always have a
hidden input and output) it carries a dummy hidden state of width 1 that stays zero and is
returned unchanged::

    y = L_n(act(... act(L_1([x, Δt]))))      hidden' = hidden

Δt rule: trivially satisfied, the (empty) state never changes; Δt only enters as an input feature.
"""

from typing import Any

import torch
from torch import Tensor, nn

from lnn_ros.cells.base import RecurrentCell
from lnn_ros.cells.cfc import ACTIVATIONS
from lnn_ros.cells.errors import CellConfigError


def check_feed_forward_sizes(cell: str, input_size: int, output_size: int, hidden_units: int, hidden_layers: int) -> None:
    """The size rule of the MLP cells (``cell`` names the class in the message).

    Raises:
        CellConfigError: a size the feed-forward net cannot have.
    """
    if min(input_size, output_size) < 1 or hidden_layers < 0 or (hidden_layers > 0 and hidden_units < 1):
        raise CellConfigError(
            f"{cell} needs input_size, output_size >= 1, hidden_layers >= 0 and hidden_units >= 1, got "
            f"{input_size!r}, {output_size!r}, {hidden_layers!r} and {hidden_units!r}."
        )


def feed_forward(width: int, output_size: int, hidden_units: int, hidden_layers: int, activation: str) -> nn.Sequential:
    """``hidden_layers`` of ``Linear(., hidden_units)`` + activation, then ``Linear(., output_size)``.

    Raises:
        CellConfigError: Unknown activation.
    """
    if activation not in ACTIVATIONS:
        raise CellConfigError(f"Unknown activation {activation!r}; valid choices are {sorted(ACTIVATIONS)}.")
    layers: list[nn.Module] = []
    for _ in range(hidden_layers):
        layers += [nn.Linear(width, hidden_units), ACTIVATIONS[activation]()]
        width = hidden_units
    layers.append(nn.Linear(width, output_size))
    return nn.Sequential(*layers)


class MLPCell(RecurrentCell):
    """Memoryless MLP on ``[x, Δt]`` with a constant 1-wide dummy state.

    Args:
        input_size: F.
        output_size: O.
        hidden_units: Width of each hidden layer.
        hidden_layers: Number of hidden layers (0 gives a single linear map).
        activation: One of the CfC backbone activations (``lecun_tanh``, ``silu``, ``relu``, ``tanh``, ``gelu``).
    """

    kind = "mlp"

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_units: int = 64,
        hidden_layers: int = 2,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        check_feed_forward_sizes("MLPCell", input_size, output_size, hidden_units, hidden_layers)
        self.input_size = input_size
        self.state_size = 1
        self.output_size = output_size
        self.hidden_units = hidden_units
        self.hidden_layers = hidden_layers
        self.activation = activation
        self.net = feed_forward(input_size + 1, output_size, hidden_units, hidden_layers, activation)

    def forward(self, x: Tensor, hidden: Tensor, dt_s: Tensor) -> tuple[Tensor, Tensor]:
        return self.net(torch.cat([x, dt_s], dim=1)), hidden

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "input_size": self.input_size,
            "output_size": self.output_size,
            "hidden_units": self.hidden_units,
            "hidden_layers": self.hidden_layers,
            "activation": self.activation,
        }
