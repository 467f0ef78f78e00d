"""Sequences, normalisation statistics, windows, splits and the npz reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lnn_ros.training.data import FeatureStats, TimedSequence, check_sequences, make_windows, split_sequences
from lnn_ros.training.errors import DataError
from lnn_ros.training.loaders import load_sequences, register_loader, save_npz_sequences


def sequence(length: int, offset: float = 0.0, features: int = 2) -> TimedSequence:
    x = offset + np.arange(length * features, dtype=np.float32).reshape(length, features)
    dt_s = np.full(length, 0.1, dtype=np.float32)
    dt_s[0] = 0.0
    return TimedSequence(x, dt_s, x[:, :1] * 2.0)


def test_feature_stats_are_mean_and_std_over_all_steps() -> None:
    data = [sequence(3), sequence(5, offset=100.0)]
    stats = FeatureStats.from_sequences(data)
    stacked = np.concatenate([s.x for s in data]).astype(np.float64)
    np.testing.assert_allclose(stats.mean, stacked.mean(0))
    np.testing.assert_allclose(stats.std, stacked.std(0))
    normalised = np.concatenate([stats.normalise(s.x) for s in data])
    np.testing.assert_allclose(normalised.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalised.std(0), 1.0, atol=1e-5)
    assert FeatureStats.from_dict(stats.to_dict()) == stats


def test_constant_feature_gets_unit_std() -> None:
    constant = TimedSequence(np.ones((4, 1), np.float32), np.zeros(4, np.float32), np.zeros((4, 1), np.float32))
    assert FeatureStats.from_sequences([constant]).std == (1.0,)


def test_windows_pad_with_zero_dt_and_mask_padding_and_burn_in() -> None:
    windows = make_windows([sequence(10), sequence(3)], window_steps=4, burn_in_steps=1)
    # 10 samples -> windows at 0, 4, 8 (the last one 2 long); 3 samples -> one window.
    assert windows.x.shape == (4, 4, 2) and windows.y.shape == (4, 4, 1) and windows.n_windows == 4
    np.testing.assert_array_equal(windows.mask, [[0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 0, 0], [0, 1, 1, 0]])
    np.testing.assert_array_equal(windows.dt_s[2], np.array([0.1, 0.1, 0.0, 0.0], dtype=np.float32))
    np.testing.assert_array_equal(windows.x[1, 0], sequence(10).x[4])


def test_overlapping_windows_cover_every_sample() -> None:
    windows = make_windows([sequence(10)], window_steps=4, stride=3)
    starts = [int(w[0, 0]) // 2 for w in windows.x]
    assert starts == [0, 3, 6]
    assert windows.mask.sum() == 12


def test_split_is_by_sequence_and_seeded() -> None:
    data = [sequence(3, offset=i) for i in range(10)]
    train, val = split_sequences(data, 0.2, seed=1)
    assert len(train) == 8 and len(val) == 2
    again = split_sequences(data, 0.2, seed=1)[1]
    assert [v.x[0, 0] for v in val] == [v.x[0, 0] for v in again]
    head, tail = split_sequences([sequence(10)], 0.3)
    assert len(head[0].x) == 7 and len(tail[0].x) == 3 and tail[0].dt_s[0] == 0.0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (TimedSequence(np.zeros((3, 2)), np.zeros(2), np.zeros((3, 1))), "same length"),
        (TimedSequence(np.zeros((3, 2)), -np.ones(3), np.zeros((3, 1))), "dt_s must be >= 0"),
        (TimedSequence(np.full((3, 2), np.nan), np.zeros(3), np.zeros((3, 1))), "x has 6 non-finite values"),
        (TimedSequence(np.zeros(3), np.zeros(3), np.zeros((3, 1))), "expected x"),
    ],
)
def test_malformed_sequences_are_rejected(bad: TimedSequence, message: str) -> None:
    with pytest.raises(DataError, match=message):
        check_sequences([bad])


def test_npz_round_trip_single_multi_and_folder(tmp_path: Path) -> None:
    data = [sequence(5), sequence(7, offset=3.0)]
    written = save_npz_sequences(tmp_path / "many", data)
    assert written.name == "many.npz"
    loaded = load_sequences(written)
    assert len(loaded) == 2
    for a, b in zip(loaded, data):
        for got, want in zip(a, b):
            np.testing.assert_array_equal(got, want)
    folder = tmp_path / "folder"
    folder.mkdir()
    np.savez(folder / "a.npz", x=data[0].x, dt_s=data[0].dt_s, y=data[0].y)
    save_npz_sequences(folder / "b.npz", data)
    assert len(load_sequences(folder)) == 3


def test_npz_never_unpickles(tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([object()], dtype=object), dt_s=np.zeros(1), y=np.zeros((1, 1)))
    with pytest.raises(DataError, match="cannot read it as a .npz dataset"):
        load_sequences(path)


def test_npz_missing_arrays_are_named(tmp_path: Path) -> None:
    path = tmp_path / "partial.npz"
    np.savez(path, x_0=np.zeros((2, 1)), y_0=np.zeros((2, 1)))
    with pytest.raises(DataError, match=r"sequence 0 lacks array\(s\) \['dt_s_0'\]"):
        load_sequences(path)


def test_pluggable_loaders(tmp_path: Path) -> None:
    source = tmp_path / "data.custom"
    source.write_text("4")
    register_loader("test-custom", lambda path: [sequence(int(path.read_text()))], suffixes=(".custom",))
    assert len(load_sequences(source)[0].x) == 4
    assert len(load_sequences(source, "test-custom")[0].x) == 4
    npz = save_npz_sequences(tmp_path / "d.npz", [sequence(2)])
    assert len(load_sequences(npz, "lnn_ros.training.loaders:load_npz_sequences")) == 1
    with pytest.raises(DataError, match="Unknown dataset format 'nope'"):
        load_sequences(npz, "nope")
