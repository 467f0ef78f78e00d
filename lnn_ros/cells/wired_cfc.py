"""CfC on a wiring, numerically equal to ``ncps.torch.WiredCfCCell`` (+ ``CfC``'s ``fc``).

The neurons are split into the wiring's layers (NCP: inter, command, motor); layer ``l`` is a CfC
layer without backbone whose heads see ``[input_l, h_l]``, masked by the synapses into that layer::

    input_0 = x,   h_l' = CfC_l(input_l, h_l, Δt),   input_{l+1} = h_l'
    hidden  = [h_0 | h_1 | ... | h_{L-1}]            (layer order, not neuron-id order)
    y       = fc(h_{L-1}'[:, :output_dim])           (the motor neurons; fc optional)

Layer masks (ncps orientation [in, units_l]): layer 0 uses the sensory adjacency columns of its
neurons, layer l > 0 the adjacency rows of layer l-1 and columns of layer l, each stacked over an
all-ones block for the layer's own recurrence.

Δt rule: Δt = 0 means no time has passed, so the state is returned unchanged, and ``y`` is read from
that unchanged state; negative Δt is treated like 0.

One difference from ncps besides Δt <= 0: on a ``FullyConnected(units, output_dim < units)`` wiring
ncps outputs all ``units`` neurons although it reports ``output_size = output_dim``; here ``y`` is the
``output_dim`` motor neurons, as the docstring above says (equal to ncps whenever output_dim = units).
"""

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lnn_ros.cells.base import RecurrentCell, time_step
from lnn_ros.cells.cfc import CfCCell, parse_mode
from lnn_ros.cells.errors import CellConfigError
from lnn_ros.cells.wiring import Wiring, built_copy, wiring_from_config


def layer_masks(wiring: Wiring) -> list[np.ndarray]:
    """Sparsity mask [in_l + units_l, units_l] of every layer of a built wiring (ncps layout)."""
    assert wiring.sensory_adjacency_matrix is not None
    masks = []
    for layer in range(wiring.num_layers):
        neurons = wiring.get_neurons_of_layer(layer)
        if layer == 0:
            incoming = wiring.sensory_adjacency_matrix[:, neurons]
        else:
            incoming = wiring.adjacency_matrix[:, neurons][wiring.get_neurons_of_layer(layer - 1), :]
        masks.append(np.concatenate([incoming, np.ones((len(neurons), len(neurons)))], axis=0))
    return masks


class WiredCfCCell(RecurrentCell):
    """Layered, sparsely wired CfC; the output is the motor neurons.

    Args:
        input_size: F (the wiring is copied and built for it).
        wiring: A :class:`~lnn_ros.cells.wiring.Wiring`, a wiring config dict, or an int (fully connected).
        mode: ``"default"``, ``"pure"`` or ``"no_gate"``.
        proj_size: If set, ``y = Linear(output_dim, proj_size)(motor)``, like ncps
            ``CfC(wiring, proj_size=...)``.
    """

    kind = "wired_cfc"

    def __init__(
        self,
        input_size: int,
        wiring: Wiring | dict[str, Any] | int,
        mode: str = "default",
        proj_size: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(wiring, dict):
            wiring = wiring_from_config(wiring)
        self.wiring = built_copy(wiring, input_size)
        if proj_size is not None and proj_size < 1:
            raise CellConfigError(f"proj_size must be None or >= 1, got {proj_size!r}.")
        self.input_size = input_size
        self.state_size = self.wiring.units
        self.motor_size = self.wiring.output_dim
        self.output_size = self.motor_size if proj_size is None else proj_size
        self.proj_size = proj_size
        self.layer_sizes = self.wiring.layer_sizes
        self.mode = parse_mode(mode)
        layers = []
        in_features = input_size
        for size, mask in zip(self.layer_sizes, layer_masks(self.wiring)):
            layers.append(
                CfCCell(in_features, size, self.mode.value, backbone_layers=0, backbone_units=0, sparsity_mask=mask)
            )
            in_features = size
        self.layers = nn.ModuleList(layers)
        self._motor_start = self.state_size - self.layer_sizes[-1]
        self.fc: nn.Module = nn.Identity() if proj_size is None else nn.Linear(self.motor_size, proj_size)

    def forward(self, x: Tensor, hidden: Tensor, dt_s: Tensor) -> tuple[Tensor, Tensor]:
        step = time_step(dt_s)
        states = torch.split(hidden, self.layer_sizes, dim=1)
        inputs = x
        updated = []
        for layer, state in zip(self.layers, states):
            inputs = layer.update(inputs, state, step.dt_s)  # type: ignore[operator]  # ModuleList items are Modules
            updated.append(inputs)
        hidden_new = torch.where(step.advance, torch.cat(updated, dim=1), hidden)
        motor = hidden_new[:, self._motor_start : self._motor_start + self.motor_size]
        return self.fc(motor), hidden_new

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "input_size": self.input_size,
            "wiring": self.wiring.to_config(),
            "mode": self.mode.value,
            "proj_size": self.proj_size,
        }
