#!/usr/bin/env python3
"""Regenerate ``models/sine_cfc``: the sine example bundle (cos(t) from irregularly sampled sin(t)).

Trains a CfC, exports it (step + window graphs, manifest.yaml), replays held-out sequences
through the torch-free Engine with nanosecond stamps, writes ``models/sine_cfc/sine_example.png``
and prints RMSE vs the target and the Engine-vs-PyTorch difference. Same as ``lnn-ros example``.

Usage (from the repository root)::

    python export/sine_example.py [--out models/sine_cfc] [--seed 0] [--no-progress]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from lnn_ros.errors import LnnRosError  # noqa: E402
from lnn_ros.training.example import add_arguments, run_from_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except LnnRosError as exc:
        print(f"sine_example: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
