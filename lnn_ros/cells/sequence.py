"""One sequence wrapper for every cell: steps a :class:`RecurrentCell` over time.

Unlike ncps's ``CfC``/``LTC`` wrappers (whose ``timespans`` broadcast wrongly for batch > 1,
ncps issues #81/#82/#83), Δt is kept per sample and per step as a [B,1] column, so a batch gives
exactly the result of stepping each sample alone. Δt <= 0 keeps the state (see :mod:`lnn_ros.cells.base`).
"""

import torch
from torch import Tensor, nn

from lnn_ros.cells.base import RecurrentCell
from lnn_ros.cells.errors import CellConfigError


class SequenceModel(nn.Module):
    """Runs ``cell`` over a batch of sequences.

    Args:
        cell: Any :class:`RecurrentCell`.
    """

    def __init__(self, cell: RecurrentCell) -> None:
        super().__init__()
        if not isinstance(cell, RecurrentCell):
            raise CellConfigError(f"SequenceModel needs a RecurrentCell, got {type(cell).__name__!r}.")
        self.cell = cell

    @property
    def input_size(self) -> int:
        return self.cell.input_size

    @property
    def state_size(self) -> int:
        return self.cell.state_size

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    def forward(self, x: Tensor, dt_s: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Step the cell over the time axis.

        Args:
            x: Inputs [B,T,F].
            dt_s: Elapsed time before each step in seconds, [B,T] or [B,T,1].
            hidden: Initial state [B,H]; zeros when None.

        Returns:
            ``(y [B,T,O], hidden [B,H])``: every step's output and the final state.

        Raises:
            CellConfigError: A tensor has the wrong shape.
        """
        if x.dim() != 3 or x.shape[1] < 1 or x.shape[2] != self.cell.input_size:
            raise CellConfigError(
                f"x must have shape [B,T,{self.cell.input_size}] with T >= 1, got {tuple(x.shape)!r}."
            )
        batch, steps = x.shape[0], x.shape[1]
        if dt_s.dim() == 2:
            dt_s = dt_s.unsqueeze(-1)
        if tuple(dt_s.shape) != (batch, steps, 1):
            raise CellConfigError(
                f"dt_s must have shape [{batch},{steps}] or [{batch},{steps},1], got {tuple(dt_s.shape)!r}."
            )
        if hidden is None:
            hidden = self.cell.initial_state(batch)
        elif tuple(hidden.shape) != (batch, self.cell.state_size):
            raise CellConfigError(
                f"hidden must have shape [{batch},{self.cell.state_size}], got {tuple(hidden.shape)!r}."
            )
        outputs = []
        for t in range(steps):
            y, hidden = self.cell(x[:, t], hidden, dt_s[:, t])
            outputs.append(y)
        return torch.stack(outputs, dim=1), hidden
