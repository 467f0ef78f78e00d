"""Camera + IMU policies: a small CNN encoder in front of any recurrent cell, trained end to end.

Per driver (IMU) step k, with the runtime's fusion rule (:class:`lnn_ros.runtime.PolicyRunner`:
the encoder runs once per frame on arrival, every step uses the newest frame received before it)::

    e_j  = encoder((image_j / 255 - mean_c) / std_c)         once per camera frame j, E features
    x_k  = [(imu_k - mean_imu) / std_imu,  e_{held(k)}]        F + E features
    y_k, h_k = cell(x_k, h_{k-1}, Δt_k)

The encoder (three stride-2 convolutions, flatten, linear, tanh) keeps where things are in the
image; it is not pooled, because global pooling would throw the target's position away.

Training rows are ``[raw IMU (F), held frame index]`` into one uint8 frame array
[N, H, W, 3] of already preprocessed frames (what the encoder sees in flight);
:class:`FrameIndexedPolicy` adapts the policy to :func:`lnn_ros.training.fit`'s
``model(x, dt_s, hidden)``, encoding each distinct frame of a chunk once. ``lnn-ros train`` on
camera bags and the simulator's drone recipe (``lnn_ros_examples.drone_policy``) both train through
:func:`fit_camera_policy` and export through :func:`export_camera_policy`. Imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from lnn_ros.bundle.manifest import CameraSpec, DtLimits, FeatureSpec, OutputSpec
from lnn_ros.bundle.preprocess import Preprocess
from lnn_ros.cells import CellConfigError, RecurrentCell, build_cell
from lnn_ros.training.data import FeatureStats, TimedSequence
from lnn_ros.training.distributed import DistContext
from lnn_ros.training.errors import TrainingError
from lnn_ros.training.models import CELL_KINDS, default_cell_config
from lnn_ros.training.trainer import TrainConfig, TrainResult, fit

if TYPE_CHECKING:
    from lnn_ros.onnx_export.bundle_writer import BundleExport

ENCODER_KIND = "conv3"
"""The encoder of :class:`ImageEncoder`, as checkpoints name it."""


class EncoderSizes(Protocol):
    """What :class:`ImageEncoder` reads from an architecture."""

    @property
    def embedding_size(self) -> int: ...
    @property
    def channels(self) -> tuple[int, int, int]: ...
    @property
    def image_height(self) -> int: ...
    @property
    def image_width(self) -> int: ...


@dataclass(frozen=True)
class CameraArch:
    """Sizes of a camera policy.

    Attributes:
        cell_kind: any of :data:`lnn_ros.training.models.CELL_KINDS`.
        units: cell width (CfC hidden size, LSTM units, MLP hidden units, wired neurons).
        embedding_size: E, encoder output features.
        channels: output channels of the three convolutions.
        image_height: rows of the encoder's input (frames are preprocessed to it).
        image_width: columns of the encoder's input.
    """

    cell_kind: str = "cfc"
    units: int = 32
    embedding_size: int = 16
    channels: tuple[int, int, int] = (8, 16, 16)
    image_height: int = 48
    image_width: int = 64

    def __post_init__(self) -> None:
        if self.cell_kind not in CELL_KINDS:
            raise TrainingError(f"The cell kind must be one of {list(CELL_KINDS)}, got {self.cell_kind!r}.")
        if len(self.channels) != 3:
            raise TrainingError(f"The encoder needs three channel counts (one per convolution), got {self.channels!r}.")
        sizes = (self.units, self.embedding_size, *self.channels)
        if min(sizes) < 1:
            raise TrainingError(f"Camera policy sizes must be >= 1, got units/embedding/channels {sizes!r}.")
        if self.image_height % 8 or self.image_width % 8 or min(self.image_height, self.image_width) < 8:
            raise TrainingError(
                f"The encoder's image size must be a multiple of 8 (three stride-2 convolutions), got "
                f"{self.image_width!r}x{self.image_height!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell_kind": self.cell_kind,
            "units": self.units,
            "embedding_size": self.embedding_size,
            "channels": list(self.channels),
            "image_height": self.image_height,
            "image_width": self.image_width,
        }


class _Sizes(NamedTuple):
    embedding_size: int
    channels: tuple[int, int, int]
    image_height: int
    image_width: int


class ImageEncoder(nn.Module):
    """``image [B, 3, H, W]`` (normalised) -> ``embedding [B, E]`` in (-1, 1).

    ``conv5x5/2 -> ReLU -> conv3x3/2 -> ReLU -> conv3x3/2 -> ReLU -> flatten -> linear -> tanh``.
    """

    def __init__(self, arch: EncoderSizes) -> None:
        super().__init__()
        c1, c2, c3 = arch.channels
        self.sizes = _Sizes(arch.embedding_size, (c1, c2, c3), arch.image_height, arch.image_width)
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

    def config(self) -> dict[str, Any]:
        """Plain data that :func:`build_encoder` rebuilds this encoder from (without weights)."""
        return {"kind": ENCODER_KIND, **self.sizes._asdict(), "channels": list(self.sizes.channels)}


def build_encoder(config: Any) -> ImageEncoder:
    """The encoder of an :meth:`ImageEncoder.config` mapping.

    Raises:
        TrainingError: an unknown kind or bad sizes.
    """
    if not isinstance(config, dict) or config.get("kind") != ENCODER_KIND:
        raise TrainingError(f"An encoder config must be a mapping with kind {ENCODER_KIND!r}, got {config!r}.")
    try:
        arch = CameraArch(
            embedding_size=int(config["embedding_size"]),
            channels=tuple(int(c) for c in config["channels"]),  # type: ignore[arg-type]
            image_height=int(config["image_height"]),
            image_width=int(config["image_width"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainingError(f"Encoder config {config!r} lacks or mistypes a size ({exc}).") from None
    return ImageEncoder(arch)


class CameraPolicy(nn.Module):
    """Encoder + cell with the normalisation the bundle manifest will carry.

    Args:
        arch: sizes.
        imu_mean: mean of the F raw IMU features.
        imu_std: std of the F raw IMU features.
        image_mean: per-channel mean of ``pixel / 255`` (rgb).
        image_std: per-channel std of ``pixel / 255``.
        output_size: O, the commands (default four: vx, vy, vz, yaw rate).
        cell_config: the cell's :func:`~lnn_ros.cells.build_cell` config (default:
            :func:`~lnn_ros.training.models.default_cell_config` of ``arch``).

    Raises:
        TrainingError: statistics of the wrong length or not positive, or a cell that does not fit.
    """

    _pixel_scale: Tensor
    _pixel_offset: Tensor

    def __init__(
        self,
        arch: CameraArch,
        imu_mean: Sequence[float],
        imu_std: Sequence[float],
        image_mean: Sequence[float],
        image_std: Sequence[float],
        output_size: int = 4,
        cell_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, values, size in (
            ("imu_std", imu_std, len(imu_mean)),
            ("image_mean", image_mean, 3),
            ("image_std", image_std, 3),
        ):
            if len(values) != size:
                raise TrainingError(f"CameraPolicy {name} needs {size} values, got {tuple(values)!r}.")
        if not imu_mean or min(imu_std) <= 0 or min(image_std) <= 0:
            raise TrainingError(f"CameraPolicy needs IMU features and stds > 0, got imu {imu_std!r} and image {image_std!r}.")
        self.arch = arch
        self.imu_mean = tuple(float(v) for v in imu_mean)
        self.imu_std = tuple(float(v) for v in imu_std)
        self.image_mean = tuple(float(v) for v in image_mean)
        self.image_std = tuple(float(v) for v in image_std)
        self.encoder = ImageEncoder(arch)  # built before the cell: the seeded initialisation depends on the order
        input_size = len(self.imu_mean) + arch.embedding_size
        config = cell_config or default_cell_config(arch.cell_kind, input_size, output_size, arch.units)
        try:
            self.cell: RecurrentCell = build_cell(config)
        except CellConfigError as exc:
            raise TrainingError(f"Cannot build the cell: {exc}") from None
        if self.cell.input_size != input_size or self.cell.output_size != output_size:
            raise TrainingError(
                f"The cell takes {self.cell.input_size} inputs and gives {self.cell.output_size} outputs; the camera "
                f"policy needs {input_size} ({len(self.imu_mean)} IMU + {arch.embedding_size} embedding) and {output_size}."
            )
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
            imu: normalised IMU features [B, T, F].
            embeddings: the held embedding of each step [B, T, E].
            dt_s: Δt of each step [B, T] or [B, T, 1].
            hidden: initial state [B, H] (zeros when None).

        Returns:
            ``(y [B, T, O], hidden [B, H])``.
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

    def row_stats(self) -> FeatureStats:
        """The trainer's normalisation of training rows: the IMU statistics, the frame index untouched."""
        return FeatureStats(mean=(*self.imu_mean, 0.0), std=(*self.imu_std, 1.0))

    def cell_stats(self) -> FeatureStats:
        """The normalisation of the cell's inputs (the embedding passes unchanged), as a checkpoint stores it."""
        size = self.arch.embedding_size
        return FeatureStats(mean=(*self.imu_mean, *(0.0,) * size), std=(*self.imu_std, *(1.0,) * size))


class FrameIndexedPolicy(nn.Module):
    """The trainer's ``model(x, dt_s, hidden)`` over rows ``[normalised IMU (F), frame index]``.

    Args:
        policy: the policy being trained.
        frames: every frame the rows index, uint8 [N, H, W, 3] (kept as a tensor, not a parameter).
    """

    def __init__(self, policy: CameraPolicy, frames: np.ndarray) -> None:
        super().__init__()
        self.policy = policy
        self.frames = torch.from_numpy(np.ascontiguousarray(frames))

    def forward(self, x: Tensor, dt_s: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        index = x[..., -1].round().long()
        distinct, inverse = torch.unique(index, return_inverse=True)
        embeddings = self.policy.embed(self.frames[distinct])[inverse]
        return self.policy(x[..., :-1], embeddings, dt_s, hidden)


class Framed(Protocol):
    """Anything with training rows and the frames they index (:class:`FramedData`, the drone recipe's dataset)."""

    @property
    def sequences(self) -> Sequence[TimedSequence]: ...
    @property
    def frames(self) -> np.ndarray: ...


class FramedData(NamedTuple):
    """Training data of a camera policy: rows ``[raw IMU (F), frame index]`` and the frames they index.

    Attributes:
        sequences: x [T, F + 1], dt_s [T], y [T, O].
        frames: uint8 [N, H, W, 3], preprocessed to the encoder's size.
    """

    sequences: Sequence[TimedSequence]
    frames: np.ndarray


def image_statistics(frames: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of ``pixel / 255`` over uint8 frames [N, H, W, 3] (std at least 1e-3).

    Raises:
        TrainingError: not rgb frames, or none.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise TrainingError(f"image_statistics needs rgb frames [N, H, W, 3] with N >= 1, got shape {frames.shape!r}.")
    sample = frames[:: max(1, len(frames) // 2000)].reshape(-1, 3).astype(np.float64) / 255.0
    mean = sample.mean(axis=0)
    std = np.maximum(sample.std(axis=0), 1e-3)
    return (float(mean[0]), float(mean[1]), float(mean[2])), (float(std[0]), float(std[1]), float(std[2]))


def new_camera_policy(
    arch: CameraArch,
    data: Framed,
    seed: int = 0,
    *,
    cell_config: dict[str, Any] | None = None,
    normalise: bool = True,
) -> CameraPolicy:
    """A freshly initialised policy whose IMU and image normalisation come from ``data``
    (``normalise=False``: the IMU features pass unchanged)."""
    imu = np.concatenate([s.x[:, :-1] for s in data.sequences], axis=0).astype(np.float64)
    mean, std = imu.mean(axis=0), imu.std(axis=0)
    std = np.where(std < 1e-6, 1.0, std)
    if not normalise:
        mean, std = np.zeros_like(mean), np.ones_like(std)
    image_mean, image_std = image_statistics(data.frames)
    torch.manual_seed(seed)
    return CameraPolicy(
        arch,
        tuple(float(v) for v in mean),
        tuple(float(v) for v in std),
        image_mean,
        image_std,
        output_size=int(data.sequences[0].y.shape[1]),
        cell_config=cell_config,
    )


def _shift_frames(sequences: Sequence[TimedSequence], offset: int) -> list[TimedSequence]:
    shifted = []
    for s in sequences:
        x = s.x.copy()
        x[:, -1] += offset
        shifted.append(TimedSequence(x, s.dt_s, s.y))
    return shifted


def fit_camera_policy(
    policy: CameraPolicy,
    train: Framed,
    validation: Framed | None = None,
    config: TrainConfig = TrainConfig(),
    context: DistContext | None = None,
) -> TrainResult:
    """Fit ``policy`` in place with :func:`lnn_ros.training.fit` (truncated BPTT, early stopping).

    ``validation`` may index its own frames (they are appended) or the same array as ``train``
    (``validation.frames is train.frames``). None: ``config.val_fraction`` of ``train``.

    Raises:
        TrainingError: bad data or a diverging loss.
    """
    frames = train.frames
    val_sequences = None
    if validation is not None:
        if validation.frames is train.frames:
            val_sequences = list(validation.sequences)
        else:
            frames = np.concatenate([train.frames, validation.frames], axis=0)
            val_sequences = _shift_frames(validation.sequences, len(train.frames))
    model = FrameIndexedPolicy(policy, frames)
    result = fit(model, list(train.sequences), config, validation=val_sequences, stats=policy.row_stats(), context=context)
    policy.eval()
    return result


@torch.no_grad()
def rollout(policy: CameraPolicy, sequence: TimedSequence, frames: np.ndarray) -> np.ndarray:
    """The policy's outputs [T, O] over one sequence of rows ``[raw IMU, frame index]`` (unclipped)."""
    policy.eval()
    model = FrameIndexedPolicy(policy, frames)
    x = torch.from_numpy(policy.row_stats().normalise(sequence.x)).unsqueeze(0)
    y, _ = model(x, torch.from_numpy(sequence.dt_s).unsqueeze(0), None)
    return y[0].numpy()


def camera_section(policy: CameraPolicy, preprocess: Preprocess | None) -> CameraSpec:
    """The manifest's camera section: rgb8 at the encoder's size with the policy's normalisation and
    the preprocessing the training frames went through."""
    arch = policy.arch
    return CameraSpec(
        width=arch.image_width,
        height=arch.image_height,
        encoding="rgb8",
        embedding_size=arch.embedding_size,
        mean=policy.image_mean,
        std=policy.image_std,
        preprocess=preprocess,
    )


def camera_features(policy: CameraPolicy, imu: Sequence[FeatureSpec]) -> list[FeatureSpec]:
    """The IMU features (``imu``, one per IMU input, in order) with the policy's normalisation, then
    the E embedding features.

    Raises:
        TrainingError: ``imu`` does not name one feature per IMU input.
    """
    if len(imu) != len(policy.imu_mean):
        raise TrainingError(f"The policy takes {len(policy.imu_mean)} IMU features but {len(imu)} were named.")
    named = [
        FeatureSpec(name=f.name, source=f.source, field=f.field, unit=f.unit, mean=mean, std=std)
        for f, mean, std in zip(imu, policy.imu_mean, policy.imu_std)
    ]
    camera = [FeatureSpec(name=f"embedding_{i}", source="camera", index=i) for i in range(policy.arch.embedding_size)]
    return named + camera


def export_camera_policy(
    policy: CameraPolicy,
    out_dir: str | Path,
    *,
    name: str,
    imu_features: Sequence[FeatureSpec],
    outputs: Sequence[OutputSpec],
    dt: DtLimits,
    preprocess: Preprocess | None,
    description: str = "",
) -> BundleExport:
    """Write ``policy`` as a verified bundle (encoder + step graph, manifest) into ``out_dir``.

    Raises:
        ExportError: the export or its parity checks failed.
    """
    from lnn_ros.onnx_export.bundle_writer import export_bundle_with_report

    policy.eval()
    return export_bundle_with_report(
        policy.cell,
        out_dir,
        name=name,
        features=camera_features(policy, imu_features),
        outputs=list(outputs),
        dt=dt,
        window_steps=None,
        encoder=policy.encoder,
        camera=camera_section(policy, preprocess),
        description=description,
    )
