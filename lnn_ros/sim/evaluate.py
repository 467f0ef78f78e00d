"""Success statistics of a controller over seeds and scenario variants."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.expert import expert_controller
from lnn_ros.sim.world.closed_loop import Controller, run_closed_loop
from lnn_ros.sim.world.config import ScenarioVariant, SimConfig, variant_from_name
from lnn_ros.sim.world.episode import EpisodeResult, Simulator

ControllerFactory = Callable[[Simulator], Controller]


class VariantStats(NamedTuple):
    """Outcome of one controller on one variant over several seeds."""

    variant: ScenarioVariant
    episodes: int
    reached: int
    crashed: int
    mean_time_to_reach_s: float  # over reached episodes; NaN if none
    mean_final_distance_m: float

    @property
    def success_rate(self) -> float:
        """Share of episodes that reached the target."""
        return self.reached / self.episodes


def summarize(variant: ScenarioVariant, results: Sequence[EpisodeResult]) -> VariantStats:
    """Aggregate episode results of one variant."""
    times = [r.time_to_reach_s for r in results if r.time_to_reach_s is not None]
    return VariantStats(
        variant=variant,
        episodes=len(results),
        reached=sum(r.reached for r in results),
        crashed=sum(r.crashed for r in results),
        mean_time_to_reach_s=sum(times) / len(times) if times else math.nan,
        mean_final_distance_m=sum(r.final_distance_m for r in results) / len(results),
    )


def evaluate(
    controller_factory: ControllerFactory = expert_controller,
    variants: Sequence[str | ScenarioVariant] = tuple(ScenarioVariant),
    seeds: Sequence[int] = range(10),
    config: SimConfig = SimConfig(),
    latency_s: float = 0.0,
    on_result: Callable[[EpisodeResult], None] | None = None,
) -> list[VariantStats]:
    """Fly every (variant, seed) with a fresh controller from ``controller_factory(sim)``.

    Args:
        controller_factory: builds the controller for one episode's simulator (default: the expert).
        variants: variants to fly.
        seeds: seeds flown in each variant.
        config: simulator settings.
        latency_s: command latency (see :func:`run_closed_loop`).
        on_result: called with each episode's result (e.g. to plot it).
    """
    if not seeds:
        raise SimError("seeds must hold at least one seed, got an empty sequence.")
    stats = []
    for name in variants:
        variant = variant_from_name(name)
        results = []
        for seed in seeds:
            sim = Simulator(config, variant, seed)
            results.append(run_closed_loop(sim, controller_factory(sim), latency_s))
            if on_result is not None:
                on_result(results[-1])
        stats.append(summarize(variant, results))
    return stats


def format_stats(stats: Sequence[VariantStats]) -> str:
    """A small fixed-width table, one line per variant."""
    lines = [f"{'variant':<12} {'reached':>9} {'crashed':>8} {'t_reach_s':>10} {'final_m':>8}"]
    for s in stats:
        lines.append(
            f"{s.variant.value:<12} {s.reached:>4}/{s.episodes:<4} {s.crashed:>8} "
            f"{s.mean_time_to_reach_s:>10.2f} {s.mean_final_distance_m:>8.2f}"
        )
    return "\n".join(lines)
