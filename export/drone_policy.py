#!/usr/bin/env python3
"""Regenerate ``models/drone_cfc`` (the flying policy) and its baselines ``models/drone_lstm``, ``models/drone_mlp``.

From scratch and seeded: records expert and noise-injected expert demonstrations in the
simulator's nominal variant (parallel worker processes), trains an image-encoder + CfC policy
and the LSTM and MLP baselines on the same data with the same settings, and exports each as a
verified bundle (encoder + step graph, manifest, ``training.json``). Same as
``lnn-ros sim train-policy``; see :mod:`lnn_ros.sim.policy_recipe` for the steps.

Usage (from the repository root)::

    python export/drone_policy.py [--workers 2] [--kinds cfc,lstm,mlp] [--work-dir build/drone_policy]

Then measure them: ``lnn-ros sim eval-policies`` (writes results/policy_eval.json and .md).
"""

from __future__ import annotations

import sys

from _recipe import run_recipe  # first: puts the checkout on sys.path

from lnn_ros.sim.policy_recipe import add_arguments, run_from_args  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_recipe("drone_policy", __doc__.splitlines()[0], add_arguments, run_from_args))
