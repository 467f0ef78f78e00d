"""Regenerate the shipped drone policies from scratch: demonstrations -> CfC / LSTM / MLP -> bundles.

Steps (``python -m lnn_ros_examples.drone_policy.recipe`` = ``lnn-ros sim train-policy``):

1. Record demonstrations, seeded, cycling through the training conditions
   (:data:`TRAINING_CONDITIONS`: nominal, far and off-heading targets, occlusions, camera
   dropouts, changing sensor rates, camera latency): ``expert_episodes`` flown by the expert
   (seeds 0, 1, ...) and ``noisy_episodes`` flown by the expert with injected noise
   (:class:`~lnn_ros.sim.expert.noisy.NoisyExpert`, seeds 5000, 5001, ...), all labelled with
   the clean expert command. Episodes run in parallel worker processes.
2. Build the fused training sequences (:mod:`~lnn_ros_examples.drone_policy.data`); every
   ``validation_every``-th episode of each kind is held out for early stopping.
3. Train one :class:`~lnn_ros_examples.drone_policy.model.DronePolicy` per cell kind on the *same* data with the
   *same* settings (:data:`~lnn_ros_examples.drone_policy.train.DEFAULT_TRAIN`, ``epochs``), in parallel
   worker processes (one torch thread each).
4. Export each into ``models_dir/drone_<kind>`` (encoder + step graph, manifest; parity with
   PyTorch checked by the exporter) with a ``training.json`` beside it (data, settings,
   losses, parity, time).

Seeds 0..9999 are training data; :mod:`lnn_ros.sim.seeds` checks that they lie in the training
range and that evaluation seeds never do (see :mod:`~lnn_ros_examples.drone_policy.evaluate`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from lnn_ros.sim.errors import SimError
from lnn_ros.sim.seeds import check_training_seeds
from lnn_ros.sim.world.config import SimConfig, variant_from_name

EXPERT_FIRST_SEED = 0
NOISY_FIRST_SEED = 5_000
LAST_TRAINING_SEED = 9_999
KINDS = ("cfc", "wired_cfc", "lstm", "gru", "stack_mlp", "mlp")
SHIPPED_KINDS = ("cfc", "lstm", "gru", "stack_mlp")  # wired_cfc did not learn the task: docs/flight-quality.md
TRAINING_CONDITIONS = ("nominal", "far", "off_heading", "occlusion", "dropout", "rates", "delay")
DESCRIPTIONS = {
    "cfc": "Liquid (CfC) drone policy: CNN image encoder + CfC cell on IMU and camera; flies to the red target.",
    "wired_cfc": "Liquid policy with a sparse NCP wiring: the same CNN encoder + a wired CfC (AutoNCP), trained like drone_cfc.",
    "lstm": "Baseline: the same CNN encoder + a time-aware LSTM (dt as an input), trained the same way as drone_cfc.",
    "gru": "Baseline: the same CNN encoder + a time-aware GRU (dt as an input), trained the same way as drone_cfc.",
    "stack_mlp": "Baseline: the same CNN encoder + a memoryless MLP on a stack of the last 4 frame embeddings, IMU and dt.",
    "mlp": "Baseline: the same CNN encoder + a memoryless MLP on [features, dt], trained the same way as drone_cfc.",
}
Log = Callable[[str], None]


@dataclass(frozen=True)
class RecipeConfig:
    """Settings of a full regeneration.

    Attributes:
        models_dir: bundles go to ``models_dir/drone_<kind>``.
        work_dir: demonstrations are written (and reused) under ``work_dir/demos``.
        kinds: which policies to train (see :data:`KINDS`).
        variants: training conditions, cycled through episode by episode.
        expert_episodes: clean expert demonstrations.
        noisy_episodes: noise-injected demonstrations (DART).
        duration_s: sim time of each demonstration.
        validation_every: every n-th episode of each kind is held out for early stopping.
        epochs: maximum training epochs.
        units: cell width.
        workers: parallel processes for recording and training.
        seed: torch seed of initialisation and shuffling.
    """

    models_dir: Path = Path("models")
    work_dir: Path = Path("build/drone_policy")
    kinds: tuple[str, ...] = SHIPPED_KINDS
    variants: tuple[str, ...] = TRAINING_CONDITIONS
    expert_episodes: int = 70
    noisy_episodes: int = 140
    duration_s: float = 10.0
    validation_every: int = 10
    epochs: int = 25
    units: int = 32
    workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise SimError(f"RecipeConfig.kinds must be a non-empty subset of {list(KINDS)}, got {self.kinds!r}.")
        if self.expert_episodes < 0 or self.noisy_episodes < 0 or self.expert_episodes + self.noisy_episodes < 2:
            raise SimError(
                f"RecipeConfig needs at least 2 episodes in total, got expert_episodes={self.expert_episodes!r} "
                f"and noisy_episodes={self.noisy_episodes!r}."
            )
        if max(self.expert_episodes, self.noisy_episodes) > LAST_TRAINING_SEED - NOISY_FIRST_SEED + 1:
            raise SimError(f"RecipeConfig allows at most {LAST_TRAINING_SEED - NOISY_FIRST_SEED + 1} episodes of each kind.")
        for name in ("validation_every", "epochs", "units", "workers"):
            if getattr(self, name) < 1:
                raise SimError(f"RecipeConfig.{name} must be >= 1, got {getattr(self, name)!r}.")
        if not self.variants:
            raise SimError("RecipeConfig.variants must name at least one training condition.")
        for name in self.variants:
            variant_from_name(name)
        if self.validation_every < 2:
            raise SimError(f"RecipeConfig.validation_every must be >= 2 to leave training data, got {self.validation_every!r}.")

    @property
    def demo_config(self) -> SimConfig:
        return dataclasses.replace(SimConfig(), duration_s=self.duration_s)


class EpisodeJob(NamedTuple):
    """One demonstration to record."""

    path: Path
    seed: int
    noisy: bool
    duration_s: float
    variant: str


def demo_jobs(config: RecipeConfig) -> list[EpisodeJob]:
    """Every demonstration of the recipe, expert ones first; episode i of each kind flies ``variants[i % n]``.

    Raises:
        SimError: a seed outside the training range (:func:`lnn_ros.sim.seeds.check_training_seeds`).
    """
    demos = config.work_dir / "demos"
    jobs = []
    for noisy, first, count in ((False, EXPERT_FIRST_SEED, config.expert_episodes), (True, NOISY_FIRST_SEED, config.noisy_episodes)):
        for i, seed in enumerate(range(first, first + count)):
            variant = variant_from_name(config.variants[i % len(config.variants)]).value
            folder = demos / ("noisy" if noisy else "expert")
            jobs.append(EpisodeJob(folder / f"{variant}_{seed:06d}.npz", seed, noisy, config.duration_s, variant))
    check_training_seeds((job.seed for job in jobs), "demonstration")
    return jobs


def record_episode(job: EpisodeJob) -> tuple[int, bool]:
    """Record one demonstration (worker process); returns (seed, reached)."""
    from lnn_ros.sim.expert.demonstrations import record_demonstration, save_demonstration
    from lnn_ros.sim.expert.noisy import NoisyExpert

    config = dataclasses.replace(SimConfig(), duration_s=job.duration_s)
    pilot = NoisyExpert() if job.noisy else None
    demo, result = record_demonstration(
        config, job.variant, job.seed, pilot_factory=pilot, expert_share=0.0 if job.noisy else 1.0
    )
    save_demonstration(job.path, demo)
    return job.seed, result.reached


def record_demos(config: RecipeConfig, log: Log = print) -> list[EpisodeJob]:
    """Record the recipe's demonstrations that are not on disk yet (in parallel)."""
    jobs = demo_jobs(config)
    todo = [job for job in jobs if not job.path.is_file()]
    if len(todo) < len(jobs):
        log(f"reusing {len(jobs) - len(todo)} demonstrations already in {config.work_dir / 'demos'}")
    started = time.monotonic()
    done = 0
    with _pool(config.workers) as pool:
        for _seed, _reached in pool.map(record_episode, todo):
            done += 1
            if done % 10 == 0 or done == len(todo):
                log(f"recorded {done}/{len(todo)} demonstrations ({time.monotonic() - started:.0f} s)")
    return jobs


def split_jobs(jobs: Sequence[EpisodeJob], every: int) -> tuple[list[EpisodeJob], list[EpisodeJob]]:
    """(training, validation): every ``every``-th episode of each kind (expert / noisy) is validation."""
    train, validation = [], []
    for noisy in (False, True):
        for i, job in enumerate(j for j in jobs if j.noisy is noisy):
            (validation if i % every == every - 1 else train).append(job)
    return train, validation


def train_one(kind: str, config: RecipeConfig, train_paths: list[Path], val_paths: list[Path]) -> dict[str, Any]:
    """Train and export one policy (worker process); returns its training report."""
    from lnn_ros.sim.expert.demonstrations import load_demonstration
    from lnn_ros_examples.drone_policy.data import build_dataset, training_camera
    from lnn_ros_examples.drone_policy.model import PolicyArch
    from lnn_ros_examples.drone_policy.train import DT_RULE, export_policy, new_policy, train_config_with, train_policy

    started = time.monotonic()
    arch = PolicyArch(cell_kind=kind, units=config.units)
    camera = training_camera(arch.image_width, arch.image_height)
    train = build_dataset([load_demonstration(p) for p in train_paths], DT_RULE, camera)
    validation = build_dataset([load_demonstration(p) for p in val_paths], DT_RULE, camera) if val_paths else None
    train_config = train_config_with(epochs=config.epochs, seed=config.seed, progress=False)
    policy = new_policy(arch, train, seed=config.seed)
    trained = train_policy(policy, train, validation, train_config)
    name = f"drone_{kind}"
    out = config.models_dir / name
    export = export_policy(trained.policy, out, name=name, description=DESCRIPTIONS[kind])
    seconds = time.monotonic() - started
    report = {
        "name": name,
        "regenerate": "python -m lnn_ros_examples.drone_policy.recipe  (or: lnn-ros sim train-policy)",
        "arch": arch.to_dict(),
        "parameters": sum(p.numel() for p in trained.policy.parameters()),
        "data": {
            "variants": list(config.variants),
            "expert_episodes": config.expert_episodes,
            "noisy_episodes": config.noisy_episodes,
            "episode_duration_s": config.duration_s,
            "train_episodes": len(train_paths),
            "validation_episodes": len(val_paths),
            "train_steps": train.steps,
            "train_frames": len(train.frames),
        },
        "train_config": train_config.to_dict(),
        "train_result": trained.result.to_dict(),
        "parity": export.parity.errors,
        "engine_error": export.engine_error,
        "seconds": round(seconds, 1),
    }
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def regenerate(config: RecipeConfig, log: Log = print) -> list[dict[str, Any]]:
    """Record demonstrations, train and export every policy of ``config.kinds``; returns the training reports."""
    started = time.monotonic()
    jobs = record_demos(config, log)
    log(f"demonstrations ready ({time.monotonic() - started:.0f} s)")
    train_jobs, val_jobs = split_jobs(jobs, config.validation_every)
    train_paths = [j.path for j in train_jobs]
    val_paths = [j.path for j in val_jobs]
    reports = []
    with _pool(min(config.workers, len(config.kinds))) as pool:
        futures = [pool.submit(train_one, kind, config, train_paths, val_paths) for kind in config.kinds]
        for future in futures:
            report = future.result()
            result = report["train_result"]
            log(
                f"{report['name']}: {result['epochs_run']} epochs, best validation MSE {result['best_loss']:.5f} "
                f"(epoch {result['best_epoch'] + 1}), {report['parameters']} parameters, {report['seconds']:.0f} s -> "
                f"{config.models_dir / report['name']}"
            )
            reports.append(report)
    log(f"regenerated {', '.join(r['name'] for r in reports)} in {time.monotonic() - started:.0f} s")
    return reports


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes started fresh (spawn): no state forked from a process that ran torch."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``lnn-ros sim train-policy`` and ``python -m lnn_ros_examples.drone_policy.recipe``."""
    defaults = RecipeConfig()
    parser.add_argument("--models-dir", type=Path, default=defaults.models_dir, help="bundles go to MODELS_DIR/drone_<kind> (default models)")
    parser.add_argument(
        "--work-dir", type=Path, default=defaults.work_dir,
        help="demonstrations are written here and reused on the next run (default build/drone_policy)",
    )
    parser.add_argument(
        "--kinds", default=",".join(defaults.kinds), help=f"comma-separated cell kinds of {list(KINDS)} (default {','.join(defaults.kinds)})"
    )
    parser.add_argument(
        "--variants", default=",".join(defaults.variants),
        help=f"training conditions, cycled through (default {','.join(defaults.variants)})",
    )
    parser.add_argument("--expert-episodes", type=int, default=defaults.expert_episodes, help=f"clean expert demonstrations (default {defaults.expert_episodes})")
    parser.add_argument("--noisy-episodes", type=int, default=defaults.noisy_episodes, help=f"noise-injected demonstrations (default {defaults.noisy_episodes})")
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="seconds per demonstration (default 10)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="maximum training epochs (default 25)")
    parser.add_argument("--units", type=int, default=defaults.units, help="cell width (default 32)")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="parallel processes (default 2)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="torch seed (default 0)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run :func:`regenerate` with the parsed options."""
    config = RecipeConfig(
        models_dir=args.models_dir,
        work_dir=args.work_dir,
        kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()),
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        expert_episodes=args.expert_episodes,
        noisy_episodes=args.noisy_episodes,
        duration_s=args.duration,
        epochs=args.epochs,
        units=args.units,
        workers=args.workers,
        seed=args.seed,
    )
    regenerate(config, log=lambda line: print(line, flush=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lnn_ros_examples.drone_policy.recipe``."""
    from lnn_ros_examples._main import run_recipe

    return run_recipe("lnn_ros_examples.drone_policy.recipe", (__doc__ or "").splitlines()[0], add_arguments, run_from_args, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
