"""Evaluate drone policy bundles: closed-loop success per variant, and offline tracking of the expert.

Closed loop: every (bundle, variant, seed) episode is flown by the bundle through
:class:`~lnn_ros.sim.pilot.BundlePilot`, i.e. the torch-free Engine and the runtime's
:class:`~lnn_ros.runtime.PolicyRunner`, the code path of ``lnn_node``. Commands take effect at
the stamp of the sensor message that produced them (no transport latency; the ROS demo
measures that). Seeds start at :data:`EVAL_FIRST_SEED`, never used for training. "nominal" is
in distribution (the training variant); the others are out of distribution.

Offline: held-out expert demonstrations (seeds from :data:`OFFLINE_FIRST_SEED`) are replayed
through each bundle's runner in the simulator's event order; the RMSE of its commands against
the expert's labels is compared with two trivial predictors: always hover (zero command) and
always the mean expert command of those episodes.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lnn_ros.bundle import Bundle, load_bundle
from lnn_ros.runtime.factory import build_runner
from lnn_ros.runtime.records import ImuSample
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.demonstrations import Demonstration
from lnn_ros.sim.pilot import BundlePilot
from lnn_ros.sim.world.closed_loop import run_closed_loop
from lnn_ros.sim.world.config import ScenarioVariant, SimConfig, variant_from_name
from lnn_ros.sim.world.episode import Simulator
from lnn_ros_examples.drone_policy.data import demo_events

EVAL_FIRST_SEED = 10_000
OFFLINE_FIRST_SEED = 20_000
OUTPUT_NAMES = ("vx", "vy", "vz", "yaw_rate")
Log = Callable[[str], None]


class EpisodeOutcome(NamedTuple):
    """One closed-loop episode of one bundle."""

    model: str
    variant: str
    seed: int
    reached: bool
    crashed: bool
    time_to_reach_s: float | None
    final_distance_m: float
    min_distance_m: float


class FlyJob(NamedTuple):
    model: str
    path: str
    variant: str
    seed: int
    duration_s: float


@lru_cache(maxsize=16)
def _bundle(path: str) -> Bundle:
    return load_bundle(path)


def fly_episode(job: FlyJob) -> EpisodeOutcome:
    """Fly one episode (worker process)."""
    config = dataclasses.replace(SimConfig(), duration_s=job.duration_s)
    sim = Simulator(config, job.variant, job.seed)
    result = run_closed_loop(sim, BundlePilot(_bundle(job.path))(sim))
    return EpisodeOutcome(
        job.model,
        job.variant,
        job.seed,
        result.reached,
        result.crashed,
        result.time_to_reach_s,
        result.final_distance_m,
        result.min_distance_m,
    )


def closed_loop(
    models: dict[str, Path],
    variants: Sequence[str | ScenarioVariant],
    seeds: Sequence[int],
    duration_s: float = 10.0,
    workers: int = 2,
    log: Log | None = None,
) -> list[EpisodeOutcome]:
    """Fly every (model, variant, seed) in ``workers`` processes; outcomes in job order."""
    if not seeds:
        raise SimError("closed_loop needs at least one seed, got none.")
    jobs = [
        FlyJob(name, str(path), variant_from_name(v).value, int(seed), duration_s)
        for name, path in models.items()
        for v in variants
        for seed in seeds
    ]
    started = time.monotonic()
    outcomes: list[EpisodeOutcome] = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for outcome in pool.map(fly_episode, jobs, chunksize=2):
            outcomes.append(outcome)
            if log is not None and len(outcomes) % 25 == 0:
                log(f"flew {len(outcomes)}/{len(jobs)} episodes ({time.monotonic() - started:.0f} s)")
    return outcomes


def success_table(outcomes: Sequence[EpisodeOutcome]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{model: {variant: {episodes, reached, success_rate, crashed, mean_time_to_reach_s, ...}}}``."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for outcome in outcomes:
        table.setdefault(outcome.model, {}).setdefault(outcome.variant, {"_": []})["_"].append(outcome)
    for variants in table.values():
        for _name, cell in variants.items():
            group: list[EpisodeOutcome] = cell.pop("_")
            times = [o.time_to_reach_s for o in group if o.time_to_reach_s is not None]
            reached = sum(o.reached for o in group)
            cell.update(
                episodes=len(group),
                reached=reached,
                success_rate=round(reached / len(group), 4),
                crashed=sum(o.crashed for o in group),
                mean_time_to_reach_s=round(float(np.mean(times)), 3) if times else None,
                mean_final_distance_m=round(float(np.mean([o.final_distance_m for o in group])), 3),
                failed_seeds=[o.seed for o in group if not o.reached],
            )
    return table


def replay_commands(bundle: Bundle, demo: Demonstration) -> tuple[np.ndarray, np.ndarray]:
    """Replay a demonstration through a fresh runner; returns (policy commands [K, 4], expert labels [K, 4]).

    Rows are the IMU samples on which the runner produced a command.
    """
    runner = build_runner(bundle)
    commands, labels = [], []
    imu_index = 0
    for event in demo_events(demo):
        if isinstance(event, ImuSample):
            command = runner.on_imu(event)
            if command is not None:
                commands.append(command.heading_array())
                labels.append(demo.imu_expert_command[imu_index])
            imu_index += 1
        else:
            runner.on_image(event)
    return np.array(commands, dtype=np.float64).reshape(-1, 4), np.array(labels, dtype=np.float64).reshape(-1, 4)


def _rmse(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    error = (prediction - target) ** 2
    out = {name: round(float(math.sqrt(error[:, i].mean())), 5) for i, name in enumerate(OUTPUT_NAMES)}
    out["all"] = round(float(math.sqrt(error.mean())), 5)
    return out


def offline_tracking(models: dict[str, Path], demos: Sequence[Demonstration]) -> dict[str, dict[str, float]]:
    """RMSE to the expert per output for every bundle and for the hover / mean-command baselines."""
    if not demos:
        raise SimError("offline_tracking needs at least one held-out demonstration, got none.")
    all_labels = np.concatenate([np.asarray(d.imu_expert_command, dtype=np.float64) for d in demos], axis=0)
    mean_command = all_labels.mean(axis=0)
    rows: dict[str, dict[str, float]] = {}
    for name, path in models.items():
        bundle = load_bundle(path)
        predictions, labels = zip(*(replay_commands(bundle, demo) for demo in demos))
        rows[name] = _rmse(np.concatenate(predictions), np.concatenate(labels))
    rows["baseline: hover (zero command)"] = _rmse(np.zeros_like(all_labels), all_labels)
    rows["baseline: mean expert command"] = _rmse(np.broadcast_to(mean_command, all_labels.shape), all_labels)
    return rows


def markdown(report: dict[str, Any]) -> str:
    """The report's two tables in Markdown."""
    variants: list[str] = report["variants"]
    header = ["model"] + [f"{v} ({'in dist.' if v == 'nominal' else 'OOD'})" for v in variants]
    lines = [
        f"Closed-loop success (reached within {report['success_radius_m']:g} m of the target and held "
        f"{report['success_hold_s']:g} s; {report['seeds']} seeds per variant from seed {report['first_seed']}, "
        f"{report['duration_s']:g} s episodes, flown through Engine + PolicyRunner):",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for model, row in report["closed_loop"].items():
        kind = report["kinds"].get(model, "")
        cells = [f"{model} ({kind})" if kind else model]
        for variant in variants:
            cell = row[variant]
            cells.append(f"{cell['reached']}/{cell['episodes']} ({100 * cell['success_rate']:.0f} %)")
        lines.append("| " + " | ".join(cells) + " |")
    offline = report.get("offline")
    if offline:
        lines += [
            "",
            f"Offline tracking of the expert on {report['offline_episodes']} held-out expert episodes "
            "(RMSE of the commands, m/s and rad/s):",
            "",
            "| predictor | vx | vy | vz | yaw rate | all |",
            "|---|---|---|---|---|---|",
        ]
        for name, rmse in offline.items():
            lines.append(
                f"| {name} | " + " | ".join(f"{rmse[k]:.3f}" for k in (*OUTPUT_NAMES, "all")) + " |"
            )
    return "\n".join(lines) + "\n"


def record_expert(seed_and_duration: tuple[int, float]) -> Demonstration:
    """One held-out expert demonstration in the nominal variant (worker process)."""
    from lnn_ros.sim.expert.demonstrations import record_demonstration

    seed, duration_s = seed_and_duration
    demo, _ = record_demonstration(dataclasses.replace(SimConfig(), duration_s=duration_s), ScenarioVariant.NOMINAL, seed)
    return demo


def evaluate_policies(
    models: dict[str, Path],
    *,
    variants: Sequence[str | ScenarioVariant] = tuple(ScenarioVariant),
    seeds: int = 20,
    duration_s: float = 10.0,
    offline_episodes: int = 5,
    workers: int = 2,
    log: Log = print,
) -> dict[str, Any]:
    """Closed-loop success table and offline tracking of ``models`` (name -> bundle folder).

    Returns:
        The report (what :func:`markdown` renders and ``results/policy_eval.json`` holds).
    """
    if seeds < 1:
        raise SimError(f"evaluate_policies needs seeds >= 1, got {seeds!r}.")
    names = [variant_from_name(v).value for v in variants]
    bundles = {name: load_bundle(path) for name, path in models.items()}
    started = time.monotonic()
    seed_list = list(range(EVAL_FIRST_SEED, EVAL_FIRST_SEED + seeds))
    log(f"flying {len(models)} models x {len(names)} variants x {seeds} seeds = {len(models) * len(names) * seeds} episodes")
    outcomes = closed_loop(models, names, seed_list, duration_s, workers, log)
    closed_s = time.monotonic() - started
    offline: dict[str, dict[str, float]] = {}
    if offline_episodes > 0:
        jobs = [(OFFLINE_FIRST_SEED + i, duration_s) for i in range(offline_episodes)]
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            demos = list(pool.map(record_expert, jobs))
        offline = offline_tracking(models, demos)
    config = SimConfig()
    return {
        "command": None,
        "variants": names,
        "in_distribution": ScenarioVariant.NOMINAL.value,
        "seeds": seeds,
        "first_seed": EVAL_FIRST_SEED,
        "duration_s": duration_s,
        "success_radius_m": config.success_radius_m,
        "success_hold_s": config.success_hold_s,
        "kinds": {name: bundle.manifest.model.kind for name, bundle in bundles.items()},
        "hashes": {name: bundle.digest for name, bundle in bundles.items()},
        "closed_loop": success_table(outcomes),
        "offline_episodes": offline_episodes,
        "offline_first_seed": OFFLINE_FIRST_SEED,
        "offline": offline,
        "seconds": {"closed_loop": round(closed_s, 1), "total": round(time.monotonic() - started, 1)},
    }
