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

Several processes (torchrun; :mod:`lnn_ros.training.distributed`): the model is wrapped in
DistributedDataParallel and ``batch_size`` is the *global* batch. In memory
(:func:`fit`), a DistributedSampler gives every rank its part of each global batch; streamed
(:func:`fit_stream`), every rank reads its own shards. Each rank scales its loss by
``world_size / (mask weight of the chunk summed over ranks)``, so the averaged gradient is the
gradient of the masked MSE over the global batch and N processes take the same steps as one
(tested to ~1e-6). Before each batch the ranks sum a small header (batch present, mask weight
per chunk): the epoch ends for all when one rank runs out of data. Training and validation
losses are sums all-reduced over ranks; the early-stopping decisions are rank 0's, broadcast.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, TensorDataset
from tqdm.auto import tqdm

from lnn_ros.training.data import (
    FeatureStats,
    TimedSequence,
    WindowBatch,
    check_sequences,
    make_windows,
    split_sequences,
)
from lnn_ros.training.distributed import DistContext
from lnn_ros.training.errors import DataError, TrainingError
from lnn_ros.training.stream import (
    ShardFailure,
    ShardSet,
    StatSums,
    WindowSpec,
    WindowStream,
    collate_windows,
    read_shard_as,
    stat_sums,
)


class LRSchedule(Enum):
    """Learning-rate schedule over the epochs."""

    CONSTANT = "constant"
    COSINE = "cosine"  # from learning_rate down to 5 % of it at the last epoch


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes:
        epochs: Maximum number of epochs.
        batch_size: Windows per optimizer batch over all processes (each of N takes batch_size / N).
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


Batch = tuple[Tensor, Tensor, Tensor, Tensor]  # x [B,L,...], dt_s [B,L], y [B,L,O], mask [B,L]


def _tensors(windows: WindowBatch) -> Batch:
    return (
        torch.from_numpy(windows.x),
        torch.from_numpy(windows.dt_s),
        torch.from_numpy(windows.y),
        torch.from_numpy(windows.mask),
    )


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


@torch.no_grad()
def _loss_sums(model: nn.Module, windows: WindowBatch, batch_size: int = 256) -> tuple[float, float]:
    """(sum of masked squared errors, number of masked values) of ``model`` over whole windows."""
    was_training = model.training
    model.eval()
    device = _model_device(model)
    x, dt_s, y, mask = (t.to(device) for t in _tensors(windows))
    total, count = 0.0, 0.0
    try:
        for start in range(0, windows.n_windows, batch_size):
            batch = slice(start, start + batch_size)
            prediction, _ = model(x[batch], dt_s[batch], None)
            total += float(((prediction - y[batch]) ** 2 * mask[batch].unsqueeze(-1)).sum())
            count += float(mask[batch].sum()) * prediction.shape[-1]
    finally:
        model.train(was_training)
    return total, count


def evaluate(model: nn.Module, windows: WindowBatch, batch_size: int = 256) -> float:
    """Masked MSE of ``model`` over whole windows (no truncation), in eval mode."""
    total, count = _loss_sums(model, windows, batch_size)
    return total / count if count else math.nan


def _learning_rate(config: TrainConfig, epoch: int) -> float:
    if config.lr_schedule is LRSchedule.COSINE and config.epochs > 1:
        floor = 0.05 * config.learning_rate
        return floor + 0.5 * (config.learning_rate - floor) * (1.0 + math.cos(math.pi * epoch / (config.epochs - 1)))
    return config.learning_rate


def _local_batch_size(config: TrainConfig, context: DistContext) -> int:
    if config.batch_size % context.world_size:
        raise TrainingError(
            f"batch_size {config.batch_size} is the global batch and must split evenly over the "
            f"{context.world_size} processes; use a multiple of {context.world_size}."
        )
    return config.batch_size // context.world_size


class _Loop:
    """The epoch loop shared by in-memory and streaming data (see the module docstring)."""

    def __init__(self, model: nn.Module, config: TrainConfig, context: DistContext) -> None:
        self.model = model
        self.config = config
        self.context = context
        # DDP averages the gradients of the ranks; each rank scales its loss so that the average
        # is the gradient of the masked MSE over the whole global batch.
        self.network: nn.Module = model
        if context.distributed:
            device_ids = [context.device] if context.device.type == "cuda" else None
            self.network = DistributedDataParallel(model, device_ids=device_ids)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        self.constrained: list[Any] = [m for m in model.modules() if callable(getattr(m, "apply_weight_constraints", None))]
        self.chunks = [slice(s, s + config.tbptt_steps) for s in range(0, config.window_steps, config.tbptt_steps)]

    def _header(self, batch: Batch | None) -> Tensor:
        """[batches present, mask weight of every chunk] summed over ranks."""
        header = torch.zeros(1 + len(self.chunks), dtype=torch.float64)
        if batch is not None:
            header[0] = 1.0
            mask = batch[3]
            for i, chunk in enumerate(self.chunks):
                header[1 + i] = float(mask[:, chunk].sum())
        return self.context.all_sum(header)

    def epoch(self, batches: Iterable[Batch | ShardFailure], epoch: int) -> tuple[float, int]:
        """One pass with truncated BPTT; returns (mean training loss over all ranks, optimizer steps).

        Every rank takes a step together; the epoch ends for all as soon as one rank has no
        batch left, so uneven shards never leave a rank waiting in a collective.
        """
        config, context = self.config, self.context
        self.network.train()
        total, count, steps = 0.0, 0.0, 0
        iterator = iter(batches)
        while True:
            item = next(iterator, None)
            if isinstance(item, ShardFailure):
                raise DataError(item.message)
            batch = None if item is None else tuple(t.to(context.device) for t in item)
            header = self._header(batch)  # type: ignore[arg-type]
            if batch is None or int(header[0]) < context.world_size:
                break
            x, dt_s, y, mask = batch
            hidden = None
            for i, chunk in enumerate(self.chunks):
                global_weight = float(header[1 + i])
                if global_weight == 0.0:  # padding or burn-in on every rank: carry the state, nothing to learn
                    with torch.no_grad():
                        _, hidden = self.model(x[:, chunk], dt_s[:, chunk], hidden)
                    continue
                prediction, hidden = self.network(x[:, chunk], dt_s[:, chunk], hidden)
                hidden = _detach(hidden)  # the next chunk starts from this state; gradients stop here
                squared = ((prediction - y[:, chunk]) ** 2 * mask[:, chunk].unsqueeze(-1)).sum()
                loss = squared * (context.world_size / (global_weight * prediction.shape[-1]))
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"The training loss became {float(loss.detach())!r} at epoch {epoch} on rank {context.rank}; "
                        f"lower learning_rate (now {config.learning_rate!r}) or set grad_clip_norm."
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip_norm is not None:
                    nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip_norm)
                self.optimizer.step()
                for module in self.constrained:
                    module.apply_weight_constraints()
                steps += 1
                total += float(squared.detach())
                count += float(mask[:, chunk].sum()) * prediction.shape[-1]
        summed = context.all_sum(torch.tensor([total, count], dtype=torch.float64))
        return (float(summed[0] / summed[1]) if summed[1] > 0 else math.nan), steps

    def run(
        self,
        batches_of_epoch: Callable[[int], Iterable[Batch | ShardFailure]],
        validate: Callable[[], float] | None,
        stats: FeatureStats | None,
        started: float,
    ) -> TrainResult:
        config, context = self.config, self.context
        train_history: list[float] = []
        val_history: list[float] = []
        best_loss, best_epoch, best_state = math.inf, -1, None
        epochs_without_improvement, steps, stopped_early = 0, 0, False
        bar = tqdm(range(config.epochs), desc="train", unit="epoch", disable=not (config.progress and context.is_main), leave=False)
        for epoch in bar:
            for group in self.optimizer.param_groups:
                group["lr"] = _learning_rate(config, epoch)
            epoch_loss, epoch_steps = self.epoch(batches_of_epoch(epoch), epoch)
            steps += epoch_steps
            train_history.append(epoch_loss)
            monitored = train_history[-1]
            if validate is not None:
                val_history.append(validate())
                monitored = val_history[-1]
            bar.set_postfix(train=f"{train_history[-1]:.4g}", **({"val": f"{val_history[-1]:.4g}"} if val_history else {}))
            # Every rank holds the same all-reduced losses; rank 0's decisions are broadcast anyway.
            if context.agree(monitored < best_loss - config.min_delta or best_state is None):
                best_loss, best_epoch = monitored, epoch
                best_state = {name: value.detach().clone() for name, value in self.model.state_dict().items()}
                epochs_without_improvement = 0
            else:
                epochs_without_improvement += 1
                patience_over = config.patience is not None and epochs_without_improvement >= config.patience
                if context.agree(patience_over):
                    stopped_early = epoch + 1 < config.epochs
                    break
        bar.close()
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
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


@contextmanager
def _threads(config: TrainConfig) -> Iterator[None]:
    previous = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit(
    model: nn.Module,
    sequences: Sequence[TimedSequence],
    config: TrainConfig = TrainConfig(),
    *,
    validation: Sequence[TimedSequence] | None = None,
    stats: FeatureStats | None = None,
    context: DistContext | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``sequences`` held in memory; see the module docstring.

    Args:
        model: ``model(x, dt_s, hidden) -> (y, hidden)``, e.g. ``SequenceModel(cell)``.
        sequences: Training data (split by ``config.val_fraction`` if ``validation`` is None).
        config: Training settings; ``batch_size`` is the global batch over all ranks.
        validation: Held-out sequences for early stopping.
        stats: Input normalisation to use; by default computed from the training split
            when ``config.normalise`` (vector inputs only).
        context: The process group (:func:`lnn_ros.training.distributed.start`); default
            a single process. Every rank passes the same data and gets the same result.

    Returns:
        The :class:`TrainResult`; ``model`` holds the best weights and is left in eval mode.

    Raises:
        TrainingError: Bad data, or a non-finite loss.
    """
    context = context or DistContext()
    with _threads(config):
        started = time.perf_counter()
        torch.manual_seed(config.seed)
        if validation is None:
            train_set, val_set = split_sequences(sequences, config.val_fraction, seed=config.seed)
        else:
            train_set, val_set = list(sequences), list(validation)
        input_shape, _ = check_sequences(train_set, where="training data")
        if stats is None and config.normalise and len(input_shape) == 1:
            stats = FeatureStats.from_sequences(train_set)
        train_windows = make_windows(
            train_set, config.window_steps, stats=stats, stride=config.window_stride, burn_in_steps=config.burn_in_steps
        )
        # This rank's share of the validation windows; the sums are added up over ranks.
        val_windows = None
        if val_set:
            all_val = make_windows(val_set, config.window_steps, stats=stats, burn_in_steps=config.burn_in_steps)
            val_windows = all_val.take(np.arange(context.rank, all_val.n_windows, context.world_size))
        model.to(context.device)
        tensors = _tensors(train_windows)
        # Every rank draws the same permutation of the windows per epoch (as one process always
        # has); DistributedSampler hands rank r the positions r, r + W, ... of it, so rank r's
        # k-th batch of B/W windows is its part of global batch k. With one process the
        # order is exactly the single-process order.
        generator = np.random.default_rng(config.seed)
        sampler: DistributedSampler[Any] = DistributedSampler(
            TensorDataset(*tensors), num_replicas=context.world_size, rank=context.rank, shuffle=False
        )
        batch_sampler = BatchSampler(sampler, _local_batch_size(config, context), drop_last=False)

        def batches(epoch: int) -> Iterator[Batch]:
            order = torch.from_numpy(generator.permutation(train_windows.n_windows))
            for positions in batch_sampler:
                index = order[torch.as_tensor(positions)]
                yield tuple(t[index] for t in tensors)  # type: ignore[misc]

        def validate() -> float:
            assert val_windows is not None
            local = _loss_sums(model, val_windows) if val_windows.n_windows else (0.0, 0.0)
            summed = context.all_sum(torch.tensor(local, dtype=torch.float64))
            return float(summed[0] / summed[1]) if summed[1] > 0 else math.nan

        loop = _Loop(model, config, context)
        return loop.run(batches, validate if val_windows is not None else None, stats, started)


def fit_stream(
    model: nn.Module,
    shards: ShardSet,
    config: TrainConfig = TrainConfig(),
    *,
    validation: ShardSet | None = None,
    stats: FeatureStats | None = None,
    context: DistContext | None = None,
    workers: int = 0,
    shuffle_buffer: int = 1024,
) -> TrainResult:
    """Train ``model`` on windows streamed from ``shards`` (see :mod:`lnn_ros.training.stream`).

    Without ``validation``, ``config.val_fraction`` of the shards (whole shards) is held out.
    Normalisation statistics are summed over a first pass in which every rank reads its
    share of the shards (which also checks every shard before training starts).

    Args:
        workers: data-loader worker processes per rank (0: read in the training process).
        shuffle_buffer: windows held for shuffling across shard borders.

    Raises:
        TrainingError: a bad shard (named), bad settings, or a non-finite loss.
    """
    context = context or DistContext()
    if workers < 0:
        raise TrainingError(f"workers must be >= 0, got {workers!r}.")
    with _threads(config):
        started = time.perf_counter()
        torch.manual_seed(config.seed)
        train_shards, val_shards = (shards, validation) if validation is not None else shards.split(config.val_fraction, config.seed)
        shapes = train_shards.probe()
        sums = stat_sums(train_shards.for_rank(context.rank, context.world_size), train_shards.loader, shapes)
        summed = context.all_sum(sums.to_tensor())
        if stats is None and config.normalise and len(shapes[0]) == 1:
            stats = StatSums.to_stats(summed)
        spec = WindowSpec(config.window_steps, config.window_stride, config.burn_in_steps, stats)
        stream = WindowStream(
            train_shards, spec, shapes, seed=config.seed, rank=context.rank, world_size=context.world_size,
            shuffle_buffer=shuffle_buffer,
        )
        loader = DataLoader(
            stream, batch_size=_local_batch_size(config, context), num_workers=workers, collate_fn=collate_windows,
            persistent_workers=False,
        )
        model.to(context.device)

        def batches(epoch: int) -> Iterable[Batch | ShardFailure]:
            stream.set_epoch(epoch)
            return loader

        def validate() -> float:
            assert val_shards is not None
            val_spec = WindowSpec(config.window_steps, None, config.burn_in_steps, stats)
            total, count = 0.0, 0.0
            for path in val_shards.for_rank(context.rank, context.world_size):
                windows = val_spec.windows(read_shard_as(path, val_shards.loader, shapes))
                local_total, local_count = _loss_sums(model, windows)
                total, count = total + local_total, count + local_count
            summed = context.all_sum(torch.tensor([total, count], dtype=torch.float64))
            return float(summed[0] / summed[1]) if summed[1] > 0 else math.nan

        loop = _Loop(model, config, context)
        return loop.run(batches, validate if val_shards is not None else None, stats, started)
