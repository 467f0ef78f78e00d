"""Predicted vs recorded commands: pairing by stamp and per-axis error metrics.

Each prediction (stamped with the sensor message that produced it) is paired with the
recorded command *valid* at that stamp: the last one whose stamp is ``<=`` the prediction's,
provided it is at most ``max_age_s`` old (a pilot who stopped sending commands is not
compared against). Per axis (every model output mapped to a Twist field)::

    MSE = mean((p - r)^2)      MAE = mean(|p - r|)
    Pearson r = cov(p, r) / (std(p) std(r))   (None when either side is constant)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lnn_ros.units import NS_PER_S


@dataclass(frozen=True)
class AxisMetrics:
    """Errors of one output against its recorded Twist field."""

    name: str
    twist_field: str
    mse: float
    mae: float
    pearson: float | None


@dataclass(frozen=True)
class CommandMetrics:
    """Per-axis metrics over the paired predictions.

    Attributes:
        paired: predictions that had a valid recorded command.
        unpaired: predictions with none (before the first recorded command, or it was older
            than ``max_age_s``); they are left out of the metrics.
        max_age_s: the age limit used (None: no limit).
        axes: one entry per output mapped to a Twist field.
    """

    paired: int
    unpaired: int
    max_age_s: float | None
    axes: tuple[AxisMetrics, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "paired": self.paired,
            "unpaired": self.unpaired,
            "max_age_s": self.max_age_s,
            "axes": {axis.name: asdict(axis) for axis in self.axes},
        }


def pair_by_stamp(
    prediction_ns: np.ndarray, recorded_ns: np.ndarray, max_age_s: float | None = None
) -> np.ndarray:
    """For each prediction stamp, the index of the last recorded stamp ``<=`` it, or -1.

    ``recorded_ns`` must be sorted ascending (ties: the later index wins, i.e. the last one
    recorded). Pairs older than ``max_age_s`` become -1.
    """
    prediction_ns = np.asarray(prediction_ns, dtype=np.int64)
    recorded_ns = np.asarray(recorded_ns, dtype=np.int64)
    index = np.searchsorted(recorded_ns, prediction_ns, side="right") - 1
    if max_age_s is not None and len(recorded_ns):
        age_ns = prediction_ns - recorded_ns[np.maximum(index, 0)]
        index[age_ns > round(max_age_s * NS_PER_S)] = -1
    return index


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two equal-length series; None if either is constant or too short."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    da, db = a - a.mean(), b - b.mean()
    return float(np.clip((da @ db) / np.sqrt((da @ da) * (db @ db)), -1.0, 1.0))


class StampPairer:
    """Pairs predictions, one chunk at a time, with the recorded command valid at each stamp (as :func:`pair_by_stamp`).

    Args:
        recorded: the recorded commands as chunks of ``(stamps [m] int64, twists [m, 6] float64)``
            in non-decreasing stamp order (ties: the later one wins); the pairer keeps references.
        max_age_s: oldest recorded command still valid for a prediction (None: no limit).
        ordered: the prediction chunks come in non-decreasing stamp order, each chunk starting
            at or after the previous one's last stamp. Then only the recorded commands that a
            later prediction can still be paired with are kept (memory bounded by the chunk);
            otherwise every recorded chunk is read and kept.
    """

    def __init__(self, recorded: Iterator[tuple[np.ndarray, np.ndarray]], max_age_s: float | None, ordered: bool) -> None:
        self._source = recorded
        self._max_age_s = max_age_s
        self._ordered = ordered
        self._ns = np.zeros(0, np.int64)
        self._twists = np.zeros((0, 6))
        self._exhausted = False

    def pair(self, stamps_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For predictions ``stamps_ns`` [n]: which have a valid recorded command [n] bool, and its twist [n, 6]
        (zeros where none)."""
        if not len(stamps_ns):
            return np.zeros(0, bool), np.zeros((0, 6))
        top = int(stamps_ns.max())
        if not self._ordered:
            self._pull(None)
        elif not len(self._ns) or self._ns[-1] <= top:
            self._pull(top)
        index = pair_by_stamp(stamps_ns, self._ns, self._max_age_s)
        valid = index >= 0
        twists = self._twists[np.maximum(index, 0)] if len(self._ns) else np.zeros((len(stamps_ns), 6))
        if self._ordered and len(self._ns):  # later predictions are >= top: nothing before the last one <= top is needed
            keep = max(int(np.searchsorted(self._ns, top, side="right")) - 1, 0)
            self._ns, self._twists = self._ns[keep:], self._twists[keep:]
        return valid, twists

    def _pull(self, top: int | None) -> None:
        """Reads recorded chunks until one has a stamp after ``top`` (None: all of them)."""
        parts = [(self._ns, self._twists)]
        while not self._exhausted:
            chunk = next(self._source, None)
            if chunk is None:
                self._exhausted = True
                break
            parts.append(chunk)
            if top is not None and len(chunk[0]) and chunk[0][-1] > top:
                break
        if len(parts) > 1:
            self._ns = np.concatenate([p[0] for p in parts])
            self._twists = np.concatenate([p[1] for p in parts])


class MetricsAccumulator:
    """:class:`CommandMetrics` from paired values added in chunks (memory independent of their number).

    Means, variances and the covariance of each axis are merged chunk by chunk with the pairwise
    update of Chan, Golub and LeVeque (1979), so the Pearson correlation is as accurate as the
    two-pass formula of :func:`pearson` over all values at once (tested to 1e-12).
    """

    def __init__(self, axes: Sequence[tuple[str, str, int]], max_age_s: float | None) -> None:
        self._axes = list(axes)
        self._max_age_s = max_age_s
        k = len(self._axes)
        self._columns = [index for _, _, index in self._axes]
        self.paired = 0
        self.unpaired = 0
        self._mean = np.zeros((2, k))  # predicted, recorded
        self._m2 = np.zeros((2, k))
        self._co = np.zeros(k)
        self._squared = np.zeros(k)
        self._absolute = np.zeros(k)
        self._low = np.full((2, k), np.inf)
        self._high = np.full((2, k), -np.inf)

    def add(self, predicted: np.ndarray, recorded: np.ndarray, valid: np.ndarray) -> None:
        """Twists [n, 6] of predictions and of their paired recorded commands; ``valid`` [n] marks the pairs."""
        both = np.stack([predicted[valid][:, self._columns], recorded[valid][:, self._columns]]).astype(np.float64)
        count = both.shape[1]
        self.unpaired += len(valid) - count
        if not count:
            return
        mean = both.mean(axis=1)
        centred = both - mean[:, None, :]
        total = self.paired + count
        delta = mean - self._mean
        weight = self.paired * count / total
        self._m2 += np.einsum("snk,snk->sk", centred, centred) + delta**2 * weight
        self._co += np.einsum("nk,nk->k", centred[0], centred[1]) + delta[0] * delta[1] * weight
        self._mean += delta * (count / total)
        error = both[0] - both[1]
        self._squared += np.einsum("nk,nk->k", error, error)
        self._absolute += np.abs(error).sum(axis=0)
        self._low = np.minimum(self._low, both.min(axis=1))
        self._high = np.maximum(self._high, both.max(axis=1))
        self.paired = total

    def result(self) -> CommandMetrics:
        results = []
        n = self.paired
        for column, (name, twist_field, _) in enumerate(self._axes):
            constant = bool((self._high[:, column] <= self._low[:, column]).any())
            r = None
            if n >= 2 and not constant:
                r = float(np.clip(self._co[column] / np.sqrt(self._m2[0, column] * self._m2[1, column]), -1.0, 1.0))
            results.append(AxisMetrics(
                name=name,
                twist_field=twist_field,
                mse=float(self._squared[column] / n) if n else float("nan"),
                mae=float(self._absolute[column] / n) if n else float("nan"),
                pearson=r,
            ))
        return CommandMetrics(paired=n, unpaired=self.unpaired, max_age_s=self._max_age_s, axes=tuple(results))


def command_metrics(
    prediction_ns: np.ndarray,
    predicted: np.ndarray,
    recorded_ns: np.ndarray,
    recorded: np.ndarray,
    axes: Sequence[tuple[str, str, int]],
    max_age_s: float | None = None,
) -> tuple[CommandMetrics, np.ndarray]:
    """Pair predictions with recorded commands and compute per-axis errors, all in memory
    (``lnn-ros replay`` streams the same with :class:`StampPairer` and :class:`MetricsAccumulator`).

    Args:
        prediction_ns: prediction stamps [N].
        predicted: predicted twists [N, 6] (linear xyz, angular xyz).
        recorded_ns: recorded command stamps [M] (any order; sorted here, stably).
        recorded: recorded twists [M, 6].
        axes: ``(name, twist_field, twist_index)`` of every compared output.
        max_age_s: oldest recorded command still valid for a prediction (None: no limit).

    Returns:
        ``(metrics, pairs)``: ``pairs[i]`` is the row of ``recorded`` paired with prediction
        ``i``, or -1 if it has none.
    """
    recorded_ns = np.asarray(recorded_ns, dtype=np.int64)
    order = np.argsort(recorded_ns, kind="stable")
    sorted_index = pair_by_stamp(prediction_ns, recorded_ns[order], max_age_s)
    pairs = np.where(sorted_index >= 0, order[np.maximum(sorted_index, 0)], -1)
    predicted = np.asarray(predicted, dtype=np.float64).reshape(len(pairs), 6)
    recorded = np.asarray(recorded, dtype=np.float64).reshape(len(recorded_ns), 6)
    accumulator = MetricsAccumulator(axes, max_age_s)
    accumulator.add(predicted, recorded[np.maximum(pairs, 0)] if len(recorded) else np.zeros_like(predicted), pairs >= 0)
    return accumulator.result(), pairs
