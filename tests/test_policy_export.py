"""A policy exported as a bundle and run by the torch-free runtime computes what training computed.

The training model (``FrameIndexedPolicy`` over fused sequences) and the runtime
(``PolicyRunner`` fed the recorded messages in the simulator's order) must agree step for
step: same held camera frame, same normalisation, same Δt. A fusion that is one frame off
would not pass: the test checks that such a shift makes a much larger difference.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from lnn_ros.bundle import load_bundle
from lnn_ros.sim import SimConfig, record_demonstration
from lnn_ros.sim.expert.noisy import NoisyExpert
from lnn_ros.training.data import TimedSequence
from lnn_ros_examples.drone_policy.data import FRAME_COLUMN, build_dataset
from lnn_ros_examples.drone_policy.evaluate import replay_commands
from lnn_ros_examples.drone_policy.model import ImageEncoder, PolicyArch
from lnn_ros_examples.drone_policy.train import (
    DT_RULE,
    OUTPUT_SPECS,
    export_policy,
    new_policy,
    rollout,
    train_config_with,
    train_policy,
)

LOW = np.array([o.min for o in OUTPUT_SPECS])
HIGH = np.array([o.max for o in OUTPUT_SPECS])


@pytest.fixture(scope="module")
def demo():  # type: ignore[no-untyped-def]
    config = dataclasses.replace(SimConfig(), duration_s=1.0)
    recorded, _ = record_demonstration(config, "nominal", 7, pilot_factory=NoisyExpert(), expert_share=0.0)
    return recorded


@pytest.mark.parametrize("kind", ["cfc", "lstm", "mlp"])
def test_runtime_replay_matches_the_training_model(kind: str, demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = build_dataset([demo], DT_RULE)
    policy = new_policy(PolicyArch(cell_kind=kind), data, seed=1)
    export = export_policy(policy, tmp_path / kind, name=f"test_{kind}")
    manifest = export.manifest
    assert set(manifest.graphs) == {"step", "encoder"}
    assert [f.field for f in manifest.features[:6]] == [
        "angular_velocity.x", "angular_velocity.y", "angular_velocity.z",
        "linear_acceleration.x", "linear_acceleration.y", "linear_acceleration.z",
    ]  # fmt: skip
    assert [f.index for f in manifest.features[6:]] == list(range(16))

    (sequence,) = data.sequences
    expected = np.clip(rollout(policy, sequence, data.frames), LOW, HIGH)
    commands, labels = replay_commands(load_bundle(tmp_path / kind), demo)
    # The runner's first step only starts its clock (no command); training sees it with Δt = 0.
    assert commands.shape == (len(sequence.x) - 1, 4)
    np.testing.assert_array_equal(labels, sequence.y[1:])
    error = float(np.abs(commands - expected[1:]).max())
    assert error < 1e-4, error

    shifted_x = sequence.x.copy()
    shifted_x[:, FRAME_COLUMN] = np.maximum(shifted_x[:, FRAME_COLUMN] - 1, 0)  # hold the previous frame instead
    shifted = np.clip(rollout(policy, TimedSequence(shifted_x, sequence.dt_s, sequence.y), data.frames), LOW, HIGH)
    shift_error = float(np.abs(commands - shifted[1:]).max())
    assert shift_error > 100 * max(error, 1e-7)


def test_training_reduces_the_imitation_loss(demo) -> None:  # type: ignore[no-untyped-def]
    data = build_dataset([demo], DT_RULE)
    policy = new_policy(PolicyArch(cell_kind="cfc", units=8), data, seed=0)
    config = train_config_with(epochs=12, window_steps=32, tbptt_steps=16, burn_in_steps=2, batch_size=2, patience=None, progress=False)
    result = train_policy(policy, data, data, config).result
    assert result.val_loss[-1] < 0.5 * result.val_loss[0], result.val_loss
    assert not policy.training


def test_encoder_keeps_where_things_are_in_the_image() -> None:
    """A red blob on the left and on the right give different embeddings (no global pooling)."""
    torch.manual_seed(0)
    encoder = ImageEncoder(PolicyArch()).eval()
    left = torch.zeros(1, 3, 48, 64)
    right = torch.zeros(1, 3, 48, 64)
    left[0, 0, 20:28, 4:12] = 3.0
    right[0, 0, 20:28, 52:60] = 3.0
    with torch.no_grad():
        assert float((encoder(left) - encoder(right)).abs().max()) > 1e-2
