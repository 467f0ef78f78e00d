"""Fit a sequence model on irregularly sampled sequences with truncated BPTT.

The model is anything with :class:`~lnn_ros.cells.SequenceModel`'s forward,
``model(x [B,T,...], dt_s [B,T], hidden) -> (y [B,T,O], hidden)`` with ``hidden=None`` meaning
"start from zeros" (a camera policy puts its image encoder in front of the cell and keeps
this signature). Per epoch::

    shuffle the windows (make_windows), then for each batch of windows:
        hidden = None
        for each chunk of k = tbptt_steps samples:
            y, hidden = model(x[:, chunk], dt_s[:, chunk], hidden)
            loss = masked MSE(y, target)           (padding and burn-in masked out)
            Adam step with gradient-norm clipping; apply_weight_constraints() of every
            submodule that has one (explicit LTC constraints)
            hidden = hidden.detach()               (gradients stop at chunk borders)
    validation loss over whole windows; early stopping after `patience` epochs without
    an improvement of at least `min_delta`; the best weights are restored at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from lnn_ros.training.data import (
    FeatureStats,
    TimedSequence,
    WindowBatch,
    check_sequences,
    make_windows,
    split_sequences,
)
from lnn_ros.training.errors import TrainingError


class LRSchedule(Enum):
    """Learning-rate schedule over the epochs."""

    CONSTANT = "constant"
    COSINE = "cosine"  # from learning_rate down to 5 % of it at the last epoch


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes:
        epochs: Maximum number of epochs.
        batch_size: Windows per optimizer batch.
        window_steps: L, samples per window (see :func:`~lnn_ros.training.data.make_windows`).
        window_stride: Samples between window starts (default L).
        tbptt_steps: k, samples per truncated-BPTT chunk; the hidden state is carried across
            chunks of a window and detached between them.
        burn_in_steps: Samples at the start of each window left out of the loss.
        learning_rate: Adam learning rate.
        weight_decay: Adam weight decay.
        grad_clip_norm: Clip the global gradient norm to this (None: no clipping).
        lr_schedule: ``constant`` or ``cosine``.
        patience: Stop after this many epochs without improvement (None: run all epochs).
        min_delta: Smallest decrease of the monitored loss that counts as an improvement.
        val_fraction: Share of sequences held out for validation when ``fit`` gets no
            validation set (0: monitor the training loss).
        normalise: Normalise vector inputs with statistics of the training split.
        seed: Seeds torch and the shuffling.
        progress: Show a tqdm progress bar.
        threads: torch intra-op threads during the fit (restored afterwards; None leaves
            torch's setting). Small recurrent models run many tiny ops, which one thread does
            fastest; extra threads mostly spin, and on a busy CPU they slow training down many times.
    """

    epochs: int = 100
    batch_size: int = 16
    window_steps: int = 64
    window_stride: int | None = None
    tbptt_steps: int = 32
    burn_in_steps: int = 0
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    grad_clip_norm: float | None = 1.0
    lr_schedule: LRSchedule = LRSchedule.CONSTANT
    patience: int | None = 10
    min_delta: float = 0.0
    val_fraction: float = 0.2
    normalise: bool = True
    seed: int = 0
    progress: bool = True
    threads: int | None = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "window_steps", "tbptt_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise TrainingError(f"TrainConfig.{name} must be an integer >= 1, got {value!r}.")
        if not 0 <= self.burn_in_steps < self.window_steps:
            raise TrainingError(
                f"TrainConfig.burn_in_steps must be in [0, window_steps={self.window_steps}), got {self.burn_in_steps!r}."
            )
        if not self.learning_rate > 0 or self.weight_decay < 0:
            raise TrainingError(
                f"TrainConfig needs learning_rate > 0 and weight_decay >= 0, got {self.learning_rate!r} and {self.weight_decay!r}."
            )
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise TrainingError(f"TrainConfig.grad_clip_norm must be None or > 0, got {self.grad_clip_norm!r}.")
        if self.patience is not None and self.patience < 1:
            raise TrainingError(f"TrainConfig.patience must be None or >= 1, got {self.patience!r}.")
        if self.threads is not None and self.threads < 1:
            raise TrainingError(f"TrainConfig.threads must be None or >= 1, got {self.threads!r}.")
        if not isinstance(self.lr_schedule, LRSchedule):
            raise TrainingError(f"TrainConfig.lr_schedule must be one of {[s.value for s in LRSchedule]}, got {self.lr_schedule!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoint sidecars."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: (value.value if isinstance(value, Enum) else value) for name, value in values.items()}


@dataclass(frozen=True)
class TrainResult:
    """What :func:`fit` did.

    Attributes:
        train_loss: Mean training loss of every epoch.
        val_loss: Validation loss after every epoch (empty without validation data).
        best_epoch: Index (0-based) of the epoch whose weights were kept.
        best_loss: The monitored loss (validation if any, else training) of that epoch.
        stopped_early: True when patience ran out before ``epochs``.
        epochs_run: Number of epochs run.
        optimizer_steps: Number of Adam steps taken.
        seconds: Wall time of the fit.
        stats: Input normalisation statistics used (None when inputs were not normalised).
    """

    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    best_epoch: int
    best_loss: float
    stopped_early: bool
    epochs_run: int
    optimizer_steps: int
    seconds: float
    stats: FeatureStats | None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoint sidecars (statistics are stored separately)."""
        return {
            "train_loss": list(self.train_loss),
            "val_loss": list(self.val_loss),
            "best_epoch": self.best_epoch,
            "best_loss": self.best_loss,
            "stopped_early": self.stopped_early,
            "epochs_run": self.epochs_run,
            "optimizer_steps": self.optimizer_steps,
            "seconds": round(self.seconds, 3),
        }


def masked_mse(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the samples where ``mask`` [B,T] is 1 (0 when none is)."""
    weight = mask.unsqueeze(-1)
    count = weight.sum() * prediction.shape[-1]
    return ((prediction - target) ** 2 * weight).sum() / count.clamp(min=1.0)


def _detach(hidden: Any) -> Any:
    if isinstance(hidden, Tensor):
        return hidden.detach()
    if isinstance(hidden, (tuple, list)):
        return type(hidden)(_detach(h) for h in hidden)
    return hidden


def _tensors(windows: WindowBatch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return (
        torch.from_numpy(windows.x),
        torch.from_numpy(windows.dt_s),
        torch.from_numpy(windows.y),
        torch.from_numpy(windows.mask),
    )


@torch.no_grad()
def evaluate(model: nn.Module, windows: WindowBatch, batch_size: int = 256) -> float:
    """Masked MSE of ``model`` over whole windows (no truncation), in eval mode."""
    was_training = model.training
    model.eval()
    x, dt_s, y, mask = _tensors(windows)
    total, count = 0.0, 0.0
    try:
        for start in range(0, windows.n_windows, batch_size):
            batch = slice(start, start + batch_size)
            prediction, _ = model(x[batch], dt_s[batch], None)
            weight = float(mask[batch].sum()) * prediction.shape[-1]
            total += float(masked_mse(prediction, y[batch], mask[batch])) * weight
            count += weight
    finally:
        model.train(was_training)
    return total / count if count else math.nan


def _learning_rate(config: TrainConfig, epoch: int) -> float:
    if config.lr_schedule is LRSchedule.COSINE and config.epochs > 1:
        floor = 0.05 * config.learning_rate
        return floor + 0.5 * (config.learning_rate - floor) * (1.0 + math.cos(math.pi * epoch / (config.epochs - 1)))
    return config.learning_rate


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    constrained: list[Any],
    tensors: tuple[Tensor, Tensor, Tensor, Tensor],
    order: Tensor,
    config: TrainConfig,
    epoch: int,
) -> tuple[float, int]:
    """One pass over the windows in ``order`` with truncated BPTT; returns (mean loss, optimizer steps)."""
    model.train()
    x_all, dt_all, y_all, mask_all = tensors
    total, count, steps = 0.0, 0.0, 0
    for start in range(0, len(order), config.batch_size):
        batch = order[start : start + config.batch_size]
        x, dt_s, y, mask = x_all[batch], dt_all[batch], y_all[batch], mask_all[batch]
        hidden = None
        for chunk_start in range(0, config.window_steps, config.tbptt_steps):
            chunk = slice(chunk_start, chunk_start + config.tbptt_steps)
            prediction, hidden = model(x[:, chunk], dt_s[:, chunk], hidden)
            hidden = _detach(hidden)  # the next chunk starts from this state; gradients stop here
            weight = float(mask[:, chunk].sum())
            if weight == 0.0:
                continue  # padding or burn-in only: carry the state, nothing to learn
            loss = masked_mse(prediction, y[:, chunk], mask[:, chunk])
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"The training loss became {float(loss.detach())!r} at epoch {epoch}; lower learning_rate "
                    f"(now {config.learning_rate!r}) or set grad_clip_norm."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
            optimizer.step()
            for module in constrained:
                module.apply_weight_constraints()
            steps += 1
            total += float(loss.detach()) * weight
            count += weight
    return (total / count if count else math.nan), steps


def fit(
    model: nn.Module,
    sequences: Sequence[TimedSequence],
    config: TrainConfig = TrainConfig(),
    *,
    validation: Sequence[TimedSequence] | None = None,
    stats: FeatureStats | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``sequences``; see the module docstring.

    Args:
        model: ``model(x, dt_s, hidden) -> (y, hidden)``, e.g. ``SequenceModel(cell)``.
        sequences: Training data (split by ``config.val_fraction`` if ``validation`` is None).
        config: Training settings.
        validation: Held-out sequences for early stopping.
        stats: Input normalisation to use; by default computed from the training split
            when ``config.normalise`` (vector inputs only).

    Returns:
        The :class:`TrainResult`; ``model`` holds the best weights and is left in eval mode.

    Raises:
        TrainingError: Bad data, or a non-finite loss.
    """
    previous_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _fit(model, sequences, config, validation, stats)
    finally:
        torch.set_num_threads(previous_threads)


def _fit(
    model: nn.Module,
    sequences: Sequence[TimedSequence],
    config: TrainConfig,
    validation: Sequence[TimedSequence] | None,
    stats: FeatureStats | None,
) -> TrainResult:
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    generator = np.random.default_rng(config.seed)
    if validation is None:
        train_set, val_set = split_sequences(sequences, config.val_fraction, seed=config.seed)
    else:
        train_set, val_set = list(sequences), list(validation)
    input_shape, _ = check_sequences(train_set, where="training data")
    if stats is None and config.normalise and len(input_shape) == 1:
        stats = FeatureStats.from_sequences(train_set)
    train_windows = make_windows(
        train_set, config.window_steps, stride=config.window_stride, stats=stats, burn_in_steps=config.burn_in_steps
    )
    val_windows = (
        make_windows(val_set, config.window_steps, stats=stats, burn_in_steps=config.burn_in_steps) if val_set else None
    )

    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    constrained = [m for m in model.modules() if callable(getattr(m, "apply_weight_constraints", None))]
    train_tensors = _tensors(train_windows)
    train_history: list[float] = []
    val_history: list[float] = []
    best_loss, best_epoch, best_state = math.inf, -1, None
    epochs_without_improvement, steps, stopped_early = 0, 0, False

    bar = tqdm(range(config.epochs), desc="train", unit="epoch", disable=not config.progress, leave=False)
    for epoch in bar:
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, epoch)
        order = torch.from_numpy(generator.permutation(train_windows.n_windows))
        epoch_loss, epoch_steps = _train_epoch(model, optimizer, constrained, train_tensors, order, config, epoch)
        steps += epoch_steps
        train_history.append(epoch_loss)
        monitored = train_history[-1]
        if val_windows is not None:
            val_history.append(evaluate(model, val_windows))
            monitored = val_history[-1]
        bar.set_postfix(train=f"{train_history[-1]:.4g}", **({"val": f"{val_history[-1]:.4g}"} if val_history else {}))
        if monitored < best_loss - config.min_delta or best_state is None:
            best_loss, best_epoch = monitored, epoch
            best_state = {name: value.detach().clone() for name, value in model.state_dict().items()}
            epochs_without_improvement = 0
        else:
            epochs_without_improvement += 1
            if config.patience is not None and epochs_without_improvement >= config.patience:
                stopped_early = epoch + 1 < config.epochs
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        train_loss=tuple(train_history),
        val_loss=tuple(val_history),
        best_epoch=best_epoch,
        best_loss=best_loss,
        stopped_early=stopped_early,
        epochs_run=len(train_history),
        optimizer_steps=steps,
        seconds=time.perf_counter() - started,
        stats=stats,
    )
