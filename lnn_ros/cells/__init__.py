"""PyTorch recurrent cells of lnn_ros: CfC, wired CfC, LTC (equal to ncps 1.0.1), and LSTM, GRU,
MLP and frame-stack MLP baselines.

Every cell is a :class:`RecurrentCell` stepping ``(x [B,F], hidden [B,H], dt_s [B,1]) ->
(y [B,O], hidden_new [B,H])``; :class:`SequenceModel` runs any of them over ``[B,T,F]``.

Δt rule, shared by all cells: Δt = 0 means no time has passed, so the state is returned unchanged
(``hidden_new = where(dt_s > 0, update, hidden)``, ``y`` read from ``hidden_new``); negative Δt is
treated like 0. Gradients stay finite at Δt = 0.
"""

from lnn_ros.cells.base import RecurrentCell
from lnn_ros.cells.cfc import CfCCell
from lnn_ros.cells.errors import CellConfigError
from lnn_ros.cells.gru import GRUCell
from lnn_ros.cells.lstm import LSTMCell
from lnn_ros.cells.ltc import LTCCell
from lnn_ros.cells.mlp import MLPCell
from lnn_ros.cells.registry import CELL_KINDS, build_cell
from lnn_ros.cells.sequence import SequenceModel
from lnn_ros.cells.stack_mlp import FrameStackMLPCell
from lnn_ros.cells.wired_cfc import WiredCfCCell
from lnn_ros.cells.wiring import NCP, AutoNCP, FullyConnected, Wiring, wiring_from_config

__all__ = [
    "CELL_KINDS",
    "NCP",
    "AutoNCP",
    "CellConfigError",
    "CfCCell",
    "FrameStackMLPCell",
    "FullyConnected",
    "GRUCell",
    "LSTMCell",
    "LTCCell",
    "MLPCell",
    "RecurrentCell",
    "SequenceModel",
    "WiredCfCCell",
    "Wiring",
    "build_cell",
    "wiring_from_config",
]
