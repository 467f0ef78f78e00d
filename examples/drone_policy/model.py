"""The drone policy in PyTorch: a small CNN encoder in front of a recurrent cell.

Per IMU step k (the runtime's fusion rule, see :mod:`lnn_ros_examples.drone_policy.data`)::

    e_j  = encoder((image_j / 255 - mean_c) / std_c)         once per camera frame j, E = 16
    x_k  = [(imu_k - mean_imu) / std_imu,  e_{held(k)}]        6 + E features
    y_k, h_k = cell(x_k, h_{k-1}, Δt_k)                        y = [vx, vy, vz, yaw_rate]

The model is the library's camera policy (:mod:`lnn_ros.training.camera`, also what
``lnn-ros train`` fits on camera bags); this module names it for the drone: six IMU features,
four outputs, the recipe's cell kinds. Imports torch: training and export only.
"""

from __future__ import annotations

from dataclasses import dataclass

from lnn_ros.cells import RecurrentCell, build_cell
from lnn_ros.sim.errors import SimError
from lnn_ros.training.camera import CameraArch, ImageEncoder
from lnn_ros.training.camera import CameraPolicy as DronePolicy
from lnn_ros.training.models import default_cell_config
from lnn_ros_examples.drone_policy.data import IMU_FIELDS

__all__ = ["OUTPUT_NAMES", "POLICY_KINDS", "DronePolicy", "ImageEncoder", "PolicyArch", "build_cell_for"]

OUTPUT_NAMES = ("vx", "vy", "vz", "yaw_rate")
POLICY_KINDS = ("cfc", "wired_cfc", "lstm", "gru", "stack_mlp", "mlp")


@dataclass(frozen=True)
class PolicyArch(CameraArch):
    """Sizes of a drone policy (:class:`~lnn_ros.training.camera.CameraArch` with the recipe's cell kinds)."""

    def __post_init__(self) -> None:
        if self.cell_kind not in POLICY_KINDS:
            raise SimError(f"PolicyArch.cell_kind must be one of {list(POLICY_KINDS)}, got {self.cell_kind!r}.")
        super().__post_init__()

    @property
    def input_size(self) -> int:
        """Features of the cell: six IMU values plus the embedding."""
        return len(IMU_FIELDS) + self.embedding_size


def build_cell_for(arch: PolicyArch, output_size: int = len(OUTPUT_NAMES)) -> RecurrentCell:
    """The recurrent cell of ``arch`` (the training API's default config of that kind)."""
    return build_cell(default_cell_config(arch.cell_kind, arch.input_size, output_size, arch.units))
