"""``lnn-ros``: one command-line entry point; each subsystem registers its own subcommands.

Subsystems expose ``register(subparsers)`` and import their heavy dependencies (torch,
rosbags, rclpy, matplotlib) only inside their handlers, so onboard subcommands such as
``info`` run on a machine without torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from lnn_ros import __version__
from lnn_ros.errors import LnnRosError

# Modules with a ``register(subparsers)`` function, in the order their commands are listed.
# The last three are applications beside the library (examples/, benchmarks/, tools/), listed
# by name only: the library never imports them, and an install without them lacks those commands.
COMMAND_MODULES = (
    "lnn_ros.sim.cli",  # demo, sim ...
    "lnn_ros.training.cli",  # train
    "lnn_ros.onnx_export.cli",  # export
    "lnn_ros.engine.cli",  # info (loads and runs a bundle)
    "lnn_ros.bag.cli",  # replay, play, bag-to-dataset, bag-info
    "lnn_ros_examples.sine",  # example
    "lnn_ros_benchmarks.engine",  # bench
    "lnn_ros_tools.arm.cli",  # verify-arm
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lnn-ros",
        description="Liquid neural network policies: train, export to ONNX, run onboard, replay bags, fly the simulator.",
    )
    parser.add_argument("--version", action="version", version=f"lnn_ros {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # that subsystem is not part of this install
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except LnnRosError as exc:
        print(f"lnn-ros {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        print(
            f"lnn-ros {args.command}: error: this command needs the Python module {exc.name!r}, which is not "
            "installed; install the lnn_ros extra that provides it (e.g. pip install 'lnn_ros[sim]' or '.[all]').",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"lnn-ros {args.command}: interrupted.", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
