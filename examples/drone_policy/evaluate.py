"""Evaluate drone policy bundles: a flight-quality table with intervals and paired tests, and offline tracking.

Closed loop: every (row, condition, episode) is flown; a row is a bundle, flown through
:class:`~lnn_ros.sim.pilot.BundlePilot` (the torch-free Engine and the runtime's
:class:`~lnn_ros.runtime.PolicyRunner`, the code path of ``lnn_node``), or the privileged
expert (the reference row: it reads the true state). Commands take effect at the stamp of the
sensor message that produced them (no transport latency; the ROS demo measures that).

* Success is the strict rule of :mod:`lnn_ros.sim.quality`: reach the target region and stay
  in it to the end of the episode (at least 2 s), without a crash.
* Every condition has its own episodes (:func:`lnn_ros.sim.seeds.evaluation_seeds`): layouts
  are independent across conditions, and every row flies the same episodes of a condition,
  so rows are compared pairwise (exact McNemar test). Evaluation seeds are checked to be
  disjoint from the training range (:func:`lnn_ros.sim.seeds.check_evaluation_seeds`).
* Each success rate comes with its 95 % Wilson interval.

Offline: held-out expert demonstrations are replayed through each bundle's runner in the
simulator's event order; the RMSE of its commands against the expert's labels is compared
with two trivial predictors: always hover (zero command) and always the mean expert command.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lnn_ros.bundle import Bundle, load_bundle
from lnn_ros.runtime.factory import build_runner
from lnn_ros.runtime.records import ImuSample
from lnn_ros.sim.bundle_check import CheckJob, fly_check_episode
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.demonstrations import Demonstration
from lnn_ros.sim.expert.expert import expert_controller
from lnn_ros.sim.parallel import run_jobs
from lnn_ros.sim.quality import MIN_FINAL_HOLD_S, TARGET_REGION_M, flight_quality
from lnn_ros.sim.seeds import check_evaluation_seeds, evaluation_seeds
from lnn_ros.sim.stats import mcnemar, wilson_interval
from lnn_ros.sim.world.closed_loop import run_closed_loop
from lnn_ros.sim.world.config import ScenarioVariant, SimConfig, variant_from_name, variant_spec
from lnn_ros.sim.world.episode import Simulator
from lnn_ros_examples.drone_policy.data import demo_events

EXPERT = "expert"
OFFLINE_FIRST_SEED = 1_900_000_000
OUTPUT_NAMES = ("vx", "vy", "vz", "yaw_rate")
PUBLISHED_CONDITIONS = (
    "nominal", "far", "off_heading", "occlusion", "dropout", "rates", "delay", "memory", "lighting", "storm",
)  # fmt: skip
Log = Callable[[str], None]


class EpisodeOutcome(NamedTuple):
    """One closed-loop episode of one row (see :class:`lnn_ros.sim.quality.FlightQuality`)."""

    model: str
    variant: str
    seed: int
    success: bool
    crashed: bool
    time_to_reach_s: float | None
    final_distance_m: float
    min_distance_m: float
    mean_speed_command_mps: float
    mean_yaw_rate_command_rps: float
    command_activity: float


class FlyJob(NamedTuple):
    model: str
    path: str  # "" for the expert
    variant: str
    seed: int
    duration_s: float


def fly_episode(job: FlyJob) -> EpisodeOutcome:
    """Fly one episode (worker process): a bundle as ``lnn-ros sim check-bundle`` flies it, or the expert."""
    if job.path:
        quality = fly_check_episode(CheckJob(job.path, job.variant, job.seed, job.duration_s))
    else:
        sim = Simulator(dataclasses.replace(SimConfig(), duration_s=job.duration_s), job.variant, job.seed)
        quality = flight_quality(run_closed_loop(sim, expert_controller(sim)))
    return EpisodeOutcome(job.model, job.variant, job.seed, *quality)


def closed_loop(
    models: dict[str, Path | None],
    variants: Sequence[str | ScenarioVariant],
    episodes: int,
    duration_s: float = 10.0,
    workers: int | None = None,
    log: Log | None = None,
) -> list[EpisodeOutcome]:
    """Fly every (row, condition, episode) in ``workers`` processes (None: one per core).

    ``models`` maps a row name to a bundle folder, or to None for the expert. Outcomes come in
    job order, the same as a serial run's (each episode depends only on its job).
    """
    if episodes < 1:
        raise SimError(f"closed_loop needs episodes >= 1, got {episodes!r}.")
    names = [variant_from_name(v).value for v in variants]
    seeds = {name: evaluation_seeds(name, episodes) for name in names}
    for chosen in seeds.values():
        check_evaluation_seeds(chosen)
    jobs = [
        FlyJob(row, "" if path is None else str(path), name, seed, duration_s)
        for name in names
        for row, path in models.items()
        for seed in seeds[name]
    ]
    started = time.monotonic()

    def progress(index: int, _outcome: EpisodeOutcome) -> None:
        if log is not None and (index + 1) % 100 == 0:
            log(f"flew {index + 1}/{len(jobs)} episodes ({time.monotonic() - started:.0f} s)")

    return run_jobs(fly_episode, jobs, workers, progress)


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def success_table(outcomes: Sequence[EpisodeOutcome]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{row: {condition: {episodes, successes, success_rate, ci95, crashed, ...}}}``."""
    groups: dict[str, dict[str, list[EpisodeOutcome]]] = {}
    for outcome in outcomes:
        groups.setdefault(outcome.model, {}).setdefault(outcome.variant, []).append(outcome)
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for model, per_variant in groups.items():
        for variant, group in per_variant.items():
            successes = sum(o.success for o in group)
            low, high = wilson_interval(successes, len(group))
            table.setdefault(model, {})[variant] = {
                "episodes": len(group),
                "successes": successes,
                "success_rate": round(successes / len(group), 4),
                "ci95": [round(low, 4), round(high, 4)],
                "crashed": sum(o.crashed for o in group),
                "median_final_distance_m": round(float(np.median([o.final_distance_m for o in group])), 3),
                "mean_time_to_reach_s": _mean([o.time_to_reach_s for o in group if o.time_to_reach_s is not None]),
                "mean_speed_command_mps": _mean([o.mean_speed_command_mps for o in group]),
                "mean_yaw_rate_command_rps": _mean([o.mean_yaw_rate_command_rps for o in group]),
                "command_activity": _mean([o.command_activity for o in group]),
                "failed_seeds": [o.seed for o in group if not o.success],
            }
    return table


def paired_tests(outcomes: Sequence[EpisodeOutcome], reference: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``{condition: {row: {only_reference, only_row, p_value}}}``: exact McNemar of each row against ``reference``."""
    by_key = {(o.model, o.variant, o.seed): o.success for o in outcomes}
    rows = sorted({o.model for o in outcomes} - {reference})
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for variant in dict.fromkeys(o.variant for o in outcomes):
        seeds = [o.seed for o in outcomes if o.model == reference and o.variant == variant]
        for row in rows:
            if not all((row, variant, s) in by_key for s in seeds):
                continue
            test = mcnemar([by_key[reference, variant, s] for s in seeds], [by_key[row, variant, s] for s in seeds])
            out.setdefault(variant, {})[row] = {
                "only_reference": test.only_a,
                "only_row": test.only_b,
                "p_value": round(test.p_value, 5),
            }
    return out


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


def step_cost(path: Path, demo: Demonstration, rounds: int = 3) -> dict[str, Any]:
    """Per-IMU-step cost of a bundle through the runner (frame encoding amortised), this machine.

    Replays ``demo`` through a fresh runner ``rounds`` times in this process; returns the
    median and spread of the microseconds per IMU step, and the parameter count of the
    bundle's graphs (their float initializers).
    """
    import onnx

    bundle = load_bundle(path)
    events = demo_events(demo)
    steps = sum(isinstance(e, ImuSample) for e in events)
    per_step = []
    for _ in range(rounds):
        runner = build_runner(bundle)
        started = time.perf_counter()
        for event in events:
            if isinstance(event, ImuSample):
                runner.on_imu(event)
            else:
                runner.on_image(event)
        per_step.append((time.perf_counter() - started) / steps * 1e6)
    parameters = 0
    for graph_path in sorted(Path(path).glob("*.onnx")):
        model = onnx.load(str(graph_path))
        parameters += sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    return {
        "us_per_step_median": round(float(np.median(per_step)), 1),
        "us_per_step_range": [round(min(per_step), 1), round(max(per_step), 1)],
        "graph_parameters": parameters,
    }


def _cell(cell: dict[str, Any]) -> str:
    low, high = cell["ci95"]
    return f"{100 * cell['success_rate']:.0f} % ({100 * low:.0f}–{100 * high:.0f})"


def markdown(report: dict[str, Any]) -> str:
    """The report's tables in Markdown."""
    variants: list[str] = report["variants"]
    trained: set[str] = set(report.get("training_conditions", []))
    header = ["row"] + [f"{v}{' (trained)' if v in trained else ''}" for v in variants]
    lines = [
        f"Closed-loop success (reached the {report['target_region_m']:g} m target region and stayed in it to the end "
        f"of the {report['duration_s']:g} s episode, at least {report['min_final_hold_s']:g} s, without a crash); "
        f"{report['episodes']} episodes per condition, the same episodes for every row, independent layouts per "
        "condition; 95 % Wilson interval in brackets. Bundles fly through Engine + PolicyRunner; the expert reads the "
        "true state.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for model, row in report["closed_loop"].items():
        kind = report["kinds"].get(model, "")
        cells = [f"{model} ({kind})" if kind else model]
        cells += [_cell(row[v]) if v in row else "–" for v in variants]
        lines.append("| " + " | ".join(cells) + " |")
    reference = report.get("reference")
    paired = report.get("paired", {})
    if reference and paired:
        rows = sorted({r for per in paired.values() for r in per})
        lines += [
            "",
            f"Paired exact McNemar tests against {reference} on the same episodes: p-value, and (episodes only "
            f"{reference} succeeded / only the row succeeded):",
            "",
            "| row | " + " | ".join(variants) + " |",
            "|" + "---|" * (len(variants) + 1),
        ]
        for row in rows:
            cells = [row]
            for v in variants:
                test = paired.get(v, {}).get(row)
                cells.append("–" if test is None else f"{test['p_value']:.3g} ({test['only_reference']}/{test['only_row']})")
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Other measures per condition (median final distance m / crashes / mean time to reach s of the successes):",
        "",
        "| row | " + " | ".join(variants) + " |",
        "|" + "---|" * (len(variants) + 1),
    ]
    for model, row in report["closed_loop"].items():
        cells = [model]
        for v in variants:
            c = row.get(v)
            if c is None:
                cells.append("–")
                continue
            t = "–" if c["mean_time_to_reach_s"] is None else f"{c['mean_time_to_reach_s']:.1f}"
            cells.append(f"{c['median_final_distance_m']:.2f} / {c['crashed']} / {t}")
        lines.append("| " + " | ".join(cells) + " |")
    costs = report.get("costs")
    if costs:
        lines += [
            "",
            "Size and cost (parameters of the bundle's graphs; µs per IMU step through the runner with frame encoding "
            "amortised, median and range over 3 replays of one held-out expert episode, this machine):",
            "",
            "| row | parameters | µs per step |",
            "|---|---|---|",
        ]
        for model, cost in costs.items():
            low, high = cost["us_per_step_range"]
            lines.append(f"| {model} | {cost['graph_parameters']} | {cost['us_per_step_median']:.0f} ({low:.0f}–{high:.0f}) |")
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
            lines.append(f"| {name} | " + " | ".join(f"{rmse[k]:.3f}" for k in (*OUTPUT_NAMES, "all")) + " |")
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
    variants: Sequence[str | ScenarioVariant] = PUBLISHED_CONDITIONS,
    episodes: int = 100,
    duration_s: float = 10.0,
    offline_episodes: int = 5,
    reference: str | None = None,
    with_expert: bool = True,
    training_conditions: Sequence[str] = (),
    workers: int | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """The flight-quality table, paired tests, costs and offline tracking of ``models`` (name -> bundle folder).

    Args:
        models: bundles to fly, by row name.
        variants: conditions to fly.
        episodes: episodes per condition (each row flies the same ones).
        duration_s: sim time of each episode.
        offline_episodes: held-out expert episodes for offline tracking and step cost (0: skip).
        reference: the row the paired tests compare every other row with (default: the first model).
        with_expert: add the privileged expert as a reference row.
        training_conditions: conditions the bundles were trained in (marked in the table).
        workers: processes (None: one per core).
        log: progress lines.

    Returns:
        The report (what :func:`markdown` renders and ``results/policy_eval.json`` holds).
    """
    if episodes < 1:
        raise SimError(f"evaluate_policies needs episodes >= 1, got {episodes!r}.")
    if not models:
        raise SimError("evaluate_policies needs at least one bundle.")
    names = [variant_from_name(v).value for v in variants]
    bundles = {name: load_bundle(path) for name, path in models.items()}
    rows: dict[str, Path | None] = dict(models)
    if with_expert:
        rows[EXPERT] = None
    reference = reference or next(iter(models))
    if reference not in rows:
        raise SimError(f"The reference row {reference!r} is not one of the rows {sorted(rows)}.")
    started = time.monotonic()
    log(f"flying {len(rows)} rows x {len(names)} conditions x {episodes} episodes = {len(rows) * len(names) * episodes} episodes")
    outcomes = closed_loop(rows, names, episodes, duration_s, workers, log)
    closed_s = time.monotonic() - started
    offline: dict[str, dict[str, float]] = {}
    costs: dict[str, dict[str, Any]] = {}
    if offline_episodes > 0:
        jobs = [(OFFLINE_FIRST_SEED + i, duration_s) for i in range(offline_episodes)]
        check_evaluation_seeds(seed for seed, _ in jobs)
        demos = run_jobs(record_expert, jobs, workers)
        offline = offline_tracking(models, demos)
        costs = {name: step_cost(path, demos[0]) for name, path in models.items()}
    return {
        "command": None,
        "variants": names,
        "descriptions": {name: variant_spec(name).description for name in names},
        "training_conditions": [variant_from_name(v).value for v in training_conditions],
        "episodes": episodes,
        "duration_s": duration_s,
        "target_region_m": TARGET_REGION_M,
        "min_final_hold_s": MIN_FINAL_HOLD_S,
        "reference": reference,
        "kinds": {name: bundle.manifest.model.kind for name, bundle in bundles.items()},
        "hashes": {name: bundle.digest for name, bundle in bundles.items()},
        "closed_loop": success_table(outcomes),
        "paired": paired_tests(outcomes, reference),
        "costs": costs,
        "offline_episodes": offline_episodes,
        "offline_first_seed": OFFLINE_FIRST_SEED,
        "offline": offline,
        "episode_outcomes": [o._asdict() for o in outcomes],
        "seconds": {"closed_loop": round(closed_s, 1), "total": round(time.monotonic() - started, 1)},
    }


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from several runs over the same conditions and episodes (e.g. a row added later).

    Episodes depend only on (condition, index), so a row flown in another run flies the same
    episodes; the tables and paired tests are recomputed from the merged per-episode outcomes.

    Raises:
        SimError: the runs differ in conditions, episodes, duration or success rule, or share a row.
    """
    if not reports:
        raise SimError("merge_reports needs at least one report.")
    first = reports[0]
    keys = ("episodes", "duration_s", "target_region_m", "min_final_hold_s")
    for other in reports[1:]:
        differ = [k for k in keys if other[k] != first[k]]
        if differ:
            raise SimError(f"Reports to merge must fly the same episodes; they differ in {differ}.")
        extra = set(other["variants"]) - set(first["variants"])
        if extra:
            raise SimError(f"A merged report may fly a subset of the first one's conditions, not {sorted(extra)}.")
        shared = set(other["closed_loop"]) & set(first["closed_loop"])
        if shared:
            raise SimError(f"Reports to merge must not share rows, both have {sorted(shared)}.")
    merged = dict(first)
    outcomes = [EpisodeOutcome(**o) for r in reports for o in r["episode_outcomes"]]
    for key in ("kinds", "hashes", "costs"):
        merged[key] = {k: v for r in reports for k, v in r.get(key, {}).items()}
    # Offline RMSEs are comparable only over the same held-out episodes.
    merged["offline"] = {
        k: v for r in reports if r["offline_episodes"] == first["offline_episodes"] for k, v in r.get("offline", {}).items()
    }
    merged["closed_loop"] = success_table(outcomes)
    merged["paired"] = paired_tests(outcomes, first["reference"])
    merged["episode_outcomes"] = [o._asdict() for o in outcomes]
    merged["command"] = [r.get("command") for r in reports]
    merged["seconds"] = {"closed_loop": round(sum(r["seconds"]["closed_loop"] for r in reports), 1),
                         "total": round(sum(r["seconds"]["total"] for r in reports), 1)}  # fmt: skip
    return merged


def save_report(report: dict[str, Any], out: Path) -> None:
    """Write the JSON report to ``out`` and its Markdown beside it (``.md``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report))

