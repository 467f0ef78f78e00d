"""Cell registry: ``build_cell(config)`` turns :meth:`RecurrentCell.config` output back into a cell."""

from collections.abc import Mapping
from typing import Any

from lnn_ros.cells.base import RecurrentCell
from lnn_ros.cells.cfc import CfCCell
from lnn_ros.cells.errors import CellConfigError
from lnn_ros.cells.gru import GRUCell
from lnn_ros.cells.lstm import LSTMCell
from lnn_ros.cells.ltc import LTCCell
from lnn_ros.cells.mlp import MLPCell
from lnn_ros.cells.stack_mlp import FrameStackMLPCell
from lnn_ros.cells.wired_cfc import WiredCfCCell

CELL_KINDS: dict[str, type[RecurrentCell]] = {
    cls.kind: cls for cls in (CfCCell, WiredCfCCell, LTCCell, LSTMCell, GRUCell, MLPCell, FrameStackMLPCell)
}


def build_cell(config: Mapping[str, Any]) -> RecurrentCell:
    """Build the cell described by ``config`` (same architecture, fresh weights).

    Args:
        config: Output of ``cell.config()`` (or a hand-written dict with a ``"kind"`` key).

    Raises:
        CellConfigError: Missing or unknown kind, or arguments the cell does not accept.
    """
    kind = config.get("kind") if isinstance(config, Mapping) else None
    if kind not in CELL_KINDS:
        raise CellConfigError(f"Unknown cell kind {kind!r}; valid kinds are {sorted(CELL_KINDS)}.")
    return CELL_KINDS[kind].from_config(config)
