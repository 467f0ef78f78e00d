"""Statistics for success tables: Wilson intervals and the exact McNemar test on paired episodes.

Written out here (a few lines each, exact formulas) rather than importing scipy.stats, so the
evaluation report needs only the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default); (0, 1) for no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


class McNemar(NamedTuple):
    """Exact McNemar test of two models flown on the same episodes.

    Attributes:
        only_a: episodes that model A succeeded and B failed.
        only_b: episodes that B succeeded and A failed.
        p_value: two-sided exact p (binomial on the discordant pairs, p = 1/2).
    """

    only_a: int
    only_b: int
    p_value: float


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> McNemar:
    """Exact two-sided McNemar test of paired outcomes ``a[i]`` / ``b[i]`` (same episode i).

    Raises:
        ValueError: the sequences differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"Paired outcomes must have one entry per episode each, got {len(a)} and {len(b)}.")
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    n = only_a + only_b
    if n == 0:
        return McNemar(0, 0, 1.0)
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return McNemar(only_a, only_b, min(1.0, 2 * tail))
