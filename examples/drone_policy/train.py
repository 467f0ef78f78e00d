"""Imitation training of a :class:`~lnn_ros_examples.drone_policy.model.DronePolicy` with the core training API, and export.

The training API (:func:`lnn_ros.training.fit`) fits ``model(x [B,T,F], dt_s, hidden)``. A
policy step needs the *held camera frame*, and storing an image per IMU step would repeat
each frame about 7 times (200 Hz IMU, 30 Hz camera) and run the encoder that often. So the
dataset's step rows carry the index of the held frame (:mod:`lnn_ros_examples.drone_policy.data`) and
:class:`FrameIndexedPolicy` adapts the policy to the trainer's signature: per chunk it encodes
each distinct frame once and hands every step the embedding of its frame, which is what the
runtime does (encode on arrival, hold until the next frame). Encoder and cell are trained end
to end through truncated BPTT.

Export writes the encoder graph and the cell's step graph with
:func:`lnn_ros.onnx_export.export_bundle_with_report`; the manifest carries the IMU
normalisation, the camera normalisation, the outputs' Twist fields, units and safe limits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from lnn_ros.bundle import CameraSpec, DtLimits, FeatureSpec, OutputSpec
from lnn_ros.onnx_export import BundleExport, export_bundle_with_report
from lnn_ros.sim.errors import SimError
from lnn_ros.training.data import FeatureStats, TimedSequence
from lnn_ros.training.trainer import LRSchedule, TrainConfig, TrainResult, fit
from lnn_ros_examples.drone_policy.data import (
    FRAME_COLUMN,
    IMU_FEATURE_NAMES,
    IMU_FIELDS,
    IMU_UNITS,
    PREPROCESS,
    DtRule,
    PolicyDataset,
    image_statistics,
)
from lnn_ros_examples.drone_policy.model import DronePolicy, PolicyArch

DT_LIMITS = DtLimits(min_s=1e-3, max_s=0.05, max_gap_s=0.5)
DT_RULE = DtRule(max_dt_s=DT_LIMITS.max_s, max_gap_s=DT_LIMITS.max_gap_s)
MAX_SPEED_MPS = 2.0
MAX_YAW_RATE_RPS = 1.5
OUTPUT_SPECS = (
    OutputSpec("vx", "m/s", -MAX_SPEED_MPS, MAX_SPEED_MPS, "linear.x"),
    OutputSpec("vy", "m/s", -MAX_SPEED_MPS, MAX_SPEED_MPS, "linear.y"),
    OutputSpec("vz", "m/s", -MAX_SPEED_MPS, MAX_SPEED_MPS, "linear.z"),
    OutputSpec("yaw_rate", "rad/s", -MAX_YAW_RATE_RPS, MAX_YAW_RATE_RPS, "angular.z"),
)

DEFAULT_TRAIN = TrainConfig(
    epochs=40,
    batch_size=32,
    window_steps=256,
    tbptt_steps=64,
    burn_in_steps=16,
    learning_rate=3e-3,
    lr_schedule=LRSchedule.COSINE,
    grad_clip_norm=1.0,
    patience=8,
    seed=0,
    threads=1,
)


class FrameIndexedPolicy(nn.Module):
    """The trainer's ``model(x, dt_s, hidden)`` over rows ``[normalised IMU (6), frame index]``.

    Args:
        policy: the policy being trained.
        frames: every frame the rows index, uint8 [N, H, W, 3] (kept as a tensor, not a parameter).
    """

    def __init__(self, policy: DronePolicy, frames: np.ndarray) -> None:
        super().__init__()
        self.policy = policy
        self.frames = torch.from_numpy(np.ascontiguousarray(frames))

    def forward(self, x: Tensor, dt_s: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        index = x[..., FRAME_COLUMN].round().long()
        distinct, inverse = torch.unique(index, return_inverse=True)
        embeddings = self.policy.embed(self.frames[distinct])[inverse]
        return self.policy(x[..., :FRAME_COLUMN], embeddings, dt_s, hidden)


class TrainedPolicy(NamedTuple):
    """A fitted policy and how the fit went."""

    policy: DronePolicy
    result: TrainResult


def new_policy(arch: PolicyArch, dataset: PolicyDataset, seed: int = 0) -> DronePolicy:
    """A freshly initialised policy whose normalisation comes from ``dataset``."""
    imu = np.concatenate([s.x[:, :FRAME_COLUMN] for s in dataset.sequences], axis=0).astype(np.float64)
    std = imu.std(axis=0)
    std = np.where(std < 1e-6, 1.0, std)
    image_mean, image_std = image_statistics(dataset.frames)
    torch.manual_seed(seed)
    return DronePolicy(
        arch,
        tuple(float(v) for v in imu.mean(axis=0)),
        tuple(float(v) for v in std),
        image_mean,
        image_std,
    )


def _stats(policy: DronePolicy) -> FeatureStats:
    """The trainer's input normalisation: the policy's IMU statistics, the frame index untouched."""
    return FeatureStats(mean=(*policy.imu_mean, 0.0), std=(*policy.imu_std, 1.0))


def _shift_frames(sequences: Sequence[TimedSequence], offset: int) -> list[TimedSequence]:
    shifted = []
    for s in sequences:
        x = s.x.copy()
        x[:, FRAME_COLUMN] += offset
        shifted.append(TimedSequence(x, s.dt_s, s.y))
    return shifted


def train_policy(
    policy: DronePolicy,
    train: PolicyDataset,
    validation: PolicyDataset | None = None,
    config: TrainConfig = DEFAULT_TRAIN,
) -> TrainedPolicy:
    """Fit ``policy`` in place by imitation (masked MSE to the expert's commands).

    Args:
        policy: the policy to train (fresh from :func:`new_policy` or already trained: fine-tuning).
        train: training data.
        validation: held-out episodes for early stopping (None: ``config.val_fraction`` of ``train``).
        config: training settings (see :class:`~lnn_ros.training.TrainConfig`).

    Raises:
        TrainingError: bad data or a diverging loss.
    """
    frames = train.frames
    sequences = list(train.sequences)
    val_sequences = None
    if validation is not None:
        frames = np.concatenate([train.frames, validation.frames], axis=0)
        val_sequences = _shift_frames(validation.sequences, len(train.frames))
    model = FrameIndexedPolicy(policy, frames)
    result = fit(model, sequences, config, validation=val_sequences, stats=_stats(policy))
    policy.eval()
    return TrainedPolicy(policy, result)


def manifest_features(policy: DronePolicy) -> list[FeatureSpec]:
    """Six IMU features with the policy's normalisation, then the E embedding features."""
    imu = [
        FeatureSpec(name=name, source="imu", field=field, unit=unit, mean=mean, std=std)
        for name, field, unit, mean, std in zip(IMU_FEATURE_NAMES, IMU_FIELDS, IMU_UNITS, policy.imu_mean, policy.imu_std)
    ]
    camera = [FeatureSpec(name=f"embedding_{i}", source="camera", index=i) for i in range(policy.arch.embedding_size)]
    return imu + camera


def camera_spec(policy: DronePolicy) -> CameraSpec:
    """How frames feed the policy's encoder: rgb8 at the trained size with its normalisation, and the
    preprocessing the training frames went through (any camera size / encoding / jpeg -> that size)."""
    arch = policy.arch
    return CameraSpec(
        width=arch.image_width,
        height=arch.image_height,
        encoding="rgb8",
        embedding_size=arch.embedding_size,
        mean=policy.image_mean,
        std=policy.image_std,
        preprocess=PREPROCESS,
    )


def export_policy(policy: DronePolicy, out_dir: str | Path, *, name: str, description: str = "") -> BundleExport:
    """Write ``policy`` as a verified bundle (encoder + step graph, manifest) into ``out_dir``.

    Raises:
        ExportError: the export or its parity checks failed.
    """
    policy.eval()
    return export_bundle_with_report(
        policy.cell,
        out_dir,
        name=name,
        features=manifest_features(policy),
        outputs=list(OUTPUT_SPECS),
        dt=DT_LIMITS,
        window_steps=None,
        encoder=policy.encoder,
        camera=camera_spec(policy),
        description=description,
    )


@torch.no_grad()
def rollout(policy: DronePolicy, sequence: TimedSequence, frames: np.ndarray) -> np.ndarray:
    """The policy's outputs [T, 4] over one fused sequence (rows as in :mod:`~lnn_ros_examples.drone_policy.data`)."""
    policy.eval()
    model = FrameIndexedPolicy(policy, frames)
    x = torch.from_numpy(_stats(policy).normalise(sequence.x)).unsqueeze(0)
    y, _ = model(x, torch.from_numpy(sequence.dt_s).unsqueeze(0), None)
    return y[0].numpy()


def train_config_with(**changes: Any) -> TrainConfig:
    """:data:`DEFAULT_TRAIN` with some fields changed."""
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise SimError(f"Unknown TrainConfig fields {unknown!r}; use fields of lnn_ros.training.TrainConfig.")
    return dataclasses.replace(DEFAULT_TRAIN, **changes)
