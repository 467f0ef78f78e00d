"""``lnn-ros sim ...`` (demonstrations, expert, speed, bags, policy training and evaluation) and ``lnn-ros demo``.

The lead's CLI calls :func:`register` with its subparsers; each leaf sets ``func(args) -> int``.
Registering imports neither rotorpy nor torch (the handlers do), so ``lnn-ros`` runs without
the ``sim`` and ``train`` extras.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
from pathlib import Path

from lnn_ros.sim.errors import SimError
from lnn_ros.sim.record_bag import RECORD_SEED, STORAGES, TRAINING_RECORD_SEED
from lnn_ros.sim.world.config import ScenarioVariant, SimConfig, VehicleModel, variant_from_name


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sim`` command and its subcommands."""
    sim = subparsers.add_parser("sim", help="simulated drone: demonstrations, expert evaluation, speed")
    commands = sim.add_subparsers(dest="sim_command", required=True)

    demos = commands.add_parser("demos", help="record expert demonstrations as .npz files")
    demos.add_argument("--out", type=Path, required=True, help="output folder")
    demos.add_argument("--episodes", type=int, default=20, help="number of episodes (default 20)")
    demos.add_argument("--first-seed", type=int, default=0, help="seed of the first episode (default 0)")
    demos.add_argument("--workers", type=int, default=None, help="processes recording episodes (default: one per core)")
    _add_common(demos)
    demos.set_defaults(func=_run_demos)

    expert = commands.add_parser("expert", help="success rate of the privileged expert per variant")
    expert.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per variant (default 10)")
    expert.add_argument("--plot-dir", type=Path, default=None, help="also write one PNG per episode here")
    expert.add_argument("--workers", type=int, default=None, help="processes flying episodes (default: one per core)")
    _add_common(expert)
    expert.set_defaults(func=_run_expert)

    bench = commands.add_parser("bench", help="physics steps/s, render ms/frame, episode real-time factor")
    bench.add_argument("--vehicle", choices=[v.value for v in VehicleModel], default=VehicleModel.CRAZYFLIE.value)
    bench.set_defaults(func=_run_bench)

    record = commands.add_parser(
        "record-bag",
        help="fly the expert and write rosbag2 bags of /imu, /camera/image_raw and its /cmd_vel (no ROS needed)",
        description="Fly episodes with the privileged expert and write what `ros2 bag record` would hold next to "
        "sim_drone_node: /imu, /camera/image_raw and the expert's /cmd_vel (TwistStamped, stamped with the IMU sample "
        "it answers). Stamps are sim time; every message is logged when the node would receive it. One bag at OUT, or "
        "with --episodes N a folder OUT of N bags OUT/flight_<seed> (seeds --seed, --seed + 1, ...). Training bags use "
        "seeds 0..9999; --held-out bags use seeds from 10000 on (the evaluation range). --noisy records DART "
        "demonstrations: the vehicle flies the expert's command plus slowly varying noise while /cmd_vel records the "
        "clean expert command, the correction an autopilot would give (a simulator data-collection trick that teaches "
        "a policy to recover). Replay a policy on a bag with `lnn-ros replay BAG --model BUNDLE`.",
    )
    record.add_argument("out", type=Path, help="the bag folder to create (must not exist); with --episodes, the folder of bags")
    record.add_argument("--seed", type=int, default=None,
                        help=f"episode seed, the first one with --episodes (default {TRAINING_RECORD_SEED}; "
                        f"{RECORD_SEED} with --held-out)")
    record.add_argument("--episodes", type=int, default=None, metavar="N",
                        help="record N bags with consecutive seeds into OUT/flight_<seed>, in parallel")
    record.add_argument("--held-out", action="store_true",
                        help=f"bags kept out of training (replay, checks): seeds must be >= {RECORD_SEED}; "
                        f"without it seeds must be training seeds (0..{RECORD_SEED - 1})")
    record.add_argument("--noisy", action="store_true",
                        help="fly the expert plus noise and record the clean expert command as /cmd_vel (DART training data)")
    record.add_argument("--variant", default="nominal", help=f"scenario variant ({', '.join(v.value for v in ScenarioVariant)})")
    record.add_argument("--duration", type=float, default=SimConfig().duration_s,
                        help=f"episode length in seconds (default {SimConfig().duration_s:g})")
    record.add_argument("--storage", choices=STORAGES, default=STORAGES[0], help=f"rosbag2 storage (default {STORAGES[0]})")
    record.add_argument("--workers", type=int, default=None, help="with --episodes: processes recording bags (default: one per core)")
    record.set_defaults(func=_run_record_bag)

    check = commands.add_parser(
        "check-bundle",
        help="fly a bundle in the simulator on held-out evaluation seeds; strict success rate with its 95 %% interval",
        description="Fly BUNDLE (through the runtime's PolicyRunner, as lnn_node runs it) on N evaluation seeds of a "
        "condition, disjoint from every training seed, and print the strict success rate (reach the target region and "
        "hold it to the end, no crash) with its 95 % Wilson interval. With --bags (bags from 'lnn-ros sim record-bag') "
        "the condition is theirs and their seeds are checked to be training seeds.",
    )
    check.add_argument("bundle", type=Path, help="bundle folder")
    check.add_argument("--episodes", type=int, default=20, help="episodes to fly (default 20)")
    check.add_argument("--condition", default=None,
                       help=f"scenario variant ({', '.join(v.value for v in ScenarioVariant)}; default: the bags', else nominal)")
    check.add_argument("--bags", type=Path, nargs="+", default=None, metavar="BAG",
                       help="the simulator bags the bundle was trained on (bag folders or folders of them)")
    check.add_argument("--duration", type=float, default=SimConfig().duration_s,
                       help=f"episode length in seconds (default {SimConfig().duration_s:g})")
    check.add_argument("--min-success", type=float, default=None, metavar="RATE",
                       help="exit 1 when the success rate is below RATE (0..1), e.g. in CI")
    check.add_argument("--workers", type=int, default=None, help="processes flying episodes (default: one per core)")
    check.add_argument("--json", type=Path, default=None, metavar="OUT",
                       help="also write the result with every episode's outcome (seed, success, crash, final distance) "
                       "as JSON, e.g. for a paired comparison of two bundles on the same seeds")
    check.add_argument("--compare", type=Path, default=None, metavar="JSON",
                       help="another bundle's --json result on the same condition and episodes: print an exact McNemar "
                       "test on the paired episodes (and add it to --json)")
    check.set_defaults(func=_run_check_bundle)

    # The drone-policy recipe (train-policy, eval-policies) is an application beside the library:
    # it registers its subcommands here when it is installed (lnn_ros_examples).
    try:
        examples = importlib.import_module("lnn_ros_examples.drone_policy.cli")
    except ModuleNotFoundError as exc:
        if exc.name is None or not "lnn_ros_examples.drone_policy.cli".startswith(exc.name):
            raise
    else:
        examples.register(commands, variants=_variants)

    demo = subparsers.add_parser(
        "demo",
        help="fly the simulated drone with the shipped CfC policy through lnn_node over ROS 2; report latency and success",
        description="Start sim_drone_node and lnn_node as two processes on a ROS domain of their own (localhost only), "
        "fly one episode paced at real time, print latency percentiles, missed deadlines and the flight result, "
        "and write demo.json and demo.png.",
    )
    demo.add_argument("--model", type=Path, default=None, help="bundle folder (default: the shipped models/drone_cfc)")
    demo.add_argument("--seed", type=int, default=None, help="simulator seed (default 10000, not in the training data)")
    demo.add_argument("--variant", default="nominal", help=f"scenario variant ({', '.join(v.value for v in ScenarioVariant)})")
    demo.add_argument("--duration", type=float, default=12.0, help="episode length in seconds (default 12)")
    demo.add_argument(
        "--out", type=Path, default=Path("runs/demo"),
        help="output folder (default runs/demo, git-ignored; `--out results/demo` regenerates the committed figures)",
    )
    demo.add_argument("--deadline-ms", type=float, default=5.0, help="control deadline in ms (default 5, one IMU period)")
    demo.add_argument(
        "--transports", default=None, choices=("DEFAULT", "SHM", "UDPv4", "LARGE_DATA"),
        help="FASTDDS_BUILTIN_TRANSPORTS for both nodes (default: the environment's, else Fast DDS's DEFAULT)",
    )
    demo.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: random in 1..100)")
    demo.set_defaults(func=_run_demo)
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
    from lnn_ros.sim.expert.demonstrations import generate_demonstrations
    from lnn_ros.sim.world.episode import EpisodeResult

    def report(index: int, result: EpisodeResult) -> None:
        print(
            f"episode {index + 1}/{args.episodes}: seed {result.seed} {result.variant.value} "
            f"reached={result.reached} final={result.final_distance_m:.2f} m",
            flush=True,
        )

    try:
        paths = generate_demonstrations(
            args.out, args.episodes, _config(args), _variants(args.variants), args.first_seed, progress=report,
            workers=args.workers,
        )
    except SimError as err:
        print(f"error: {err}")
        return 1
    print(f"wrote {len(paths)} demonstrations to {args.out}")
    return 0


def _run_expert(args: argparse.Namespace) -> int:
    from lnn_ros.sim.evaluate import evaluate, format_stats
    from lnn_ros.sim.plot import plot_episode
    from lnn_ros.sim.world.episode import EpisodeResult

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

    try:
        stats = evaluate(variants=variants, seeds=range(args.seeds), config=config, on_result=plot, workers=args.workers)
    except SimError as err:
        print(f"error: {err}")
        return 1
    print(format_stats(stats))
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    measure_speed = importlib.import_module("lnn_ros_benchmarks.sim").measure_speed

    print(measure_speed(_config(args)).describe())
    return 0


def _run_record_bag(args: argparse.Namespace) -> int:
    from lnn_ros.sim.record_bag import RecordBagConfig, RecordBagResult, check_bag_seeds, record_bags, record_expert_bag

    seed = args.seed if args.seed is not None else (RECORD_SEED if args.held_out else TRAINING_RECORD_SEED)
    config = RecordBagConfig(seed=seed, variant=args.variant, duration_s=args.duration, storage=args.storage, noisy=args.noisy)
    pilot = "expert + noise (labels: clean expert)" if args.noisy else "expert"

    def describe(result: RecordBagResult, seed: int) -> str:
        counts = ", ".join(f"{topic} {count}" for topic, count in result.counts.items())
        return (
            f"wrote {result.path} ({args.storage}): {result.duration_s:.2f} s of seed {seed} {args.variant}, {pilot}; "
            f"{counts}; reached={result.reached}, final distance {result.final_distance_m:.2f} m"
        )

    if args.episodes is None:
        check_bag_seeds(seed, 1, args.held_out)
        print(describe(record_expert_bag(args.out, config), seed))
        return 0
    if args.workers is not None and args.workers < 1:
        raise SimError(f"--workers must be >= 1, got {args.workers!r}.")
    reached = 0

    def report(index: int, result: RecordBagResult) -> None:
        nonlocal reached
        reached += result.reached
        print(describe(result, seed + index), flush=True)

    results = record_bags(args.out, args.episodes, config, held_out=args.held_out, workers=args.workers, on_result=report)
    print(f"recorded {len(results)} bags (seeds {seed}..{seed + len(results) - 1}) in {args.out}; {reached} reached the target")
    return 0


def _run_check_bundle(args: argparse.Namespace) -> int:
    from lnn_ros.sim.bundle_check import bag_episodes, check_bundle

    condition = args.condition
    seeds: list[int] = []
    if args.bags is not None:
        episodes = bag_episodes(args.bags)
        seeds = [int(e["seed"]) for e in episodes]
        variants = sorted({str(e["variant"]) for e in episodes})
        if condition is None:
            if len(variants) > 1:
                raise SimError(f"The bags fly several conditions ({', '.join(variants)}); pick one with --condition.")
            condition = variants[0]
        print(f"bags     {len(episodes)} simulator episode(s), {', '.join(variants)}, training seeds {min(seeds)}..{max(seeds)}")
    result = check_bundle(
        args.bundle, condition or "nominal", args.episodes, args.duration, args.workers, training_seeds=seeds
    )
    print(f"seeds    {len(result.seeds)} evaluation seeds of {result.condition} ({result.seeds[0]}, ...), none trained on")
    print(result.summary())
    report = {"bundle": str(args.bundle), "duration_s": args.duration, **result.to_dict()}
    if args.compare is not None:
        report["compared_with"] = _compare_checks(report, args.compare)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote    {args.json}")
    if args.min_success is not None and result.successes / len(result.flights) < args.min_success:
        print(f"FAILED   success rate below --min-success {args.min_success:g}")
        return 1
    return 0


def _compare_checks(report: dict, other_path: Path) -> dict:
    """Exact McNemar test of this check against another check's JSON on the same episodes; prints it."""
    from lnn_ros.sim.stats import mcnemar

    try:
        other = json.loads(other_path.read_text())
        other_seeds = [int(e["seed"]) for e in other["per_episode"]]
        other_success = [bool(e["success"]) for e in other["per_episode"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SimError(f"--compare {str(other_path)!r} is not a 'check-bundle --json' result: {err}.") from None
    seeds = [e["seed"] for e in report["per_episode"]]
    if other_seeds != seeds or other.get("duration_s") != report["duration_s"]:
        raise SimError(
            f"--compare {str(other_path)!r} flew other episodes ({other.get('condition')!r}, {len(other_seeds)} seeds, "
            f"{other.get('duration_s')} s); check both with the same --condition, --episodes and --duration."
        )
    test = mcnemar([bool(e["success"]) for e in report["per_episode"]], other_success)
    print(
        f"paired   vs {other.get('bundle')}: {sum(other_success)}/{len(seeds)} there; only this one succeeded in "
        f"{test.only_a}, only that one in {test.only_b}; exact McNemar p = {test.p_value:.3g}"
    )
    return {"bundle": other.get("bundle"), "successes": sum(other_success), "wilson_95": other.get("wilson_95"),
            "only_this": test.only_a, "only_that": test.only_b, "mcnemar_p": test.p_value}


def _run_demo(args: argparse.Namespace) -> int:
    from lnn_ros.sim.demo import DEMO_SEED, DemoConfig, run_demo, shipped_model

    config = DemoConfig(
        model=args.model if args.model is not None else shipped_model("drone_cfc"),
        seed=DEMO_SEED if args.seed is None else args.seed,
        variant=args.variant,
        duration_s=args.duration,
        out_dir=args.out,
        deadline_ms=args.deadline_ms,
        transports=args.transports,
        domain_id=args.domain_id,
    )
    result = run_demo(config, log=lambda line: print(line, flush=True))
    return 0 if result.completed else 1
