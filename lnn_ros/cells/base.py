"""The interface every recurrent cell of lnn_ros implements, and the shared Δt rule.

A cell advances one hidden tensor by one step of elapsed time::

    y, hidden_new = cell(x, hidden, dt_s)    # x [B,F], hidden [B,H], dt_s [B,1]  ->  y [B,O], hidden_new [B,H]

Δt rule (shared by every cell): Δt = 0 means no time has passed, so the state is returned unchanged::

    hidden_new = where(dt_s > 0, update(x, hidden, dt_safe), hidden)
    y          = output(hidden_new)

A negative Δt (a clock that went backwards) is treated like 0, and so is NaN. ``dt_safe`` replaces
every Δt <= 0 by 1 before the update is computed, so the discarded branch of ``where`` is always
finite and its gradient never turns into NaN (``where`` backpropagates ``0 * inf = NaN`` otherwise).
"""

import abc
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple, TypeVar

import torch
from torch import Tensor

from lnn_ros.cells.errors import CellConfigError

CellT = TypeVar("CellT", bound="RecurrentCell")


class TimeStep(NamedTuple):
    """Elapsed time of one step, split for the Δt rule.

    Attributes:
        advance: ``dt_s > 0`` as a bool tensor [B,1]; where it is False the state is kept.
        dt_s: Δt in seconds [B,1] with every entry that does not advance replaced by 1.0.
    """

    advance: Tensor
    dt_s: Tensor


def time_step(dt_s: Tensor) -> TimeStep:
    """Split raw elapsed times into the advance mask and a division-safe Δt.

    Args:
        dt_s: Elapsed time since the previous step in seconds, [B,1].

    Returns:
        The :class:`TimeStep` used by every cell to apply the Δt rule.
    """
    advance = dt_s > 0
    # A Python scalar (not ones_like) exports as one Where node with a constant, no Shape/ConstantOfShape.
    return TimeStep(advance, torch.where(advance, dt_s, 1.0))


class RecurrentCell(torch.nn.Module, abc.ABC):
    """Abstract base of all cells: one step ``(x, hidden, dt_s) -> (y, hidden_new)``.

    The forward of every subclass is plain tensor math that ``torch.onnx.export`` traces into fixed
    ops: no Python branch on tensor values, no in-place op on inputs, no ``.item()``, loops only over
    Python ints, and a dynamic batch dimension.

    Attributes:
        kind: Registry name of the cell, the ``"kind"`` key of :meth:`config`.
        input_size: F, features of ``x``.
        state_size: H, width of the single hidden tensor.
        output_size: O, features of ``y``.
    """

    kind: ClassVar[str]
    input_size: int
    state_size: int
    output_size: int

    @abc.abstractmethod
    def forward(self, x: Tensor, hidden: Tensor, dt_s: Tensor) -> tuple[Tensor, Tensor]:
        """Advance the hidden state by ``dt_s`` seconds.

        Args:
            x: Input features [B,F].
            hidden: Hidden state [B,H].
            dt_s: Elapsed time in seconds [B,1]; entries <= 0 keep the state unchanged.

        Returns:
            ``(y [B,O], hidden_new [B,H])``, ``y`` computed from ``hidden_new``.
        """

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Plain YAML/JSON-serialisable constructor arguments plus ``"kind"``; see :func:`build_cell`."""

    def initial_state(self, batch_size: int) -> Tensor:
        """Zero hidden state [B,H] with the dtype and device of the cell's parameters."""
        reference = next(self.parameters())
        return torch.zeros(batch_size, self.state_size, dtype=reference.dtype, device=reference.device)

    @classmethod
    def from_config(cls: type[CellT], config: Mapping[str, Any]) -> CellT:
        """Build a cell of this class from :meth:`config` output (weights are not part of it).

        Raises:
            CellConfigError: The kind does not match or an argument is unknown or missing.
        """
        arguments = dict(config)
        kind = arguments.pop("kind", cls.kind)
        if kind != cls.kind:
            raise CellConfigError(
                f"{cls.__name__} cannot be built from a config of kind {kind!r}; expected {cls.kind!r}."
            )
        try:
            return cls(**arguments)
        except TypeError as error:
            raise CellConfigError(f"Cell config {dict(config)!r} does not match {cls.__name__}: {error}.") from None

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, state_size={self.state_size}, output_size={self.output_size}"


def check_gated_sizes(cell: str, input_size: int, units: int, output_size: int | None) -> None:
    """The size rule of the gated baselines (LSTM, GRU); ``cell`` names the class in the message.

    Raises:
        CellConfigError: a size the cell cannot have.
    """
    if input_size < 1 or units < 1 or (output_size is not None and output_size < 1):
        raise CellConfigError(
            f"{cell} needs input_size >= 1, units >= 1 and output_size None or >= 1, got "
            f"{input_size!r}, {units!r} and {output_size!r}."
        )
