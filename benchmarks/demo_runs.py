"""The demo's latency over repeated runs: the spread a user should expect, not a best run (a benchmark, not a test).

    python -m lnn_ros_benchmarks.demo_runs [--runs 5] [--out results/latency_demo_runs.json] [demo options]

Runs ``lnn-ros demo`` (simulator and ``lnn_node`` as two processes over DDS, one 12 s episode)
``--runs`` times one after the other, each on a ROS domain of its own, and writes for every run
the end-to-end latency (sensor publish → ``cmd_vel`` reception in the simulator), the per-hop
breakdown from middleware timestamps (``demo.json`` ``hops``), missed deadlines, the flight
result and the load average before the run, then the spread over runs (min / median / max of
each run's p50, p99 and max). Options after ``--`` go to ``lnn-ros demo`` unchanged.
Run it on a quiet machine: every other job on the two cores shows up in the tail.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PERCENTILES = ("p50", "p99", "max")
HOPS = ("sensor_to_node", "node_compute", "node_pickup", "node_to_sim", "sensor_to_node_publish", "sim_pickup")


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _run_once(lnn_ros: str, out: Path, index: int, demo_args: list[str]) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    folder = out / f"run_{index}"
    proc = subprocess.run([lnn_ros, "demo", "--out", str(folder), *demo_args], capture_output=True, text=True)
    demo_json = folder / "demo.json"
    if proc.returncode != 0 or not demo_json.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"demo run {index} failed (exit {proc.returncode}): " + " | ".join(tail))
    demo = json.loads(demo_json.read_text(encoding="utf-8"))
    return {
        "load_average_1min_before": round(load_before, 2),
        "reached": demo["flight"]["reached"],
        "imu_published": demo["imu_published"],
        "commands_matched": demo["commands_matched"],
        "latency_ms": {k: demo["latency_ms"][k] for k in PERCENTILES},
        "deadline": demo["deadline"],
        "hops": demo.get("hops", {"available": False}),
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Min / median / max over runs of each run's latency percentiles and hop percentiles."""
    summary: dict[str, Any] = {
        "latency_ms": {k: _spread([r["latency_ms"][k] for r in runs]) for k in PERCENTILES},
        "deadline_missed_fraction": _spread([r["deadline"]["missed_fraction"] for r in runs]),
        "commands_matched_fraction": _spread([r["commands_matched"] / max(1, r["imu_published"]) for r in runs]),
    }
    if all(r["hops"].get("available") for r in runs):
        summary["hops"] = {
            hop: {k: _spread([r["hops"][hop][k] for r in runs]) for k in PERCENTILES}
            for hop in HOPS
            if all(r["hops"].get(hop, {}).get(k) is not None for r in runs for k in PERCENTILES)
        }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="demo runs (default 5)")
    parser.add_argument("--out", type=Path, default=Path("results") / "latency_demo_runs.json")
    parser.add_argument("demo_args", nargs="*", help="after --: options for lnn-ros demo")
    args = parser.parse_args()
    lnn_ros = shutil.which("lnn-ros") or str(Path(sys.executable).with_name("lnn-ros"))
    with tempfile.TemporaryDirectory(prefix="lnn_demo_runs_") as tmp:
        runs = []
        for index in range(args.runs):
            runs.append(_run_once(lnn_ros, Path(tmp), index, args.demo_args))
            r = runs[-1]
            print(
                f"run {index}: load {r['load_average_1min_before']}, latency p50 {r['latency_ms']['p50']:.2f} ms, "
                f"p99 {r['latency_ms']['p99']:.2f} ms, max {r['latency_ms']['max']:.2f} ms, "
                f"deadline missed {r['deadline']['missed_fraction']:.3%}, reached {r['reached']}",
                flush=True,
            )
    report = {
        "what": "lnn-ros demo repeated: end-to-end latency and per-hop breakdown per run, and the spread over runs",
        "command": f"python -m lnn_ros_benchmarks.demo_runs --runs {args.runs}"
        + (" -- " + " ".join(args.demo_args) if args.demo_args else ""),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "runs": runs,
        "spread_over_runs": summarise(runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report["spread_over_runs"], indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
