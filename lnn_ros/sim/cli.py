"""``lnn-ros sim ...``: record demonstrations, evaluate the expert, measure speed, plot an episode.

The lead's CLI calls :func:`add_parser` with its subparsers; each leaf sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from lnn_ros.sim.config import ScenarioVariant, SimConfig, VehicleModel, variant_from_name
from lnn_ros.sim.errors import SimError


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sim`` command and its subcommands."""
    sim = subparsers.add_parser("sim", help="simulated drone: demonstrations, expert evaluation, speed")
    commands = sim.add_subparsers(dest="sim_command", required=True)

    demos = commands.add_parser("demos", help="record expert demonstrations as .npz files")
    demos.add_argument("--out", type=Path, required=True, help="output folder")
    demos.add_argument("--episodes", type=int, default=20, help="number of episodes (default 20)")
    demos.add_argument("--first-seed", type=int, default=0, help="seed of the first episode (default 0)")
    _add_common(demos)
    demos.set_defaults(func=_run_demos)

    expert = commands.add_parser("expert", help="success rate of the privileged expert per variant")
    expert.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per variant (default 10)")
    expert.add_argument("--plot-dir", type=Path, default=None, help="also write one PNG per episode here")
    _add_common(expert)
    expert.set_defaults(func=_run_expert)

    bench = commands.add_parser("bench", help="physics steps/s, render ms/frame, episode real-time factor")
    bench.add_argument("--vehicle", choices=[v.value for v in VehicleModel], default=VehicleModel.CRAZYFLIE.value)
    bench.set_defaults(func=_run_bench)
    return sim


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--variants",
        default="nominal",
        help=f"comma-separated variants or 'all' (valid: {', '.join(v.value for v in ScenarioVariant)})",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="episode length in seconds (default 10)")
    parser.add_argument("--vehicle", choices=[v.value for v in VehicleModel], default=VehicleModel.CRAZYFLIE.value)


def _variants(text: str) -> list[ScenarioVariant]:
    if text.strip().lower() == "all":
        return list(ScenarioVariant)
    return [variant_from_name(name) for name in text.split(",") if name.strip()]


def _config(args: argparse.Namespace) -> SimConfig:
    changes: dict = {"vehicle": VehicleModel(args.vehicle)}
    if hasattr(args, "duration"):
        changes["duration_s"] = args.duration
    return dataclasses.replace(SimConfig(), **changes)


def _run_demos(args: argparse.Namespace) -> int:
    from lnn_ros.sim.demos import generate_demonstrations
    from lnn_ros.sim.episode import EpisodeResult

    def report(index: int, result: EpisodeResult) -> None:
        print(
            f"episode {index + 1}/{args.episodes}: seed {result.seed} {result.variant.value} "
            f"reached={result.reached} final={result.final_distance_m:.2f} m",
            flush=True,
        )

    try:
        paths = generate_demonstrations(
            args.out, args.episodes, _config(args), _variants(args.variants), args.first_seed, progress=report
        )
    except SimError as err:
        print(f"error: {err}")
        return 1
    print(f"wrote {len(paths)} demonstrations to {args.out}")
    return 0


def _run_expert(args: argparse.Namespace) -> int:
    from lnn_ros.sim.episode import EpisodeResult
    from lnn_ros.sim.evaluate import evaluate, format_stats
    from lnn_ros.sim.plot import plot_episode

    try:
        config = _config(args)
        variants = _variants(args.variants)
    except SimError as err:
        print(f"error: {err}")
        return 1

    def plot(result: EpisodeResult) -> None:
        if args.plot_dir is not None:
            path = args.plot_dir / f"{result.variant.value}_{result.seed:04d}.png"
            plot_episode(result, path, config.success_radius_m)

    print(format_stats(evaluate(variants=variants, seeds=range(args.seeds), config=config, on_result=plot)))
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    from lnn_ros.sim.bench import measure_speed

    print(measure_speed(_config(args)).describe())
    return 0
