"""Frame-stack MLP baseline: a memoryless MLP that also sees the previous camera embeddings.

Why a cell: a frame stack is the classic memoryless baseline for vision policies (the network
sees the last K frames, nothing older). Written as a :class:`RecurrentCell` whose hidden state
*is* the stack, it goes through export, bundle, engine and runtime like every other cell, with
nothing new in any of them.

The last ``S = stack_features`` features of ``x`` are a camera embedding ``e`` that the runtime
holds constant between camera frames (the cell is fed at the IMU rate, ~200 Hz; frames arrive at
~30 Hz). The hidden state holds the K = ``stack_size`` newest *distinct* embeddings, newest first,
``[s_0 | s_1 | ... | s_{K-1}]`` (H = K·S; initially zeros)::

    shift = (Δt > 0) and any(e != s_0)                      (a new frame arrived)
    hidden' = [e | s_0 | ... | s_{K-2}]   if shift   else   hidden
    y       = MLP([x, Δt, s'_1, ..., s'_{K-1}])             (the MLP of MLPCell)

So the MLP sees the current frame through ``x`` and the K-1 frames before it through the state,
on every step alike: the step a frame arrives and the ~6 steps it is held. ``s_0`` is kept only to
tell a held frame from a new one. A frame that repeats bit for bit is not a new frame.

Δt rule: Δt <= 0 keeps the stack unchanged (a new embedding with Δt = 0 is pushed on the next
step that advances); ``y`` still sees ``x`` and Δt directly, as with :class:`MLPCell`.
"""

from typing import Any

import torch
from torch import Tensor

from lnn_ros.cells.base import RecurrentCell, time_step
from lnn_ros.cells.errors import CellConfigError
from lnn_ros.cells.mlp import check_feed_forward_sizes, feed_forward


class FrameStackMLPCell(RecurrentCell):
    """MLP on ``[x, Δt]`` plus the K-1 previous distinct values of the last ``stack_features`` inputs.

    Args:
        input_size: F.
        output_size: O.
        stack_size: K >= 2, the frames the MLP sees (the current one in ``x`` and K-1 previous).
        stack_features: S, the trailing features of ``x`` that form the embedding (1 <= S <= F).
        hidden_units: Width of each hidden layer.
        hidden_layers: Number of hidden layers (0 gives a single linear map).
        activation: One of the CfC backbone activations (``lecun_tanh``, ``silu``, ``relu``, ``tanh``, ``gelu``).
    """

    kind = "stack_mlp"

    def __init__(
        self,
        input_size: int,
        output_size: int,
        stack_size: int = 4,
        stack_features: int = 16,
        hidden_units: int = 64,
        hidden_layers: int = 2,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        check_feed_forward_sizes("FrameStackMLPCell", input_size, output_size, hidden_units, hidden_layers)
        if stack_size < 2 or not 1 <= stack_features <= input_size:
            raise CellConfigError(
                f"FrameStackMLPCell needs stack_size >= 2 and 1 <= stack_features <= input_size ({input_size}), "
                f"got stack_size={stack_size!r} and stack_features={stack_features!r}."
            )
        self.input_size = input_size
        self.output_size = output_size
        self.stack_size = stack_size
        self.stack_features = stack_features
        self.state_size = stack_size * stack_features
        self.hidden_units = hidden_units
        self.hidden_layers = hidden_layers
        self.activation = activation
        width = input_size + 1 + (stack_size - 1) * stack_features
        self.net = feed_forward(width, output_size, hidden_units, hidden_layers, activation)

    def forward(self, x: Tensor, hidden: Tensor, dt_s: Tensor) -> tuple[Tensor, Tensor]:
        step = time_step(dt_s)
        s = self.stack_features
        embedding = x[:, self.input_size - s :]
        new_frame = (embedding != hidden[:, :s]).any(dim=1, keepdim=True)
        shifted = torch.cat([embedding, hidden[:, : self.state_size - s]], dim=1)
        hidden_new = torch.where(step.advance & new_frame, shifted, hidden)
        return self.net(torch.cat([x, dt_s, hidden_new[:, s:]], dim=1)), hidden_new

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "input_size": self.input_size,
            "output_size": self.output_size,
            "stack_size": self.stack_size,
            "stack_features": self.stack_features,
            "hidden_units": self.hidden_units,
            "hidden_layers": self.hidden_layers,
            "activation": self.activation,
        }
