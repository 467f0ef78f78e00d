"""Predicted vs recorded commands: pairing by stamp and per-axis error metrics.

Each prediction (stamped with the sensor message that produced it) is paired with the
recorded command *valid* at that stamp: the last one whose stamp is ``<=`` the prediction's,
provided it is at most ``max_age_s`` old (a pilot who stopped sending commands is not
compared against). Per axis (every model output mapped to a Twist field)::

    MSE = mean((p - r)^2)      MAE = mean(|p - r|)
    Pearson r = cov(p, r) / (std(p) std(r))   (None when either side is constant)
"""

from __future__ import annotations

from collections.abc import Sequence
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


def command_metrics(
    prediction_ns: np.ndarray,
    predicted: np.ndarray,
    recorded_ns: np.ndarray,
    recorded: np.ndarray,
    axes: Sequence[tuple[str, str, int]],
    max_age_s: float | None = None,
) -> tuple[CommandMetrics, np.ndarray]:
    """Pair predictions with recorded commands and compute per-axis errors.

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
    valid = pairs >= 0
    results = []
    predicted = np.asarray(predicted, dtype=np.float64).reshape(len(pairs), 6)
    recorded = np.asarray(recorded, dtype=np.float64).reshape(len(recorded_ns), 6)
    for name, twist_field, twist_index in axes:
        p = predicted[valid, twist_index]
        r = recorded[pairs[valid], twist_index]
        error = p - r
        results.append(
            AxisMetrics(
                name=name,
                twist_field=twist_field,
                mse=float(np.mean(error**2)) if len(error) else float("nan"),
                mae=float(np.mean(np.abs(error))) if len(error) else float("nan"),
                pearson=pearson(p, r),
            )
        )
    metrics = CommandMetrics(
        paired=int(valid.sum()), unpaired=int((~valid).sum()), max_age_s=max_age_s, axes=tuple(results)
    )
    return metrics, pairs
