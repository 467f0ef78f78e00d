"""The demo's latency over repeated runs: the spread a user should expect, not a best run (a benchmark, not a test).

    python -m lnn_ros_benchmarks.demo_runs [--runs 5] [--out results/latency_demo_runs.json] [demo options]

Runs ``lnn-ros demo`` (simulator and ``lnn_node`` as two processes over DDS, one 12 s episode)
``--runs`` times one after the other, each on a ROS domain of its own, and writes for every run
the end-to-end latency (sensor publish → ``cmd_vel`` reception in the simulator), the per-hop
breakdown from middleware timestamps (``demo.json`` ``hops``), missed deadlines, the flight
result and the load average before the run, then the spread over runs (min / median / max of
each run's p50, p99 and max). Options after ``--`` go to ``lnn-ros demo`` unchanged.
Run it on a quiet machine: every other job on the two cores shows up in the tail.

``--pinning`` (Linux) asks where the tail comes from: it alternates runs as they are with runs
where every thread of ``lnn_node`` is pinned to the last CPU and every thread of
``sim_drone_node`` to the others (``os.sched_setaffinity``, set as soon as both processes
exist), and writes both sets with their spreads under ``pinning`` in the output.
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
import time
from pathlib import Path
from typing import Any

PERCENTILES = ("p50", "p99", "max")
HOPS = ("sensor_to_node", "node_compute", "node_pickup", "node_to_sim", "sensor_to_node_publish", "sim_pickup")


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _children(pid: int) -> dict[int, str]:
    """Every descendant process of ``pid`` (Linux /proc) with its command line."""
    parents: dict[int, int] = {}
    lines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = lines.get(child, "")
                frontier.append(child)
    return found


def _pin(process: subprocess.Popen[str], timeout_s: float = 60.0) -> bool:
    """Pin lnn_node's threads to the last CPU and sim_drone_node's to the others, once both run."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        found = _children(process.pid)
        node = [pid for pid, line in found.items() if "lnn_node" in line and "--ros-args" in line]
        sim = [pid for pid, line in found.items() if "sim_drone_node" in line and "--ros-args" in line]
        if node and sim:
            time.sleep(0.5)  # let both start their middleware threads
            for pids, mask in ((node, {cpus[-1]}), (sim, set(cpus[:-1]))):
                for pid in pids:
                    for task in Path(f"/proc/{pid}/task").iterdir():
                        try:
                            os.sched_setaffinity(int(task.name), mask)
                        except OSError:
                            pass  # a thread that ended meanwhile
            return True
        time.sleep(0.05)
    return False


def _run_once(lnn_ros: str, out: Path, index: int, demo_args: list[str], pin: bool = False) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    folder = out / f"run_{index}"
    with subprocess.Popen(
        [lnn_ros, "demo", "--out", str(folder), *demo_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        pinned = _pin(proc) if pin else False
        output, _ = proc.communicate()
    demo_json = folder / "demo.json"
    if proc.returncode != 0 or not demo_json.is_file():
        tail = output.strip().splitlines()[-5:]
        raise SystemExit(f"demo run {index} failed (exit {proc.returncode}): " + " | ".join(tail))
    if pin and not pinned:
        raise SystemExit(f"demo run {index}: could not pin lnn_node and sim_drone_node (fewer than 2 CPUs?)")
    demo = json.loads(demo_json.read_text(encoding="utf-8"))
    worst: list[list[float]] = []
    record = folder / "raw" / "flight.npz"
    if record.is_file():  # where in the flight the worst latencies were (a stall at one moment, or spread out?)
        import numpy as np

        with np.load(record) as arrays:
            latency, stamp = arrays["latency_ms"], arrays["latency_stamp_s"]
            worst = [[round(float(stamp[i]), 3), round(float(latency[i]), 2)] for i in np.argsort(latency)[::-1][:5]]
    return {
        "worst_latencies_at_s_ms": worst,
        "pinned": pin,
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
    parser.add_argument(
        "--pinning", action="store_true", help="alternate runs as they are with runs pinning each node to its own CPUs"
    )
    parser.add_argument("demo_args", nargs="*", help="after --: options for lnn-ros demo")
    args = parser.parse_args()
    lnn_ros = shutil.which("lnn-ros") or str(Path(sys.executable).with_name("lnn-ros"))
    with tempfile.TemporaryDirectory(prefix="lnn_demo_runs_") as tmp:
        runs = []
        for index in range(args.runs * (2 if args.pinning else 1)):
            pin = args.pinning and index % 2 == 1
            runs.append(_run_once(lnn_ros, Path(tmp), index, args.demo_args, pin=pin))
            r = runs[-1]
            print(
                f"run {index}{' (pinned)' if pin else ''}: load {r['load_average_1min_before']}, latency p50 "
                f"{r['latency_ms']['p50']:.2f} ms, p99 {r['latency_ms']['p99']:.2f} ms, max {r['latency_ms']['max']:.2f} ms, "
                f"deadline missed {r['deadline']['missed_fraction']:.3%}, reached {r['reached']}",
                flush=True,
            )
    free = [r for r in runs if not r["pinned"]]
    report: dict[str, Any] = {
        "what": "lnn-ros demo repeated: end-to-end latency and per-hop breakdown per run, and the spread over runs",
        "command": f"python -m lnn_ros_benchmarks.demo_runs --runs {args.runs}"
        + (" --pinning" if args.pinning else "")
        + (" -- " + " ".join(args.demo_args) if args.demo_args else ""),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "runs": free,
        "spread_over_runs": summarise(free),
    }
    if args.pinning:
        pinned = [r for r in runs if r["pinned"]]
        report["pinning"] = {
            "what": "the same runs alternated with runs pinning lnn_node to the last CPU and sim_drone_node to the others",
            "runs": pinned,
            "spread_over_runs": summarise(pinned),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report["spread_over_runs"], indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
