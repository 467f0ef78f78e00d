"""Streamed shards: listing, sharding over ranks and real data-loader worker processes,
deterministic order per (seed, epoch), statistics, and bad shards named in one error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from lnn_ros.cells import SequenceModel, build_cell
from lnn_ros.training.data import FeatureStats, TimedSequence
from lnn_ros.training.errors import DataError
from lnn_ros.training.loaders import load_npz_sequences, save_npz_sequences
from lnn_ros.training.models import default_cell_config
from lnn_ros.training.stream import (
    ShardSet,
    StatSums,
    WindowSpec,
    WindowStream,
    collate_windows,
    list_shards,
    stat_sums,
)
from lnn_ros.training.trainer import TrainConfig, fit_stream


def write_shards(folder: Path, count: int = 5, features: int = 3) -> list[Path]:
    generator = np.random.default_rng(7)
    paths = []
    for i in range(count):
        sequences = []
        for _ in range(1 + i % 3):  # uneven shards
            length = int(generator.integers(10, 40))
            x = generator.standard_normal((length, features)).astype(np.float32) * (i + 1)
            sequences.append(TimedSequence(x, generator.uniform(0.01, 0.1, length).astype(np.float32), x[:, :1] * 0.5))
        paths.append(save_npz_sequences(folder / f"shard_{i:02d}.npz", sequences))
    return paths


def window_keys(loader: DataLoader) -> list[bytes]:
    keys = []
    for x, *_ in loader:
        keys.extend(row.numpy().tobytes() for row in x)
    return keys


def test_shards_are_listed_from_a_folder_a_glob_or_a_file(tmp_path: Path) -> None:
    paths = write_shards(tmp_path)
    (tmp_path / "notes.txt").write_text("not a shard")
    assert list_shards(tmp_path) == paths
    assert list_shards(str(tmp_path / "shard_0[13].npz")) == [paths[1], paths[3]]
    assert list_shards(paths[2]) == [paths[2]]
    with pytest.raises(DataError, match="matches no shard"):
        list_shards(str(tmp_path / "*.bag"))
    with pytest.raises(DataError, match="does not exist"):
        list_shards(tmp_path / "missing")


def test_ranks_and_worker_processes_split_the_windows_deterministically(tmp_path: Path) -> None:
    shards = ShardSet.open(write_shards(tmp_path, count=7)[0].parent)
    shapes = shards.probe()
    spec = WindowSpec(window_steps=8)
    everything = [spec.windows(load_npz_sequences(p)) for p in shards.shards]
    all_keys = sorted(w.tobytes() for windows in everything for w in windows.x)

    def run(rank: int, epoch: int) -> list[bytes]:
        stream = WindowStream(shards, spec, shapes, seed=3, rank=rank, world_size=2, shuffle_buffer=16)
        stream.set_epoch(epoch)
        return window_keys(DataLoader(stream, batch_size=4, num_workers=2, collate_fn=collate_windows))

    rank0, rank1 = run(0, epoch=0), run(1, epoch=0)
    assert not set(rank0) & set(rank1)  # every window is read by exactly one rank
    assert sorted(rank0 + rank1) == all_keys
    assert run(0, epoch=0) == rank0  # same seed and epoch: same order, worker processes or not
    again = run(0, epoch=1) + run(1, epoch=1)
    assert sorted(again) == all_keys and again != rank0 + rank1  # another epoch: another order


def test_streamed_statistics_equal_the_in_memory_ones(tmp_path: Path) -> None:
    shards = ShardSet.open(write_shards(tmp_path)[0].parent)
    shapes = shards.probe()
    halves = [stat_sums(shards.for_rank(rank, 2), shards.loader, shapes).to_tensor() for rank in (0, 1)]
    streamed = StatSums.to_stats(halves[0] + halves[1])  # what all_reduce adds up over two ranks
    in_memory = FeatureStats.from_sequences([s for p in shards.shards for s in load_npz_sequences(p)])
    np.testing.assert_allclose(streamed.mean, in_memory.mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(streamed.std, in_memory.std, rtol=1e-9)


def _model() -> SequenceModel:
    return SequenceModel(build_cell(default_cell_config("cfc", 3, 1, units=4)))


def test_a_corrupt_shard_read_in_a_worker_process_is_one_named_error(tmp_path: Path) -> None:
    paths = write_shards(tmp_path)
    config = TrainConfig(epochs=2, batch_size=4, window_steps=8, tbptt_steps=8, val_fraction=0.0, progress=False)
    result = fit_stream(_model(), ShardSet.open(tmp_path), config, workers=2)
    assert result.optimizer_steps > 0 and np.isfinite(result.train_loss).all()
    paths[3].write_bytes(paths[3].read_bytes()[:100])  # cut off mid-file
    with pytest.raises(DataError) as raised:
        fit_stream(_model(), ShardSet.open(tmp_path), config, workers=2, stats=result.stats)  # no stats pass
    message = str(raised.value)
    assert "shard_03.npz" in message and "\n" not in message and "Traceback" not in message


def test_shards_that_disagree_or_cannot_be_split_are_refused(tmp_path: Path) -> None:
    write_shards(tmp_path / "three", count=2, features=3)
    write_shards(tmp_path / "four", count=1, features=4)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for path in [*sorted((tmp_path / "three").iterdir()), *(tmp_path / "four").iterdir()]:
        (mixed / f"{'z_' if path.parent.name == 'four' else ''}{path.parent.name}_{path.name}").write_bytes(path.read_bytes())
    config = TrainConfig(epochs=1, window_steps=8, tbptt_steps=8, val_fraction=0.0, progress=False)
    with pytest.raises(DataError, match=r"z_four_shard_00\.npz.*every shard must hold the same features"):
        fit_stream(_model(), ShardSet.open(mixed), config)
    with pytest.raises(DataError, match="only one"):
        fit_stream(_model(), ShardSet.open(tmp_path / "four"), TrainConfig(val_fraction=0.2, progress=False))
    with pytest.raises(DataError, match="cannot feed 2 ranks"):
        WindowStream(ShardSet.open(tmp_path / "four"), WindowSpec(8), ((4,), 1), world_size=2)
