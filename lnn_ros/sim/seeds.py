"""Which episode seeds train and which evaluate: two disjoint ranges, enforced where seeds are used.

Training data (demonstrations, DAgger rounds, recorded bags for training) uses seeds in
:data:`TRAINING_SEEDS` (0..9999); everything else is held out: the demo and the ROS tests fly
seed 10000 and up, and the evaluation table uses seeds in :data:`EVALUATION_SEEDS` derived from
(condition, index) so that every condition gets its own independent layouts (a hard layout
does not fail across all conditions at once) while every model flies the same episodes of a
condition (paired comparisons). The checks below raise instead of trusting a convention.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from lnn_ros.sim.errors import SimError

TRAINING_SEEDS = range(0, 10_000)
EVALUATION_SEEDS = range(10_000, 2**31 - 1)
_HASHED_SEEDS = range(1_000_000, 2**31 - 1)  # where evaluation_seeds() draws from (seeds below stay for demos)


def evaluation_seeds(condition: str, count: int) -> list[int]:
    """``count`` distinct evaluation seeds of ``condition``: the same every run, independent across conditions.

    Raises:
        SimError: ``count`` < 1.
    """
    if count < 1:
        raise SimError(f"evaluation_seeds needs count >= 1, got {count!r}.")
    span = _HASHED_SEEDS.stop - _HASHED_SEEDS.start
    seeds: list[int] = []
    index = 0
    while len(seeds) < count:
        seed = _HASHED_SEEDS.start + zlib.crc32(f"{condition}/{index}".encode()) % span
        index += 1
        if seed not in seeds:
            seeds.append(seed)
    return seeds


def check_training_seeds(seeds: Iterable[int], what: str = "training") -> None:
    """Raise unless every seed lies in :data:`TRAINING_SEEDS`.

    Raises:
        SimError: a seed is an evaluation seed (or negative); names the first one.
    """
    for seed in seeds:
        if int(seed) not in TRAINING_SEEDS:
            raise SimError(
                f"Seed {seed!r} cannot be used for {what}: {what} seeds must lie in "
                f"[{TRAINING_SEEDS.start}, {TRAINING_SEEDS.stop}); seeds from {EVALUATION_SEEDS.start} "
                "on are reserved for evaluation."
            )


def check_evaluation_seeds(seeds: Iterable[int]) -> None:
    """Raise unless every seed lies in :data:`EVALUATION_SEEDS` (never a training seed).

    Raises:
        SimError: names the first seed that could have been trained on.
    """
    for seed in seeds:
        if int(seed) not in EVALUATION_SEEDS:
            raise SimError(
                f"Seed {seed!r} cannot be used for evaluation: it lies outside [{EVALUATION_SEEDS.start}, "
                f"{EVALUATION_SEEDS.stop}) and could have been a training seed; use evaluation_seeds()."
            )
