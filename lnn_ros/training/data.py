"""Training data: irregularly sampled sequences, normalisation statistics and fixed-length windows.

A dataset is a list of :class:`TimedSequence`, each ``(x [T,F], dt_s [T], y [T,O])`` with its own
length T. ``dt_s[t]`` is the time in seconds since the previous sample; by convention
``dt_s[0] = 0`` for the first sample of a recording, which (Δt = 0 keeps the state) matches the
onboard engine, whose first message only initialises the clock.

For batching, sequences are cut into windows of ``window_steps`` samples; the tail of a
sequence is padded with Δt = 0 (the state stays put) and masked out of the loss. Only numpy
is used here, so data sources (bags, simulator) can build datasets without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from lnn_ros.bundle.manifest import CameraSpec
from lnn_ros.training.errors import DataError

MIN_STD = 1e-6


class TimedSequence(NamedTuple):
    """One recording: inputs ``x`` [T,F...], Δt ``dt_s`` [T] (seconds since the previous sample), targets ``y`` [T,O]."""

    x: np.ndarray
    dt_s: np.ndarray
    y: np.ndarray


def as_sequence(x: np.ndarray, dt_s: np.ndarray, y: np.ndarray, where: str = "sequence") -> TimedSequence:
    """Validate and convert to float32 contiguous arrays.

    Raises:
        DataError: naming ``where`` and the array that is wrong.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    dt_s = np.ascontiguousarray(dt_s, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if dt_s.ndim == 2 and dt_s.shape[1] == 1:
        dt_s = dt_s[:, 0]
    if x.ndim < 2 or y.ndim != 2 or dt_s.ndim != 1:
        raise DataError(
            f"{where}: expected x [T,F], dt_s [T] and y [T,O], got shapes {x.shape!r}, {dt_s.shape!r} and {y.shape!r}."
        )
    if not len(x) == len(dt_s) == len(y) or len(x) == 0:
        raise DataError(f"{where}: x, dt_s and y must have the same length T >= 1, got {len(x)}, {len(dt_s)} and {len(y)}.")
    for name, array in (("x", x), ("dt_s", dt_s), ("y", y)):
        if not np.isfinite(array).all():
            raise DataError(f"{where}: {name} has {int(np.size(array) - np.isfinite(array).sum())} non-finite values.")
    if (dt_s < 0).any():
        raise DataError(f"{where}: dt_s must be >= 0 (seconds since the previous sample), got min {float(dt_s.min())!r}.")
    return TimedSequence(x, dt_s, y)


def check_sequences(sequences: Sequence[TimedSequence], where: str = "dataset") -> tuple[tuple[int, ...], int]:
    """Validate every sequence; returns the per-step input shape (F,) and the output size O.

    Raises:
        DataError: The list is empty, a sequence is malformed, or shapes differ between sequences.
    """
    if not sequences:
        raise DataError(f"{where}: has no sequences.")
    shapes: set[tuple[tuple[int, ...], int]] = set()
    for i, sequence in enumerate(sequences):
        checked = as_sequence(*sequence, where=f"{where}[{i}]")
        shapes.add((checked.x.shape[1:], checked.y.shape[1]))
    if len(shapes) != 1:
        raise DataError(f"{where}: sequences disagree on (input shape, output size): {sorted(shapes)!r}.")
    return shapes.pop()


@dataclass(frozen=True)
class DescribedData:
    """Sequences with what they are, from a reader that knows (the bag reader does).

    Attributes:
        sequences: The data.
        flights: The recording each sequence comes from, one per sequence; validation holds out
            whole flights (:func:`split_flights`).
        export: What ``lnn-ros export`` needs, in the export spec's keys (``features``,
            ``outputs`` with their limits, ``dt``; docs/export-spec.md); the normalisation is
            added by training. Stored in the checkpoint.
        source: Where the data came from (plain data: topics, message types, files), stored in
            the checkpoint's metadata.
        report: Lines saying what was left out of the data and why.
        frames: Camera data: every frame the rows index, uint8 [N, H, W, 3], as the encoder sees
            it; each row is then ``[features, index of the held frame]``. None without a camera.
        camera: Camera data: how the frames were preprocessed (size, encoding, ``preprocess``).
    """

    sequences: tuple[TimedSequence, ...]
    flights: tuple[str, ...]
    export: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    report: tuple[str, ...] = ()
    frames: np.ndarray | None = None
    camera: CameraSpec | None = None

    def __post_init__(self) -> None:
        if (self.frames is None) != (self.camera is None):
            raise DataError("DescribedData needs both frames and camera, or neither.")
        if len(self.flights) != len(self.sequences):
            raise DataError(f"DescribedData needs one flight per sequence, got {len(self.flights)} for {len(self.sequences)}.")


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature normalisation ``(x - mean) / std``, computed on training data.

    These are the values a bundle's ``FeatureSpec.mean``/``std`` carry, so the onboard engine
    normalises exactly as training did.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise DataError(f"FeatureStats needs one mean and one std per feature, got {self.mean!r} and {self.std!r}.")
        if not all(np.isfinite(v) for v in (*self.mean, *self.std)) or min(self.std) <= 0:
            raise DataError(f"FeatureStats needs finite means and positive stds, got {self.mean!r} and {self.std!r}.")

    @classmethod
    def from_sequences(cls, sequences: Sequence[TimedSequence], min_std: float = MIN_STD) -> FeatureStats:
        """Mean and std of every feature over all steps of all sequences (std floored at ``min_std``).

        A constant feature gets std 1 rather than ``min_std`` so it does not blow up onboard noise.
        """
        check_sequences(sequences)
        stacked = np.concatenate([np.asarray(s.x, dtype=np.float64) for s in sequences], axis=0)
        if stacked.ndim != 2:
            raise DataError(f"FeatureStats needs vector inputs [T,F], got per-step shape {stacked.shape[1:]!r}.")
        mean = stacked.mean(axis=0)
        std = stacked.std(axis=0)
        std = np.where(std < min_std, 1.0, std)
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))

    @property
    def size(self) -> int:
        return len(self.mean)

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` as float32; ``x`` is [..., F]."""
        if x.shape[-1] != self.size:
            raise DataError(f"Cannot normalise inputs of shape {x.shape!r} with statistics of {self.size} features.")
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: object) -> FeatureStats:
        if not isinstance(data, dict) or not isinstance(data.get("mean"), list) or not isinstance(data.get("std"), list):
            raise DataError(f"Normalisation statistics must be a mapping with lists 'mean' and 'std', got {data!r}.")
        return cls(tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"]))


class WindowBatch(NamedTuple):
    """Fixed-length windows: x [N,L,F...], dt_s [N,L], y [N,L,O], mask [N,L] (1 = counts in the loss)."""

    x: np.ndarray
    dt_s: np.ndarray
    y: np.ndarray
    mask: np.ndarray

    @property
    def n_windows(self) -> int:
        """Number of windows N."""
        return int(self.x.shape[0])

    def take(self, indices: np.ndarray) -> WindowBatch:
        return WindowBatch(self.x[indices], self.dt_s[indices], self.y[indices], self.mask[indices])


def make_windows(
    sequences: Sequence[TimedSequence],
    window_steps: int,
    *,
    stats: FeatureStats | None = None,
    stride: int | None = None,
    burn_in_steps: int = 0,
) -> WindowBatch:
    """Cut sequences into windows of ``window_steps`` samples (each window starts from a zero state).

    Args:
        sequences: The dataset.
        window_steps: L, samples per window.
        stats: If given, inputs are normalised with it.
        stride: Samples between window starts (default L: no overlap). Every sample is in at
            least one window; the last window of a sequence is padded with x = 0, Δt = 0, y = 0.
        burn_in_steps: The first samples of each window are left out of the loss while the
            state warms up from zero.

    Raises:
        DataError: Bad sizes or malformed sequences.
    """
    if window_steps < 1:
        raise DataError(f"window_steps must be >= 1, got {window_steps!r}.")
    stride = window_steps if stride is None else stride
    if not 1 <= stride <= window_steps:
        raise DataError(f"stride must be between 1 and window_steps={window_steps}, got {stride!r}.")
    if not 0 <= burn_in_steps < window_steps:
        raise DataError(f"burn_in_steps must be between 0 and window_steps - 1 = {window_steps - 1}, got {burn_in_steps!r}.")
    input_shape, output_size = check_sequences(sequences)
    xs, dts, ys, masks = [], [], [], []
    for sequence in sequences:
        x = sequence.x if stats is None else stats.normalise(sequence.x)
        length = len(x)
        starts = list(range(0, max(length - window_steps, 0) + 1, stride))
        if starts[-1] + window_steps < length:
            starts.append(starts[-1] + stride)
        for start in starts:
            stop = min(start + window_steps, length)
            used = stop - start
            window_x = np.zeros((window_steps, *input_shape), dtype=np.float32)
            window_dt = np.zeros(window_steps, dtype=np.float32)
            window_y = np.zeros((window_steps, output_size), dtype=np.float32)
            window_mask = np.zeros(window_steps, dtype=np.float32)
            window_x[:used] = x[start:stop]
            window_dt[:used] = sequence.dt_s[start:stop]
            window_y[:used] = sequence.y[start:stop]
            window_mask[burn_in_steps:used] = 1.0
            xs.append(window_x)
            dts.append(window_dt)
            ys.append(window_y)
            masks.append(window_mask)
    return WindowBatch(np.stack(xs), np.stack(dts), np.stack(ys), np.stack(masks))


def split_sequences(
    sequences: Sequence[TimedSequence], val_fraction: float, seed: int = 0
) -> tuple[list[TimedSequence], list[TimedSequence]]:
    """Split into (train, validation) by whole sequences, shuffled with ``seed``.

    With a single sequence, its last ``val_fraction`` of samples becomes the validation sequence
    (its first Δt set to 0: it starts a new stream).

    Raises:
        DataError: ``val_fraction`` outside [0, 1) or too little data for a split.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction!r}.")
    sequences = list(sequences)
    if val_fraction == 0.0:
        return sequences, []
    if len(sequences) == 1:
        (only,) = sequences
        cut = round(len(only.x) * (1.0 - val_fraction))
        if not 0 < cut < len(only.x):
            raise DataError(f"The one sequence ({len(only.x)} samples) is too short to split with val_fraction={val_fraction!r}.")
        tail_dt = only.dt_s[cut:].copy()
        tail_dt[0] = 0.0
        return [TimedSequence(only.x[:cut], only.dt_s[:cut], only.y[:cut])], [
            TimedSequence(only.x[cut:], tail_dt, only.y[cut:])
        ]
    order = np.random.default_rng(seed).permutation(len(sequences))
    n_val = min(max(1, round(len(sequences) * val_fraction)), len(sequences) - 1)
    val = [sequences[i] for i in sorted(order[:n_val])]
    train = [sequences[i] for i in sorted(order[n_val:])]
    return train, val


class FlightSplit(NamedTuple):
    """Train and validation sequences, and the flights each side holds."""

    train: list[TimedSequence]
    validation: list[TimedSequence]
    train_flights: tuple[str, ...]
    validation_flights: tuple[str, ...]


def split_flights(
    sequences: Sequence[TimedSequence], flights: Sequence[str], val_fraction: float, seed: int = 0
) -> FlightSplit:
    """Split by whole flights: every sequence of a held-out flight goes to validation, so no
    flight feeds both sides (windows of one flight are correlated; validation on them flatters).

    ``val_fraction`` of the flights (at least one, never all) is held out, drawn with ``seed``.
    With a single flight there is no honest split: :func:`split_sequences` splits its sequences
    (or the end of its only sequence), and the flight is on both sides.

    Raises:
        DataError: ``val_fraction`` outside [0, 1), a flight count that does not match, or too
            little data for a split.
    """
    if len(flights) != len(sequences):
        raise DataError(f"split_flights needs one flight per sequence, got {len(flights)} for {len(sequences)}.")
    names = list(dict.fromkeys(flights))
    if len(names) < 2 or val_fraction == 0.0:
        train, val = split_sequences(sequences, val_fraction, seed)
        return FlightSplit(train, val, tuple(names), tuple(names) if val else ())
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction!r}.")
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = min(max(1, round(len(names) * val_fraction)), len(names) - 1)
    held_out = {names[i] for i in order[:n_val]}
    train = [s for s, f in zip(sequences, flights) if f not in held_out]
    val = [s for s, f in zip(sequences, flights) if f in held_out]
    return FlightSplit(
        train, val, tuple(n for n in names if n not in held_out), tuple(n for n in names if n in held_out)
    )
