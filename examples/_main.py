"""The shared ``main()`` of the examples run as ``python -m``: parse the recipe's arguments and run it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from lnn_ros.errors import LnnRosError


def run_recipe(
    name: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], object],
    run_from_args: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
) -> int:
    """Build the parser, run the recipe, and turn an LnnRosError into one line and exit code 1."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}", description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except LnnRosError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
