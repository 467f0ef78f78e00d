"""``lnn-ros sim check-bundle``: fly a bundle in the simulator on held-out episodes; strict success with its interval.

The closed-loop check of a candidate trained from simulator-recorded bags (the offline one is
``lnn-ros replay``): the bundle flies through :class:`~lnn_ros.sim.pilot.BundlePilot` (the
torch-free engine and the runtime's :class:`~lnn_ros.runtime.PolicyRunner`, the code path of
``lnn_node``) on evaluation seeds of a condition (:func:`lnn_ros.sim.seeds.evaluation_seeds`,
disjoint from every training seed), and each episode is judged by the strict rule of
:func:`lnn_ros.sim.quality.flight_quality` (reach the target region and hold it to the end,
no crash). The success rate comes with its 95 % Wilson interval.

Bags written by ``lnn-ros sim record-bag`` carry their episode (seed, variant, duration) in
:data:`EPISODE_FILE` inside the bag folder; given such bags, the check flies their condition
and refuses if one of their seeds is an evaluation seed (the check would not be held out).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from lnn_ros.bundle import Bundle, load_bundle
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.parallel import run_jobs
from lnn_ros.sim.quality import FlightQuality, flight_quality
from lnn_ros.sim.seeds import check_evaluation_seeds, check_training_seeds, evaluation_seeds
from lnn_ros.sim.stats import wilson_interval
from lnn_ros.sim.world.config import SimConfig, variant_from_name

EPISODE_FILE = "sim_episode.yaml"
"""What ``lnn-ros sim record-bag`` writes beside the bag's ``metadata.yaml``: the episode flown."""


def write_episode(bag: Path, seed: int, variant: str, duration_s: float, pilot: str = "expert") -> Path:
    """Record the episode of a simulator bag in its folder (:data:`EPISODE_FILE`).

    ``pilot`` says who flew: ``expert``, or ``noisy_expert`` for a noise-injected bag whose
    commands are the clean expert's while the vehicle flew them plus noise.
    """
    path = bag / EPISODE_FILE
    episode = {"seed": seed, "variant": variant, "duration_s": duration_s, "pilot": pilot}
    path.write_text(yaml.safe_dump(episode, sort_keys=False))
    return path


def read_episode(bag: Path) -> dict[str, Any] | None:
    """The episode a simulator bag recorded (seed, variant, duration_s), or None for other bags.

    Raises:
        SimError: the file exists but is not such a mapping.
    """
    path = Path(bag) / EPISODE_FILE
    if not path.is_file():
        return None
    episode = yaml.safe_load(path.read_text())
    if not isinstance(episode, dict) or not {"seed", "variant"} <= set(episode):
        raise SimError(f"{path}: must be a mapping with seed and variant, got {episode!r}; re-record the bag.")
    return episode


def bag_episodes(bags: Sequence[Path]) -> list[dict[str, Any]]:
    """The episodes of the simulator bags among ``bags`` (bag folders, or folders of them).

    Raises:
        SimError: none of them was recorded by ``lnn-ros sim record-bag``.
    """
    found: list[dict[str, Any]] = []
    for given in bags:
        folders = [given] if (given / "metadata.yaml").is_file() else sorted(p for p in given.iterdir() if p.is_dir())
        found += [e for e in (read_episode(f) for f in folders) if e is not None]
    if not found:
        raise SimError(
            f"None of {[str(b) for b in bags]} was recorded by 'lnn-ros sim record-bag' (no {EPISODE_FILE}); "
            "name the condition with --condition instead of --bags."
        )
    return found


class CheckJob(NamedTuple):
    bundle: str
    variant: str
    seed: int
    duration_s: float


class BundleCheck(NamedTuple):
    """The outcome of :func:`check_bundle` on one condition.

    Attributes:
        condition: the scenario variant flown.
        seeds: the evaluation seeds flown, in order.
        flights: the measures of each episode.
        interval: 95 % Wilson interval of the success rate.
    """

    condition: str
    seeds: tuple[int, ...]
    flights: tuple[FlightQuality, ...]
    interval: tuple[float, float]

    @property
    def successes(self) -> int:
        return sum(f.success for f in self.flights)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the totals and every episode's outcome (seed order), for paired comparisons.

        Two checks of the same condition and episode count fly the same seeds, so their
        ``episodes[i]["success"]`` pair up for :func:`lnn_ros.sim.stats.mcnemar`.
        """
        n = len(self.flights)
        return {
            "condition": self.condition,
            "episodes": n,
            "successes": self.successes,
            "success_rate": self.successes / n,
            "wilson_95": list(self.interval),
            "crashed": sum(f.crashed for f in self.flights),
            "mean_final_distance_m": sum(f.final_distance_m for f in self.flights) / n,
            "per_episode": [
                {
                    "seed": seed,
                    "success": bool(f.success),
                    "crashed": bool(f.crashed),
                    "final_distance_m": round(float(f.final_distance_m), 4),
                    "time_to_reach_s": None if f.time_to_reach_s is None else round(float(f.time_to_reach_s), 3),
                }
                for seed, f in zip(self.seeds, self.flights)
            ],
        }

    def summary(self) -> str:
        """One line: successes, rate, interval, crashes, mean final distance."""
        n = len(self.flights)
        low, high = self.interval
        crashed = sum(f.crashed for f in self.flights)
        final = sum(f.final_distance_m for f in self.flights) / n
        return (
            f"closed loop  {self.condition}: success {self.successes}/{n} = {self.successes / n:.0%} "
            f"(95 % Wilson interval {low:.0%}..{high:.0%}); crashed {crashed}; mean final distance {final:.2f} m"
        )


@lru_cache(maxsize=4)
def _bundle(path: str) -> Bundle:
    return load_bundle(path)


def fly_check_episode(job: CheckJob) -> FlightQuality:
    """Fly one episode with the bundle (runs in a worker process)."""
    from lnn_ros.sim.pilot import BundlePilot
    from lnn_ros.sim.world.closed_loop import run_closed_loop
    from lnn_ros.sim.world.episode import Simulator

    sim = Simulator(dataclasses.replace(SimConfig(), duration_s=job.duration_s), job.variant, job.seed)
    return flight_quality(run_closed_loop(sim, BundlePilot(_bundle(job.bundle))(sim)))


def check_bundle(
    bundle: str | Path,
    condition: str = "nominal",
    episodes: int = 20,
    duration_s: float = SimConfig().duration_s,
    workers: int | None = None,
    training_seeds: Sequence[int] = (),
) -> BundleCheck:
    """Fly ``bundle`` on ``episodes`` evaluation seeds of ``condition``.

    Args:
        bundle: the bundle folder.
        condition: the scenario variant.
        episodes: how many (the interval narrows as 1/sqrt(episodes)).
        duration_s: episode length (the strict rule needs the final 2 s inside the region).
        workers: processes flying episodes (None: one per core).
        training_seeds: seeds the bundle was trained on; every one must be a training seed.

    Raises:
        SimError: an unknown condition, episodes < 1, or a training seed in the evaluation range.
        ManifestError: the bundle cannot be loaded.
    """
    name = variant_from_name(condition).value
    check_training_seeds(training_seeds, "the bags the bundle was trained on")
    seeds = evaluation_seeds(name, episodes)
    check_evaluation_seeds(seeds)
    load_bundle(bundle)  # a broken bundle fails here, once, not in every worker
    jobs = [CheckJob(str(bundle), name, seed, duration_s) for seed in seeds]
    flights = run_jobs(fly_check_episode, jobs, workers)
    successes = sum(f.success for f in flights)
    return BundleCheck(name, tuple(seeds), tuple(flights), wilson_interval(successes, len(flights)))
