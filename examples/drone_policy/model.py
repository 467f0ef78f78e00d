"""The drone policy in PyTorch: a small CNN encoder in front of a recurrent cell.

Per IMU step k (the runtime's fusion rule, see :mod:`lnn_ros_examples.drone_policy.data`)::

    e_j  = encoder((image_j / 255 - mean_c) / std_c)         once per camera frame j, E = 16
    x_k  = [(imu_k - mean_imu) / std_imu,  e_{held(k)}]        6 + E features
    y_k, h_k = cell(x_k, h_{k-1}, Δt_k)                        y = [vx, vy, vz, yaw_rate]

The encoder (three stride-2 convolutions, flatten, linear, tanh) keeps where things are in the
image: the target's position and size in the frame are what the expert's command depends on.
The flattened map is not pooled, because global pooling would throw that position away.

The bundle holds the encoder graph and the cell's step graph; :class:`DronePolicy` is what
training fits and export reads. Imports torch: training and export only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lnn_ros.cells import RecurrentCell, build_cell
from lnn_ros.sim.errors import SimError
from lnn_ros.training.models import default_cell_config
from lnn_ros_examples.drone_policy.data import IMU_FIELDS

OUTPUT_NAMES = ("vx", "vy", "vz", "yaw_rate")
POLICY_KINDS = ("cfc", "wired_cfc", "lstm", "gru", "stack_mlp", "mlp")


@dataclass(frozen=True)
class PolicyArch:
    """Sizes of a drone policy.

    Attributes:
        cell_kind: ``cfc`` / ``wired_cfc`` (liquid policies), ``lstm``, ``gru``, ``stack_mlp`` or ``mlp`` (baselines).
        units: cell width (CfC hidden size, LSTM units, MLP hidden units).
        embedding_size: E, encoder output features.
        channels: output channels of the three convolutions.
        image_height: rows of the camera image.
        image_width: columns of the camera image.
    """

    cell_kind: str = "cfc"
    units: int = 32
    embedding_size: int = 16
    channels: tuple[int, int, int] = (8, 16, 16)
    image_height: int = 48
    image_width: int = 64

    def __post_init__(self) -> None:
        if self.cell_kind not in POLICY_KINDS:
            raise SimError(f"PolicyArch.cell_kind must be one of {list(POLICY_KINDS)}, got {self.cell_kind!r}.")
        sizes = (self.units, self.embedding_size, *self.channels)
        if min(sizes) < 1:
            raise SimError(f"PolicyArch sizes must be >= 1, got units/embedding/channels {sizes!r}.")
        if self.image_height % 8 or self.image_width % 8:
            raise SimError(
                f"PolicyArch image size must be a multiple of 8 (three stride-2 convolutions), got "
                f"{self.image_width!r}x{self.image_height!r}."
            )

    @property
    def input_size(self) -> int:
        """Features of the cell: six IMU values plus the embedding."""
        return len(IMU_FIELDS) + self.embedding_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell_kind": self.cell_kind,
            "units": self.units,
            "embedding_size": self.embedding_size,
            "channels": list(self.channels),
            "image_height": self.image_height,
            "image_width": self.image_width,
        }


class ImageEncoder(nn.Module):
    """``image [B, 3, H, W]`` (normalised) -> ``embedding [B, E]`` in (-1, 1).

    ``conv5x5/2 -> ReLU -> conv3x3/2 -> ReLU -> conv3x3/2 -> ReLU -> flatten -> linear -> tanh``.
    """

    def __init__(self, arch: PolicyArch) -> None:
        super().__init__()
        c1, c2, c3 = arch.channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c2, c3, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
        )
        flat = c3 * (arch.image_height // 8) * (arch.image_width // 8)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, arch.embedding_size), nn.Tanh())

    def forward(self, image: Tensor) -> Tensor:
        return self.head(self.features(image))


def build_cell_for(arch: PolicyArch, output_size: int = len(OUTPUT_NAMES)) -> RecurrentCell:
    """The recurrent cell of ``arch`` (the training API's default config of that kind)."""
    return build_cell(default_cell_config(arch.cell_kind, arch.input_size, output_size, arch.units))


class DronePolicy(nn.Module):
    """Encoder + cell with the normalisation the bundle manifest will carry.

    Args:
        arch: sizes.
        imu_mean: mean of the six raw IMU features.
        imu_std: std of the six raw IMU features.
        image_mean: per-channel mean of ``pixel / 255`` (rgb).
        image_std: per-channel std of ``pixel / 255``.
    """

    def __init__(
        self,
        arch: PolicyArch,
        imu_mean: tuple[float, ...],
        imu_std: tuple[float, ...],
        image_mean: tuple[float, ...],
        image_std: tuple[float, ...],
    ) -> None:
        super().__init__()
        for name, values, size in (
            ("imu_mean", imu_mean, len(IMU_FIELDS)),
            ("imu_std", imu_std, len(IMU_FIELDS)),
            ("image_mean", image_mean, 3),
            ("image_std", image_std, 3),
        ):
            if len(values) != size:
                raise SimError(f"DronePolicy {name} needs {size} values, got {values!r}.")
        if min(imu_std) <= 0 or min(image_std) <= 0:
            raise SimError(f"DronePolicy stds must be > 0, got imu {imu_std!r} and image {image_std!r}.")
        self.arch = arch
        self.imu_mean = tuple(float(v) for v in imu_mean)
        self.imu_std = tuple(float(v) for v in imu_std)
        self.image_mean = tuple(float(v) for v in image_mean)
        self.image_std = tuple(float(v) for v in image_std)
        self.encoder = ImageEncoder(arch)
        self.cell = build_cell_for(arch)
        # Runtime decoding: pixel * (1 / (255 std)) - mean / std, per channel (lnn_ros.runtime.image).
        std = torch.tensor(self.image_std, dtype=torch.float64)
        mean = torch.tensor(self.image_mean, dtype=torch.float64)
        self.register_buffer("_pixel_scale", (1.0 / (255.0 * std)).float().view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_pixel_offset", (mean / std).float().view(1, 3, 1, 1), persistent=False)

    def normalise_images(self, frames: Tensor) -> Tensor:
        """uint8 rgb frames [N, H, W, 3] -> encoder input [N, 3, H, W], as the runtime decodes them."""
        return frames.permute(0, 3, 1, 2).float() * self._pixel_scale - self._pixel_offset

    def embed(self, frames: Tensor) -> Tensor:
        """uint8 rgb frames [N, H, W, 3] -> embeddings [N, E]."""
        return self.encoder(self.normalise_images(frames))

    def forward(
        self, imu: Tensor, embeddings: Tensor, dt_s: Tensor, hidden: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Step the cell over time.

        Args:
            imu: normalised IMU features [B, T, 6].
            embeddings: the held embedding of each step [B, T, E].
            dt_s: Δt of each step [B, T] or [B, T, 1].
            hidden: initial state [B, H] (zeros when None).

        Returns:
            ``(y [B, T, 4], hidden [B, H])``.
        """
        x = torch.cat([imu, embeddings], dim=-1)
        if dt_s.dim() == 2:
            dt_s = dt_s.unsqueeze(-1)
        if hidden is None:
            hidden = self.cell.initial_state(x.shape[0])
        outputs = []
        for t in range(x.shape[1]):
            y, hidden = self.cell(x[:, t], hidden, dt_s[:, t])
            outputs.append(y)
        return torch.stack(outputs, dim=1), hidden
