"""fit(): the loss goes down, TBPTT carries and detaches the state, early stopping, LTC constraints, seeding."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from lnn_ros.cells import AutoNCP, LTCCell, SequenceModel, build_cell
from lnn_ros.training.data import FeatureStats, TimedSequence, make_windows
from lnn_ros.training.errors import TrainingError
from lnn_ros.training.trainer import TrainConfig, evaluate, fit

FAST = TrainConfig(epochs=12, batch_size=8, window_steps=24, tbptt_steps=8, learning_rate=1e-2, patience=None, progress=False)


def lowpass_data(count: int, seed: int, tau_s: float = 0.3) -> list[TimedSequence]:
    """y = x low-pass filtered with time constant tau over irregular Δt: needs memory and Δt."""
    generator = np.random.default_rng(seed)
    data = []
    for _ in range(count):
        length = int(generator.integers(20, 40))
        x = generator.uniform(-1, 1, (length, 1)).astype(np.float32)
        dt_s = generator.uniform(0.02, 0.3, length).astype(np.float32)
        dt_s[0] = 0.0
        y = np.zeros((length, 1), np.float32)
        for t in range(length):
            previous = y[t - 1, 0] if t else 0.0
            y[t, 0] = previous + (1.0 - np.exp(-dt_s[t] / tau_s)) * (x[t, 0] - previous)
        data.append(TimedSequence(x + 3.0, dt_s, y))  # offset: normalisation matters
    return data


def small_cfc(seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(build_cell({"kind": "cfc", "input_size": 1, "hidden_size": 8, "backbone_units": 16, "proj_size": 1}))


def test_training_reduces_the_loss() -> None:
    model = small_cfc()
    train, validation = lowpass_data(24, 0), lowpass_data(6, 1)
    stats = FeatureStats.from_sequences(train)
    untrained = evaluate(model, make_windows(validation, FAST.window_steps, stats=stats))
    result = fit(model, train, FAST, validation=validation)
    assert result.epochs_run == 12 and not result.stopped_early
    assert len(result.train_loss) == len(result.val_loss) == 12
    assert result.train_loss[-1] < 0.5 * result.train_loss[0]
    assert result.best_loss < 0.25 * untrained
    assert result.best_loss == min(result.val_loss) and result.val_loss[result.best_epoch] == result.best_loss
    assert result.stats == stats and abs(stats.mean[0] - 3.0) < 0.1
    assert result.optimizer_steps > 0 and not model.training


def test_best_weights_are_restored() -> None:
    model = small_cfc()
    validation = lowpass_data(6, 1)
    result = fit(model, lowpass_data(24, 0), FAST, validation=validation)
    windows = make_windows(validation, FAST.window_steps, stats=result.stats)
    assert math.isclose(evaluate(model, windows), result.best_loss, rel_tol=1e-5)


def test_early_stopping_triggers() -> None:
    config = TrainConfig(
        epochs=50, batch_size=8, window_steps=24, tbptt_steps=8, patience=2, min_delta=1e9, progress=False
    )
    result = fit(small_cfc(), lowpass_data(8, 0), config, validation=lowpass_data(4, 1))
    # With min_delta huge no epoch after the first counts as an improvement: stop after 1 + patience.
    assert result.stopped_early and result.epochs_run == 3 and result.best_epoch == 0


def test_same_seed_same_result() -> None:
    data = lowpass_data(10, 0)
    config = TrainConfig(epochs=3, batch_size=4, window_steps=16, tbptt_steps=8, seed=5, progress=False)
    first = fit(small_cfc(), data, config)
    second = fit(small_cfc(), data, config)
    assert first.train_loss == second.train_loss and first.val_loss == second.val_loss
    third = fit(small_cfc(), data, dataclasses.replace(config, seed=6))
    assert third.train_loss != first.train_loss


class Recorder(nn.Module):
    """A SequenceModel that records the hidden state each chunk starts from."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = small_cfc()
        self.received: list[Tensor | None] = []
        self.returned: list[Tensor] = []

    def forward(self, x: Tensor, dt_s: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.received.append(hidden)
        y, hidden_out = self.inner(x, dt_s, hidden)
        self.returned.append(hidden_out)
        return y, hidden_out


def test_tbptt_carries_the_state_across_chunks_and_detaches_it() -> None:
    model = Recorder()
    data = [TimedSequence(np.ones((24, 1), np.float32), np.full(24, 0.1, np.float32), np.zeros((24, 1), np.float32))]
    config = TrainConfig(epochs=1, batch_size=1, window_steps=24, tbptt_steps=8, patience=None, val_fraction=0.0, progress=False)
    fit(model, data, config)
    training_calls = model.received[:3]  # then the trainer does no validation pass (val_fraction 0)
    assert len(model.received) == 3
    assert training_calls[0] is None
    for before, carried in zip(model.returned[:2], training_calls[1:]):
        assert carried is not None and not carried.requires_grad and before.requires_grad
        assert torch.equal(carried, before.detach())


def test_ltc_constraint_hook_runs_after_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    cell = LTCCell(1, AutoNCP(6, 1), ode_unfolds=2, implicit_param_constraints=False)
    calls: list[int] = []
    original = cell.apply_weight_constraints

    def counting() -> None:
        calls.append(1)
        original()

    monkeypatch.setattr(cell, "apply_weight_constraints", counting)
    config = TrainConfig(epochs=2, batch_size=4, window_steps=16, tbptt_steps=8, learning_rate=0.5, progress=False)
    result = fit(SequenceModel(cell), lowpass_data(8, 0), config)
    assert len(calls) == result.optimizer_steps > 0
    for name in ("w", "sensory_w", "cm", "gleak"):
        assert float(getattr(cell, name).detach().min()) >= 0.0, name


def test_bad_config_is_refused() -> None:
    with pytest.raises(TrainingError, match="burn_in_steps must be in"):
        TrainConfig(window_steps=8, burn_in_steps=8)
    with pytest.raises(TrainingError, match="tbptt_steps must be an integer >= 1, got 0"):
        TrainConfig(tbptt_steps=0)
