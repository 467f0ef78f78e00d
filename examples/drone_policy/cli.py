"""``lnn-ros sim train-policy`` and ``lnn-ros sim eval-policies``: the drone-policy recipe's commands.

:mod:`lnn_ros.sim.cli` calls :func:`register` when this package is installed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from lnn_ros.sim.world.config import ScenarioVariant
from lnn_ros_examples.drone_policy import recipe as policy_recipe


def register(commands: argparse._SubParsersAction, variants: Callable[[str], list[ScenarioVariant]]) -> None:
    """Add ``train-policy`` and ``eval-policies`` to the ``sim`` subcommands."""

    train = commands.add_parser(
        "train-policy",
        help="regenerate models/drone_{cfc,lstm,mlp}: record demonstrations, train, export (same as python -m lnn_ros_examples.drone_policy.recipe)",
        description=policy_recipe.__doc__.splitlines()[0],
    )
    policy_recipe.add_arguments(train)
    train.set_defaults(func=policy_recipe.run_from_args)

    evaluate = commands.add_parser(
        "eval-policies",
        help="flight-quality table of drone policy bundles: strict success with intervals, paired tests, costs (writes results/policy_eval.*)",
    )
    evaluate.add_argument(
        "--models", type=Path, nargs="+", default=None,
        help="bundle folders (default: every shipped models/drone_<kind>)",
    )
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes per condition; every row flies the same ones (default 100)")
    evaluate.add_argument(
        "--variants", default="published",
        help="comma-separated conditions, 'published' (the table in docs/flight-quality.md) or 'all' (default published)",
    )
    evaluate.add_argument("--duration", type=float, default=10.0, help="seconds per episode (default 10)")
    evaluate.add_argument("--reference", default=None, help="row the paired tests compare with (default: the first bundle)")
    evaluate.add_argument("--no-expert", action="store_true", help="leave out the privileged expert's reference row")
    evaluate.add_argument("--offline-episodes", type=int, default=5, help="held-out expert episodes for offline tracking and step cost (default 5)")
    evaluate.add_argument("--workers", type=int, default=None, help="parallel processes (default: one per core)")
    evaluate.add_argument("--out", type=Path, default=Path("results/policy_eval.json"), help="JSON report; the Markdown table goes beside it (.md)")
    evaluate.add_argument(
        "--merge", type=Path, nargs="+", default=None, metavar="REPORT",
        help="fly nothing: merge reports of runs over the same conditions and episodes (rows flown separately) into --out",
    )
    evaluate.set_defaults(func=lambda args: _run_eval_policies(args, variants))


def _training_conditions(path: Path) -> list[str]:
    """The conditions a recipe bundle was trained in (its training.json), or [] when unknown."""
    import json

    try:
        report = json.loads((path / "training.json").read_text())
        return [str(v) for v in report["data"]["variants"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _run_eval_policies(args: argparse.Namespace, variants: Callable[[str], list[ScenarioVariant]]) -> int:
    import sys

    from lnn_ros.sim.demo import shipped_model
    from lnn_ros.sim.errors import SimError
    from lnn_ros_examples.drone_policy.evaluate import (
        PUBLISHED_CONDITIONS,
        evaluate_policies,
        markdown,
        merge_reports,
        save_report,
    )

    if args.merge:
        import json

        try:
            report = merge_reports([json.loads(path.read_text()) for path in args.merge])
        except (OSError, ValueError, KeyError, SimError) as error:
            print(f"error: cannot merge {[str(p) for p in args.merge]}: {error}")
            return 1
        save_report(report, args.out)
        print(markdown(report))
        return 0
    if args.models is None:
        paths = [shipped_model(f"drone_{kind}") for kind in policy_recipe.SHIPPED_KINDS]
    else:
        paths = list(args.models)
    models = {path.resolve().name: path for path in paths}
    if len(models) != len(paths):
        print(f"error: bundle folders must have distinct names, got {[str(p) for p in paths]}.")
        return 1
    chosen = list(PUBLISHED_CONDITIONS) if args.variants == "published" else variants(args.variants)
    try:
        report = evaluate_policies(
            models,
            variants=chosen,
            episodes=args.episodes,
            duration_s=args.duration,
            offline_episodes=args.offline_episodes,
            reference=args.reference,
            with_expert=not args.no_expert,
            training_conditions=_training_conditions(paths[0]),
            workers=args.workers,
            log=lambda line: print(line, flush=True),
        )
    except SimError as error:
        print(f"error: {error}")
        return 1
    report["command"] = "lnn-ros " + " ".join(sys.argv[1:])
    save_report(report, args.out)
    print(markdown(report))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} ({report['seconds']['total']:.0f} s)")
    return 0
