#!/usr/bin/env python3
"""Regenerate ``models/sine_cfc``: the sine example bundle (cos(t) from irregularly sampled sin(t)).

Trains a CfC, exports it (step + window graphs, manifest.yaml), replays held-out sequences
through the torch-free Engine with nanosecond stamps, writes ``models/sine_cfc/sine_example.png``
and prints RMSE vs the target and the Engine-vs-PyTorch difference. Same as ``lnn-ros example``.

Usage (from the repository root)::

    python export/sine_example.py [--out models/sine_cfc] [--seed 0] [--no-progress]
"""

from __future__ import annotations

import sys

from _recipe import run_recipe  # first: puts the checkout on sys.path

from lnn_ros.training.example import add_arguments, run_from_args  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_recipe("sine_example", __doc__.splitlines()[0], add_arguments, run_from_args))
