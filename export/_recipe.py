"""The shared ``main()`` of the scripts in export/: parse the recipe's arguments and run it.

Each script regenerates a bundle in models/ from a checkout, without installing lnn_ros.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from lnn_ros.errors import LnnRosError  # noqa: E402


def run_recipe(
    name: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], object],
    run_from_args: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
) -> int:
    """Build the parser, run the recipe, and turn an LnnRosError into one line and exit code 1."""
    parser = argparse.ArgumentParser(prog=name, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except LnnRosError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
