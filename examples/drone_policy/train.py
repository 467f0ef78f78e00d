"""Imitation training of a :class:`~lnn_ros_examples.drone_policy.model.DronePolicy` and export.

The training path is the library's (:mod:`lnn_ros.training.camera`, the one ``lnn-ros train``
uses on camera bags): the dataset's step rows carry the index of the held frame
(:mod:`lnn_ros_examples.drone_policy.data`) and :class:`FrameIndexedPolicy` encodes each
distinct frame of a chunk once and hands every step the embedding of its frame, which is what
the runtime does (encode on arrival, hold until the next frame). Encoder and cell are trained
end to end through truncated BPTT (:func:`lnn_ros.training.fit`). This module adds the drone's
names: its IMU features, outputs and limits, Δt rule and training settings.

Export writes the encoder graph and the cell's step graph
(:func:`lnn_ros.training.camera.export_camera_policy`); the manifest carries the IMU
normalisation, the camera normalisation and preprocessing, the outputs' Twist fields, units and
safe limits.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

from lnn_ros.bundle import CameraSpec, DtLimits, FeatureSpec, OutputSpec
from lnn_ros.onnx_export import BundleExport
from lnn_ros.sim.errors import SimError
from lnn_ros.training.camera import (
    FrameIndexedPolicy,
    camera_features,
    camera_section,
    export_camera_policy,
    fit_camera_policy,
    new_camera_policy,
    rollout,
)
from lnn_ros.training.trainer import LRSchedule, TrainConfig, TrainResult
from lnn_ros_examples.drone_policy.data import (
    IMU_FEATURE_NAMES,
    IMU_FIELDS,
    IMU_UNITS,
    PREPROCESS,
    DtRule,
    PolicyDataset,
)
from lnn_ros_examples.drone_policy.model import DronePolicy, PolicyArch

__all__ = [
    "DEFAULT_TRAIN", "DT_LIMITS", "DT_RULE", "IMU_FEATURES", "OUTPUT_SPECS", "FrameIndexedPolicy", "TrainedPolicy",
    "camera_spec", "export_policy", "manifest_features", "new_policy", "rollout", "train_config_with", "train_policy",
]  # fmt: skip

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
IMU_FEATURES = tuple(
    FeatureSpec(name=name, source="imu", field=field, unit=unit) for name, field, unit in zip(IMU_FEATURE_NAMES, IMU_FIELDS, IMU_UNITS)
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


class TrainedPolicy(NamedTuple):
    """A fitted policy and how the fit went."""

    policy: DronePolicy
    result: TrainResult


def new_policy(arch: PolicyArch, dataset: PolicyDataset, seed: int = 0) -> DronePolicy:
    """A freshly initialised policy whose normalisation comes from ``dataset``."""
    return new_camera_policy(arch, dataset, seed)


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
    result = fit_camera_policy(policy, train, validation, config)
    return TrainedPolicy(policy, result)


def manifest_features(policy: DronePolicy) -> list[FeatureSpec]:
    """Six IMU features with the policy's normalisation, then the E embedding features."""
    return camera_features(policy, IMU_FEATURES)


def camera_spec(policy: DronePolicy) -> CameraSpec:
    """How frames feed the policy's encoder: rgb8 at the trained size with its normalisation, and the
    preprocessing the training frames went through (any camera size / encoding / jpeg -> that size)."""
    return camera_section(policy, PREPROCESS)


def export_policy(policy: DronePolicy, out_dir: str | Path, *, name: str, description: str = "") -> BundleExport:
    """Write ``policy`` as a verified bundle (encoder + step graph, manifest) into ``out_dir``.

    Raises:
        ExportError: the export or its parity checks failed.
    """
    return export_camera_policy(
        policy, out_dir, name=name, imu_features=IMU_FEATURES, outputs=OUTPUT_SPECS, dt=DT_LIMITS,
        preprocess=PREPROCESS, description=description,
    )


def train_config_with(**changes: Any) -> TrainConfig:
    """:data:`DEFAULT_TRAIN` with some fields changed."""
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise SimError(f"Unknown TrainConfig fields {unknown!r}; use fields of lnn_ros.training.TrainConfig.")
    return dataclasses.replace(DEFAULT_TRAIN, **changes)
