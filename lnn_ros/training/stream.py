"""Data that does not fit in memory: training windows streamed from many shards.

A *shard* is one file or bag read as a whole by a dataset reader (``.npz`` files, rosbag2
folders, ``.mcap``/``.db3`` files, ROS 1 ``.bag`` files): :func:`list_shards` expands a folder or
a glob into shards. Only one shard per data-loader worker is in memory at a time.

Sharding and order (:class:`WindowStream`, a torch ``IterableDataset``): every epoch the shard
list is permuted with ``(seed, epoch)``; consumer ``k = rank * workers + worker`` reads the
shards at positions ``k, k + ranks*workers, ...`` of that permutation, cuts them into windows
(:func:`~lnn_ros.training.data.make_windows`) and emits them through a shuffle buffer seeded
with ``(seed, epoch, rank, worker)``. The order is therefore a function of the seed, the epoch,
the number of ranks and the number of workers only. Every process must see every shard (one
shared file system, or the same copy on every machine).

A shard that cannot be read stops the run with one :class:`~lnn_ros.training.errors.DataError`
naming it; from a data-loader worker it travels as a :class:`ShardFailure` item so the message
reaches the user as one line rather than as a worker traceback.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lnn_ros.errors import LnnRosError
from lnn_ros.training.data import MIN_STD, FeatureStats, TimedSequence, check_sequences, make_windows
from lnn_ros.training.errors import DataError
from lnn_ros.training.loaders import BAG_READER, SequenceLoader, format_of, resolve_loader

SHARD_SUFFIXES = (".npz", ".mcap", ".db3", ".bag")
_GLOB_CHARACTERS = "*?["


def _is_shard(path: Path) -> bool:
    return (path.is_file() and path.suffix.lower() in SHARD_SUFFIXES) or (path / "metadata.yaml").is_file()


def list_shards(spec: str | Path) -> list[Path]:
    """A shard, every shard directly inside a folder, or every shard a glob matches, in name order.

    Raises:
        DataError: nothing there, or no shard in it.
    """
    text = str(spec)
    if any(c in text for c in _GLOB_CHARACTERS):
        found = sorted(Path(p) for p in glob.glob(text))
        shards = [p for p in found if _is_shard(p)]
        if not shards:
            raise DataError(f"The pattern {text!r} matches no shard (files ending in {list(SHARD_SUFFIXES)} or rosbag2 folders).")
        return shards
    path = Path(spec)
    if not path.exists():
        raise DataError(f"Dataset {text!r} does not exist; pass a shard, a folder of shards or a quoted glob.")
    if path.is_file() or (path / "metadata.yaml").is_file():
        return [path]
    shards = sorted(p for p in path.iterdir() if _is_shard(p))
    if not shards:
        raise DataError(f"Folder {text!r} holds no shard (files ending in {list(SHARD_SUFFIXES)} or rosbag2 folders).")
    return shards


def read_shard(path: Path, loader: SequenceLoader) -> list[TimedSequence]:
    """The sequences of one shard, checked.

    Raises:
        DataError: naming the shard, whatever went wrong inside the reader.
    """
    try:
        sequences = list(loader(path))
        check_sequences(sequences, where=str(path))
    except LnnRosError as exc:
        message = str(exc)
        raise DataError(message if str(path) in message else f"Shard {str(path)!r}: {message}") from None
    except Exception as exc:  # a reader's own failure on a corrupt file: name the file, drop the traceback
        raise DataError(
            f"Shard {str(path)!r} cannot be read ({type(exc).__name__}: {exc}); re-create it or remove it from the dataset."
        ) from None
    return sequences


@dataclass(frozen=True)
class ShardSet:
    """Shards and the reader that turns one into sequences."""

    shards: tuple[Path, ...]
    loader: SequenceLoader

    @classmethod
    def open(cls, spec: str | Path, format_name: str | None = None) -> ShardSet:
        """The shards of ``spec`` (see :func:`list_shards`) with the reader for ``format_name``
        (default: from the first shard's suffix)."""
        shards = list_shards(spec)
        name = format_name or format_of(shards[0])
        if name is None:
            raise DataError(
                f"Cannot tell the format of shard {str(shards[0])!r}; pass --format (for bags: {BAG_READER!r})."
            )
        return cls(tuple(shards), resolve_loader(name))

    def __len__(self) -> int:
        return len(self.shards)

    def probe(self) -> tuple[tuple[int, ...], int]:
        """(per-step input shape, output size) of the first shard."""
        return check_sequences(read_shard(self.shards[0], self.loader), where=str(self.shards[0]))

    def split(self, val_fraction: float, seed: int) -> tuple[ShardSet, ShardSet | None]:
        """(train, validation) by whole shards (whole flights), shuffled with ``seed``.

        Raises:
            DataError: ``val_fraction`` outside [0, 1) or a single shard to split.
        """
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(f"val_fraction must be in [0, 1), got {val_fraction!r}.")
        if val_fraction == 0.0:
            return self, None
        if len(self.shards) < 2:
            raise DataError(
                f"Streaming splits validation by whole shards, and {str(self.shards[0])!r} is the only one; "
                "pass --val, --val-fraction 0 or more shards."
            )
        order = np.random.default_rng(seed).permutation(len(self.shards))
        n_val = min(max(1, round(len(self.shards) * val_fraction)), len(self.shards) - 1)
        val = tuple(self.shards[i] for i in sorted(order[:n_val]))
        train = tuple(self.shards[i] for i in sorted(order[n_val:]))
        return ShardSet(train, self.loader), ShardSet(val, self.loader)

    def for_rank(self, rank: int, world_size: int) -> tuple[Path, ...]:
        """The shards one rank reads for statistics and validation (positions ``rank::world_size``)."""
        return self.shards[rank::world_size]


def read_shard_as(path: Path, loader: SequenceLoader, shapes: tuple[tuple[int, ...], int]) -> list[TimedSequence]:
    sequences = read_shard(path, loader)
    found = check_sequences(sequences, where=str(path))
    if found != shapes:
        raise DataError(
            f"Shard {str(path)!r} has (input shape, output size) {found!r} but the first shard has {shapes!r}; "
            "every shard must hold the same features and targets."
        )
    return sequences


class StatSums(NamedTuple):
    """Per-feature sums over the steps of some shards, to be added up over ranks."""

    steps: float
    total: np.ndarray
    squares: np.ndarray

    def to_tensor(self) -> torch.Tensor:
        return torch.from_numpy(np.concatenate([[self.steps], self.total, self.squares]))

    @staticmethod
    def to_stats(summed: torch.Tensor, min_std: float = MIN_STD) -> FeatureStats:
        values = summed.numpy()
        features = (len(values) - 1) // 2
        count = max(float(values[0]), 1.0)
        mean = values[1 : 1 + features] / count
        variance = np.maximum(values[1 + features :] / count - mean**2, 0.0)
        std = np.sqrt(variance)
        std = np.where(std < min_std, 1.0, std)  # as FeatureStats.from_sequences
        return FeatureStats(tuple(float(v) for v in mean), tuple(float(v) for v in std))


def stat_sums(paths: Sequence[Path], loader: SequenceLoader, shapes: tuple[tuple[int, ...], int]) -> StatSums:
    """Count, sum and sum of squares (float64) of every input feature over ``paths``; checks every shard."""
    (features,) = shapes[0] if len(shapes[0]) == 1 else (0,)
    count, total, squares = 0.0, np.zeros(features), np.zeros(features)
    for path in paths:
        for sequence in read_shard_as(path, loader, shapes):
            if features:
                x = np.asarray(sequence.x, dtype=np.float64)
                count += len(x)
                total += x.sum(axis=0)
                squares += (x * x).sum(axis=0)
    return StatSums(count, total, squares)


class ShardFailure(NamedTuple):
    """A shard a data-loader worker could not read (the message names it)."""

    message: str


@dataclass(frozen=True)
class WindowSpec:
    """How shards become windows (the trainer's window settings)."""

    window_steps: int
    stride: int | None = None
    burn_in_steps: int = 0
    stats: FeatureStats | None = None

    def windows(self, sequences: Sequence[TimedSequence]) -> Any:
        return make_windows(
            sequences, self.window_steps, stats=self.stats, stride=self.stride, burn_in_steps=self.burn_in_steps
        )


class WindowStream(IterableDataset):  # type: ignore[type-arg]
    """Training windows of a :class:`ShardSet`, sharded over ranks and workers (module docstring).

    Items are ``(x [L,F], dt_s [L], y [L,O], mask [L])`` numpy arrays, or a :class:`ShardFailure`.
    Call :meth:`set_epoch` before iterating each epoch.
    """

    def __init__(
        self,
        shards: ShardSet,
        spec: WindowSpec,
        shapes: tuple[tuple[int, ...], int],
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = 1024,
    ) -> None:
        if len(shards) < world_size:
            raise DataError(
                f"{len(shards)} shard(s) cannot feed {world_size} ranks (a rank reads whole shards); "
                "write more, smaller shards (lnn-ros bag-to-dataset --shards) or start fewer processes."
            )
        self.shards = shards
        self.spec = spec
        self.shapes = shapes
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def assigned(self, worker: int = 0, workers: int = 1) -> list[Path]:
        """The shards of this rank's ``worker`` in the current epoch, in reading order."""
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
        consumers = self.world_size * workers
        slot = self.rank * workers + worker
        return [self.shards.shards[int(order[i])] for i in range(slot, len(order), consumers)]

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        buffer: list[tuple[np.ndarray, ...]] = []
        for path in self.assigned(worker, workers):
            try:
                windows = self.spec.windows(read_shard_as(path, self.shards.loader, self.shapes))
            except DataError as exc:
                yield ShardFailure(str(exc))
                return
            for i in rng.permutation(windows.n_windows):
                item = (windows.x[i], windows.dt_s[i], windows.y[i], windows.mask[i])
                if len(buffer) < self.shuffle_buffer:
                    buffer.append(item)
                    continue
                slot = int(rng.integers(len(buffer)))
                yield buffer[slot]
                buffer[slot] = item
        for i in rng.permutation(len(buffer)):
            yield buffer[int(i)]


def collate_windows(items: list[Any]) -> tuple[torch.Tensor, ...] | ShardFailure:
    """Stack window items into batch tensors; a :class:`ShardFailure` passes through."""
    for item in items:
        if isinstance(item, ShardFailure):
            return item
    return tuple(torch.from_numpy(np.stack(column)) for column in zip(*items))
