"""Speed-up of the simulator's parallel work on this machine: 2 worker processes vs 1.

* ``policy_eval``: :func:`lnn_ros_examples.drone_policy.evaluate.closed_loop`, the shipped CfC
  bundle flown through the Engine and the runtime on 2 variants x ``--seeds`` seeds;
* ``demonstrations``: :func:`lnn_ros.sim.generate_demonstrations`, ``--seeds`` x 2 expert episodes.

``workers=1`` runs the jobs in this process (the serial run); ``workers=2`` in a pool of 2
fresh processes (their start-up and imports are inside the time). Each figure is the median of
``--repeats`` runs, serial and parallel interleaved; the outcomes of both are checked equal.
The machine is shared; the load average before and after is recorded. Regenerate with::

    python -m lnn_ros_benchmarks.sim_scaling            # writes results/sim_scaling.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from lnn_ros.sim import SimConfig, generate_demonstrations, load_demonstration
from lnn_ros.sim.demo import shipped_model
from lnn_ros_benchmarks.report import machine, write_report
from lnn_ros_examples.drone_policy.evaluate import closed_loop


def _policy_eval(workers: int, seeds: int, duration_s: float) -> tuple[float, Any]:
    started = time.perf_counter()
    outcomes = closed_loop(
        {"cfc": shipped_model("drone_cfc")}, ["nominal", "wind"], seeds,
        duration_s=duration_s, workers=workers,
    )
    return time.perf_counter() - started, outcomes


def _demonstrations(workers: int, seeds: int, duration_s: float) -> tuple[float, Any]:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        paths = generate_demonstrations(
            folder, 2 * seeds, SimConfig(duration_s=duration_s), ["nominal", "wind"], first_seed=500, workers=workers
        )
        seconds = time.perf_counter() - started
        summary = [(d.seed, d.variant, d.reached, round(d.final_distance_m, 9)) for d in map(load_demonstration, paths)]
    return seconds, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per variant (default 4)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per episode (default 5)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/sim_scaling.json"))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    rows = {}
    for name, work in (("policy_eval", _policy_eval), ("demonstrations", _demonstrations)):
        times: dict[int, list[float]] = {1: [], 2: []}
        results: dict[int, Any] = {}
        for _ in range(args.repeats):
            for workers in (1, 2):
                seconds, results[workers] = work(workers, args.seeds, args.duration)
                times[workers].append(seconds)
        if results[1] != results[2]:
            raise SystemExit(f"{name}: the parallel results differ from the serial ones")
        serial, parallel = statistics.median(times[1]), statistics.median(times[2])
        rows[name] = {
            "episodes": 2 * args.seeds,
            "episode_s": args.duration,
            "serial_s": round(serial, 2),
            "two_processes_s": round(parallel, 2),
            "speedup": round(serial / parallel, 3),
            "runs_s": {"serial": [round(t, 2) for t in times[1]], "two_processes": [round(t, 2) for t in times[2]]},
            "results_identical": True,
        }
        print(f"{name:15s} serial {serial:.1f} s, 2 processes {parallel:.1f} s -> speed-up {serial / parallel:.2f}", flush=True)
    report = {
        "command": "python -m lnn_ros_benchmarks.sim_scaling"
        + (f" --seeds {args.seeds}" if args.seeds != 4 else "")
        + (f" --duration {args.duration:g}" if args.duration != 5.0 else "")
        + (f" --repeats {args.repeats}" if args.repeats != 2 else ""),
        "machine": machine(load_before),
        "notes": "Medians over repeats, serial and parallel interleaved; the 2-process time includes starting the "
                 "worker interpreters. Shared machine: see the load averages.",
        "work": rows,
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
