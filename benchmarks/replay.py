"""Replay speed in × real time on a 200 Hz IMU + 30 Hz camera bag (a benchmark, not a test).

    python -m lnn_ros_benchmarks.replay [--seconds 60] [--repeats 3] [--model BUNDLE]

Writes a synthetic flight bag (:mod:`lnn_ros_tools.synthetic.flight`: 200 Hz IMU, 30 Hz
rgb8 camera at the bundle's image size, 50 Hz expert cmd_vel) of ``--seconds``, replays it
through an IMU + camera bundle (by default the test factory's random-init CfC with its conv
encoder and 32x24 images; ``--model`` for another one) with the live node's message handling, and
reports bag duration / wall time of the replay loop (reading, decoding, stepping, writing the
output bag) and of the whole call (plus loading the bundle, CSV, metrics; no plot). Each round
replays the bag with the default batched path and with ``step_by_step`` (interleaved, so both
see the same machine load) and checks that both wrote the same commands and counters. A last,
profiled replay (cProfile, batched) gives where the time goes. Every run, the best, the median
and the profile go to ``results/bench_replay.json``. The goal is >= 300x real time (loop).

The default bundle is made (with torch) in a child process: the timed process then holds what an
``lnn-ros replay`` process holds. With torch's objects in it, each full pass of Python's cyclic
garbage collector took ~90 ms instead of ~15 ms, and landed inside the replay loop of some rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lnn_ros_benchmarks.report import machine, write_report

REPO = Path(__file__).resolve().parent.parent


def _profile(call: Any, top: int = 15) -> list[dict[str, Any]]:
    """The ``top`` functions by own time of ``call()`` under cProfile."""
    profile = cProfile.Profile()
    profile.enable()
    call()
    profile.disable()
    stats = pstats.Stats(profile)
    rows = []
    for (file, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = file if file == "~" else f"{Path(file).name}:{line}"
        rows.append({"function": f"{where}({name})", "calls": calls, "own_s": round(own, 4), "cumulative_s": round(cumulative, 4)})
    rows.sort(key=lambda r: -r["own_s"])
    return rows[:top]


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    loop = sorted(r["loop_x_real_time"] for r in runs)
    total = sorted(r["total_x_real_time"] for r in runs)
    return {"loop_x_real_time": {"best": loop[-1], "median": loop[len(loop) // 2], "worst": loop[0]},
            "total_x_real_time": {"best": total[-1], "median": total[len(total) // 2], "worst": total[0]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="bag length (default 60)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (batched, step by step) (default 3)")
    parser.add_argument("--model", type=Path, help="IMU + camera bundle (default: a bundle_factory test bundle)")
    parser.add_argument("--out", type=Path, default=Path("results") / "bench_replay.json")
    args = parser.parse_args()
    load_before = os.getloadavg()

    from importlib.metadata import version

    import numpy as np
    import onnxruntime

    from lnn_ros.bag.replay import ReplayConfig, replay_bag
    from lnn_ros.bundle import load_bundle
    from lnn_ros.engine.plan import FACTORED, UNROLLED_STEPS
    from lnn_ros_tools.synthetic.flight import write_flight

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        if args.model is None:  # made in a child process: torch is not imported into this one (see the docstring)
            bundle = root / "bundle"
            code = "import sys; from lnn_ros_tools.synthetic.bundles import make_imu_camera_bundle as m; m(sys.argv[1])"
            subprocess.run([sys.executable, "-c", code, str(bundle)], check=True)
        else:
            bundle = args.model
        manifest = load_bundle(bundle).manifest
        camera = manifest.camera
        width, height = (camera.width, camera.height) if camera is not None else (32, 24)
        bag = write_flight(root / "flight", seconds=args.seconds, width=width, height=height)
        runs: dict[str, list[dict[str, float]]] = {"batched": [], "step_by_step": []}
        results = {}
        replay_bag(bag, bundle, root / "warm-up", ReplayConfig(progress=False, plot=False))  # page cache, imports
        for repeat in range(args.repeats):
            for mode in runs:
                start = time.perf_counter()
                config = ReplayConfig(progress=False, plot=False, step_by_step=mode == "step_by_step")
                result = replay_bag(bag, bundle, root / f"{mode}{repeat}", config)
                total_s = time.perf_counter() - start
                results[mode] = result
                runs[mode].append({
                    "loop_wall_s": round(result.wall_s, 4),
                    "total_wall_s": round(total_s, 4),
                    "loop_x_real_time": round(result.speed, 1),
                    "total_x_real_time": round(result.bag_duration_s / total_s, 1),
                })
                print(f"round {repeat + 1} {mode:>12}: {result.messages} messages, {result.bag_duration_s:.1f} s of bag in "
                      f"{result.wall_s:.3f} s (loop) / {total_s:.3f} s (total): "
                      f"{result.speed:.1f}x / {result.bag_duration_s / total_s:.1f}x real time")
        batched, step = results["batched"], results["step_by_step"]
        same_counters = batched.counters == step.counters
        difference = max(
            (abs(float(a) - float(b)) for row_a, row_b in zip(*(
                [line.split(",")[2:] for line in (r.out_dir / "commands.csv").read_text().splitlines()[1:]]
                for r in (batched, step))) for a, b in zip(row_a, row_b) if a and b),
            default=0.0,
        )
        profile = _profile(lambda: replay_bag(bag, bundle, root / "profiled", ReplayConfig(progress=False, plot=False)))
        report = {
            "benchmark": "lnn-ros replay speed",
            "command": f"python -m lnn_ros_benchmarks.replay --seconds {args.seconds:g} --repeats {args.repeats}"
            + (f" --model {args.model}" if args.model else ""),
            "bag": {"seconds": args.seconds, "imu_hz": 200, "camera_hz": 30, "camera": f"{width}x{height} rgb8", "cmd_vel_hz": 50,
                    "messages": batched.messages, "storage": "mcap"},
            "bundle": {"name": manifest.name, "kind": manifest.model.kind, "state_size": manifest.model.state_size,
                       "encoder": manifest.camera is not None},
            "commands": batched.commands,
            "batched": {**_summary(runs["batched"]), "runs": runs["batched"],
                        "note": f"default: runs where the node simply flies as batches (step graph unrolled x{UNROLLED_STEPS}"
                        + (", the first layer's input share and the readout once per call)" if FACTORED else ")")},
            "step_by_step": {**_summary(runs["step_by_step"]), "runs": runs["step_by_step"],
                             "note": "ReplayConfig(step_by_step=True) / --step-by-step: every message through LiveLoop"},
            "speedup_loop_per_round": [round(b["loop_wall_s"] and s["loop_wall_s"] / b["loop_wall_s"], 2)
                                       for b, s in zip(runs["batched"], runs["step_by_step"])],
            "same_counters": same_counters,
            "max_command_difference": difference,
            "profile_batched_top_own_time": profile,
            "goal_x_real_time": 300,
            "torch_in_timed_process": "torch" in sys.modules,
            "machine": {**machine(load_before), "onnxruntime": onnxruntime.__version__, "rosbags": version("rosbags"),
                        "numpy": np.__version__},
        }
    write_report(args.out, report)
    best = report["batched"]["loop_x_real_time"]
    print(f"batched: loop {best['worst']:.0f}-{best['best']:.0f}x (median {best['median']:.0f}x) real time; step by step "
          f"median {report['step_by_step']['loop_x_real_time']['median']:.0f}x; same counters {same_counters}, "
          f"max command difference {difference:g}")
    return 0 if same_counters and difference <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
