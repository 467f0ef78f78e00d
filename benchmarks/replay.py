"""Replay speed in × real time on a 200 Hz IMU + 30 Hz camera bag (a benchmark, not a test).

    python -m lnn_ros_benchmarks.replay [--seconds 60] [--repeats 3] [--model BUNDLE]

Writes a synthetic flight bag (:mod:`lnn_ros_tools.synthetic.flight`: 200 Hz IMU, 30 Hz
rgb8 camera at the bundle's image size, 50 Hz expert cmd_vel) of ``--seconds``, replays it
through an IMU + camera bundle (by default the test factory's random-init CfC with its conv
encoder and 32x24 images; ``--model`` for another one) with the live node's message handling, and
reports bag duration / wall time of the replay loop (reading, decoding, stepping, writing the
output bag) and of the whole call (plus loading the bundle, CSV, metrics and plot). Every run,
the best and the median go to ``results/bench_replay.json``. The target is >= 50x real time on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="bag length (default 60)")
    parser.add_argument("--repeats", type=int, default=3, help="replays; the best is reported (default 3)")
    parser.add_argument("--model", type=Path, help="IMU + camera bundle (default: a bundle_factory test bundle)")
    parser.add_argument("--out", type=Path, default=Path("results") / "bench_replay.json")
    args = parser.parse_args()

    from importlib.metadata import version

    import onnxruntime

    from lnn_ros.bag.replay import ReplayConfig, replay_bag
    from lnn_ros.bundle import load_bundle
    from lnn_ros_tools.synthetic.flight import write_flight

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        if args.model is None:
            from lnn_ros_tools.synthetic.bundles import make_imu_camera_bundle

            bundle = make_imu_camera_bundle(root / "bundle").path
        else:
            bundle = args.model
        camera = load_bundle(bundle).manifest.camera
        width, height = (camera.width, camera.height) if camera is not None else (32, 24)
        bag = write_flight(root / "flight", seconds=args.seconds, width=width, height=height)
        runs = []
        batched_runs = []
        can_batch = "window" in load_bundle(bundle).manifest.graphs
        for repeat in range(args.repeats):
            if can_batch:  # the same bag with the IMU steps planned through the window graph, same load
                start = time.perf_counter()
                batched = replay_bag(bag, bundle, root / f"batched{repeat}", ReplayConfig(progress=False, batch=True))
                batched_runs.append({"loop_x_real_time": batched.speed,
                                     "total_x_real_time": batched.bag_duration_s / (time.perf_counter() - start)})
            start = time.perf_counter()
            result = replay_bag(bag, bundle, root / f"out{repeat}", ReplayConfig(progress=False))
            total_s = time.perf_counter() - start
            runs.append({
                "loop_wall_s": result.wall_s,
                "total_wall_s": total_s,
                "loop_x_real_time": result.speed,
                "total_x_real_time": result.bag_duration_s / total_s,
            })
            print(f"run {repeat + 1}: {result.messages} messages, {result.bag_duration_s:.1f} s of bag in "
                  f"{result.wall_s:.2f} s (loop) / {total_s:.2f} s (total): "
                  f"{result.speed:.1f}x / {result.bag_duration_s / total_s:.1f}x real time")
        manifest = load_bundle(bundle).manifest
        best = max(runs, key=lambda r: r["loop_x_real_time"])
        median = sorted(runs, key=lambda r: r["loop_x_real_time"])[len(runs) // 2]
        report = {
            "benchmark": "lnn-ros replay speed",
            "command": f"python -m lnn_ros_benchmarks.replay --seconds {args.seconds:g} --repeats {args.repeats}"
            + (f" --model {args.model}" if args.model else ""),
            "bag": {"seconds": args.seconds, "imu_hz": 200, "camera_hz": 30, "camera": f"{width}x{height} rgb8", "cmd_vel_hz": 50,
                    "messages": result.messages, "storage": "mcap"},
            "bundle": {"name": manifest.name, "kind": manifest.model.kind, "state_size": manifest.model.state_size,
                       "encoder": manifest.camera is not None},
            "commands": result.commands,
            "best": best,
            "median": median,
            "runs": runs,
            "batched_through_window_graph": {
                "note": "ReplayConfig(batch=True): IMU steps between camera frames planned through the window graph "
                "(same commands to 1e-6, tests/test_engine_plan.py); per round, right before the step-by-step run",
                "runs": batched_runs,
                "loop_x_real_time_per_round": [b["loop_x_real_time"] / r["loop_x_real_time"] for b, r in zip(batched_runs, runs)],
            } if batched_runs else None,
            "target_x_real_time": 50,
            "machine": {"cpus": os.cpu_count(), "load_average_1_5_15min": os.getloadavg(), "platform": platform.platform(), "python": platform.python_version(),
                        "onnxruntime": onnxruntime.__version__, "rosbags": version("rosbags")},
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if batched_runs:
        ratios = ", ".join(f"{b['loop_x_real_time'] / r['loop_x_real_time']:.2f}" for b, r in zip(batched_runs, runs))
        print(f"batched through the window graph / step by step (loop speed, per round): {ratios}")
    print(f"best: {best['loop_x_real_time']:.1f}x real time (loop), {best['total_x_real_time']:.1f}x (total); "
          f"median {median['loop_x_real_time']:.1f}x (loop); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
