"""Success statistics of a controller over seeds and scenario variants (success: :mod:`lnn_ros.sim.quality`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.expert import expert_controller
from lnn_ros.sim.parallel import check_picklable, resolve_workers, run_jobs
from lnn_ros.sim.quality import flight_quality
from lnn_ros.sim.world.closed_loop import Controller, run_closed_loop
from lnn_ros.sim.world.config import ScenarioVariant, SimConfig, variant_from_name
from lnn_ros.sim.world.episode import EpisodeResult, Simulator

ControllerFactory = Callable[[Simulator], Controller]


class VariantStats(NamedTuple):
    """Outcome of one controller on one variant over several seeds."""

    variant: ScenarioVariant
    episodes: int
    reached: int  # successes by the strict rule: reached the target region and stayed to the end
    crashed: int
    mean_time_to_reach_s: float  # start of the final stay, over successful episodes; NaN if none
    mean_final_distance_m: float

    @property
    def success_rate(self) -> float:
        """Share of successful episodes (:func:`lnn_ros.sim.quality.flight_quality`)."""
        return self.reached / self.episodes


def summarize(variant: ScenarioVariant, results: Sequence[EpisodeResult]) -> VariantStats:
    """Aggregate episode results of one variant, success by the strict rule of :mod:`lnn_ros.sim.quality`."""
    qualities = [flight_quality(r) for r in results]
    times = [q.time_to_reach_s for q in qualities if q.time_to_reach_s is not None]
    return VariantStats(
        variant=variant,
        episodes=len(results),
        reached=sum(q.success for q in qualities),
        crashed=sum(r.crashed for r in results),
        mean_time_to_reach_s=sum(times) / len(times) if times else math.nan,
        mean_final_distance_m=sum(r.final_distance_m for r in results) / len(results),
    )


class EpisodeJob(NamedTuple):
    """One (variant, seed) episode of :func:`evaluate`."""

    controller_factory: ControllerFactory
    config: SimConfig
    variant: ScenarioVariant
    seed: int
    latency_s: float


def fly_job(job: EpisodeJob) -> EpisodeResult:
    """Fly one episode with a fresh controller (runs in a worker process)."""
    sim = Simulator(job.config, job.variant, job.seed)
    return run_closed_loop(sim, job.controller_factory(sim), job.latency_s)


def evaluate(
    controller_factory: ControllerFactory = expert_controller,
    variants: Sequence[str | ScenarioVariant] = tuple(ScenarioVariant),
    seeds: Sequence[int] = range(10),
    config: SimConfig = SimConfig(),
    latency_s: float = 0.0,
    on_result: Callable[[EpisodeResult], None] | None = None,
    workers: int | None = None,
) -> list[VariantStats]:
    """Fly every (variant, seed) with a fresh controller from ``controller_factory(sim)``.

    Episodes depend only on their (variant, seed), so the statistics are the same however
    many processes fly them.

    Args:
        controller_factory: builds the controller for one episode's simulator (default: the expert).
        variants: variants to fly.
        seeds: seeds flown in each variant.
        config: simulator settings.
        latency_s: command latency (see :func:`run_closed_loop`).
        on_result: called with each episode's result (e.g. to plot it), in episode order.
        workers: processes flying episodes (None: one per core; a factory that cannot be
            pickled, e.g. a closure, then flies in this process).

    Raises:
        SimError: no seeds, or ``workers`` > 1 with a factory that cannot be pickled.
    """
    if not seeds:
        raise SimError("seeds must hold at least one seed, got an empty sequence.")
    chosen = [variant_from_name(name) for name in variants]
    jobs = [EpisodeJob(controller_factory, config, variant, seed, latency_s) for variant in chosen for seed in seeds]
    count = resolve_workers(workers)
    if count > 1:
        try:
            check_picklable(controller_factory, "controller_factory")
        except SimError:
            if workers is not None:
                raise
            count = 1
    results = run_jobs(fly_job, jobs, count, None if on_result is None else lambda _i, result: on_result(result))
    per_variant = len(seeds)
    return [summarize(variant, results[i * per_variant : (i + 1) * per_variant]) for i, variant in enumerate(chosen)]


def format_stats(stats: Sequence[VariantStats]) -> str:
    """A small fixed-width table, one line per variant."""
    lines = [f"{'variant':<12} {'reached':>9} {'crashed':>8} {'t_reach_s':>10} {'final_m':>8}"]
    for s in stats:
        lines.append(
            f"{s.variant.value:<12} {s.reached:>4}/{s.episodes:<4} {s.crashed:>8} "
            f"{s.mean_time_to_reach_s:>10.2f} {s.mean_final_distance_m:>8.2f}"
        )
    return "\n".join(lines)
