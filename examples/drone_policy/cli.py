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
        help="closed-loop success per variant and offline tracking of drone policy bundles (writes results/policy_eval.*)",
    )
    evaluate.add_argument(
        "--models", type=Path, nargs="+", default=None,
        help="bundle folders (default: models/drone_cfc, models/drone_lstm, models/drone_mlp)",
    )
    evaluate.add_argument("--seeds", type=int, default=20, help="episodes per variant and model (default 20)")
    evaluate.add_argument("--variants", default="all", help="comma-separated variants or 'all' (default all)")
    evaluate.add_argument("--duration", type=float, default=10.0, help="seconds per episode (default 10)")
    evaluate.add_argument("--offline-episodes", type=int, default=5, help="held-out expert episodes for offline tracking (default 5)")
    evaluate.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    evaluate.add_argument("--out", type=Path, default=Path("results/policy_eval.json"), help="JSON report; the Markdown table goes beside it (.md)")
    evaluate.set_defaults(func=lambda args: _run_eval_policies(args, variants))



def _run_eval_policies(args: argparse.Namespace, variants: Callable[[str], list[ScenarioVariant]]) -> int:
    import json
    import sys

    from lnn_ros.sim.demo import shipped_model
    from lnn_ros_examples.drone_policy.evaluate import evaluate_policies, markdown

    if args.models is None:
        paths = [shipped_model(f"drone_{kind}") for kind in ("cfc", "lstm", "mlp")]
    else:
        paths = list(args.models)
    models = {path.resolve().name: path for path in paths}
    if len(models) != len(paths):
        print(f"error: bundle folders must have distinct names, got {[str(p) for p in paths]}.")
        return 1
    report = evaluate_policies(
        models,
        variants=variants(args.variants),
        seeds=args.seeds,
        duration_s=args.duration,
        offline_episodes=args.offline_episodes,
        workers=args.workers,
        log=lambda line: print(line, flush=True),
    )
    report["command"] = "lnn-ros " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} ({report['seconds']['total']:.0f} s)")
    return 0
