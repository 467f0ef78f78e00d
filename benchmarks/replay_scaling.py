"""Replay throughput and peak memory against bag length: does a long bag replay in streaming memory?

    python -m lnn_ros_benchmarks.replay_scaling [--lengths-min 1 10 60] [--repeats 3] [--model BUNDLE]

writes ``results/scaling/replay_length.json`` and ``.png`` (the defaults: about 6 min here).
The benchmark bag of :mod:`lnn_ros_benchmarks.replay` (:mod:`lnn_ros_tools.synthetic.flight`:
200 Hz IMU, 30 Hz rgb8 camera at the bundle's image size, 50 Hz expert ``cmd_vel``; mcap) is
written once per length into a temporary folder, message by message (the same messages in
the same order as ``write_flight``, without holding the flight in memory). Each replay is
:func:`~lnn_ros.bag.replay.replay_bag` with its defaults, as ``lnn-ros replay BAG BUNDLE``
runs it (commands bag, CSV, metrics and plot), in a fresh Python process of its own:

* ``loop_x_real_time``: bag duration / the replay loop's wall time (``ReplayResult.speed``);
  ``total_x_real_time``: bag duration / the whole ``replay_bag`` call;
* ``peak_rss_mb``: the child's ``VmHWM`` (peak resident set) when it ends;
  ``rss_after_imports_mb`` its ``VmRSS`` before the replay starts. ``child_ru_maxrss_mb``, the
  child's ``ru_maxrss`` from ``os.wait4`` here, is an upper bound only: Linux counts in it the
  parent's resident set at the fork, before the child's ``exec``;
* ``probes``: ``VmRSS`` / ``VmHWM`` inside ``replay_bag`` at the steps after its loop (found
  by wrapping ``write_outputs`` of :mod:`lnn_ros.bag.replay` (the CSV, metrics and plot, from
  the commands kept on disk during the loop) and ``plot_commands`` of :mod:`lnn_ros.bag.plot`
  in the child; a step whose function is gone is left out).

Lengths are interleaved in ``--repeats`` rounds. A last child replays the shortest bag under
``tracemalloc`` and lists the source lines whose allocations are alive when the loop ends
(``attribution``), which names what grows with the bag.
"""

from __future__ import annotations

import argparse
import heapq
import json
import linecache
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lnn_ros_benchmarks.report import (
    Panel,
    Series,
    command_line,
    plot_panels,
    publish,
    shown_path,
    spread,
)

REPO = Path(__file__).resolve().parent.parent
LENGTHS_MIN = (1.0, 10.0, 60.0)
MB = 1024 * 1024
_CHILD = "import sys; from lnn_ros_benchmarks.replay_scaling import child_main; sys.exit(child_main(sys.argv[1:]))"


# ---------------------------------------------------------------------------------------- the bag
def write_long_flight(path: Path, seconds: float, width: int, height: int) -> Path:
    """:func:`lnn_ros_tools.synthetic.flight.write_flight` (default rates, mcap) written as a
    stream: the three topics are merged in log-time order as they are generated, so memory does
    not grow with ``seconds``. Same messages in the same order (tested)."""
    from lnn_ros.bag.writer import BagWriter
    from lnn_ros_tools.synthetic import flight

    def ticks(order: int, topic: str, rate_hz: float, make: Callable[..., Any], phase_ns: int = 0) -> Iterator[tuple]:
        period_ns = round(1e9 / rate_hz)
        for i in range(int(seconds * rate_hz)):
            stamp = flight.START_NS + phase_ns + i * period_ns
            yield stamp + flight.LATENCY_NS[topic], order, topic, make(stamp, (stamp - flight.START_NS) / 1e9)

    streams = (
        ticks(0, flight.IMU_TOPIC, 200.0, flight.imu_at),
        ticks(1, flight.CAMERA_TOPIC, 30.0, lambda s, t: flight.frame_at(s, t, width, height), phase_ns=2_500_000),
        ticks(2, flight.COMMAND_TOPIC, 50.0, flight.command_at),
    )
    with BagWriter(path, "mcap") as bag:
        for log_time, _, topic, record in heapq.merge(*streams, key=lambda e: (e[0], e[1])):
            bag.write_record(topic, record, log_time)
    return path


# ------------------------------------------------------------------------------------- the child
def _status() -> dict[str, float]:
    """This process's VmRSS and VmHWM (peak) in MB, from /proc/self/status."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = round(int(rest.split()[0]) / 1024, 1)
    return values


def _probe(
    module: Any, name: str, probes: dict[str, dict[str, float]], on_enter: Callable[[], None] | None = None
) -> Callable[[], None]:
    """Wrap ``module.name`` so that the RSS before and after each of its calls lands in ``probes``;
    returns what undoes the wrapping (nothing to undo when ``module`` has no ``name``)."""
    original = getattr(module, name, None)
    if original is None:
        return lambda: None

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        probes[f"before_{name}"] = _status()
        if on_enter is not None:
            on_enter()
        value = original(*args, **kwargs)
        probes[f"after_{name}"] = _status()
        return value

    setattr(module, name, wrapped)
    return lambda: setattr(module, name, original)


def replay_child(bag: Path, bundle: Path, out: Path, attribute: bool = False) -> dict[str, Any]:
    """One replay in this process, as ``lnn-ros replay`` runs it; the figures of the module docstring."""
    import tracemalloc

    import lnn_ros.bag.plot
    import lnn_ros.bag.replay as replay

    probes: dict[str, dict[str, float]] = {}
    lines: list[dict[str, Any]] = []
    traced: dict[str, float] = {}

    def snapshot() -> None:  # when the loop has ended: what is still alive, by allocating line of lnn_ros
        if not tracemalloc.is_tracing() or lines:
            return
        taken = tracemalloc.take_snapshot()
        traced["total_mb"] = round(sum(s.size for s in taken.statistics("filename")) / MB, 2)
        ours = taken.filter_traces([tracemalloc.Filter(True, f"{REPO / 'lnn_ros'}/*")]).statistics("lineno")
        traced["lnn_ros_mb"] = round(sum(s.size for s in ours) / MB, 2)
        for stat in ours[:10]:
            frame = stat.traceback[0]
            where = Path(frame.filename).relative_to(REPO)
            lines.append({"line": f"{where}:{frame.lineno}", "mb": round(stat.size / MB, 3), "blocks": stat.count,
                          "code": linecache.getline(frame.filename, frame.lineno).strip()})

    undo = [_probe(replay, "write_outputs", probes, snapshot), _probe(lnn_ros.bag.plot, "plot_commands", probes)]
    before = _status()
    if attribute:
        tracemalloc.start()
    try:
        started = time.perf_counter()
        result = replay.replay_bag(bag, bundle, out, replay.ReplayConfig(progress=False))
        total_s = time.perf_counter() - started
    finally:
        if attribute:
            tracemalloc.stop()
        for restore in undo:
            restore()
    report: dict[str, Any] = {
        "messages": result.messages,
        "commands": result.commands,
        "recorded_commands": result.counters.get("recorded_commands"),
        "bag_duration_s": round(result.bag_duration_s, 3),
        "loop_wall_s": round(result.wall_s, 3),
        "total_wall_s": round(total_s, 3),
        "loop_x_real_time": round(result.speed, 2),
        "total_x_real_time": round(result.bag_duration_s / total_s, 2),
        "rss_after_imports_mb": before["VmRSS"],
        "peak_rss_mb": _status()["VmHWM"],
        "probes": probes,
    }
    if attribute:
        report = {"traced_mb": traced, "lines": lines, "messages": result.messages, "commands": result.commands,
                  "recorded_commands": result.counters.get("recorded_commands")}
    return report


def child_main(argv: Sequence[str]) -> int:
    """``BAG BUNDLE OUT [attribute]``: :func:`replay_child`, its report as one JSON line on stdout."""
    bag, bundle, out = (Path(a) for a in argv[:3])
    report = replay_child(bag, bundle, out, attribute="attribute" in argv[3:])
    print(json.dumps(report))
    return 0


def run_child(bag: Path, bundle: Path, out: Path, attribute: bool = False) -> dict[str, Any]:
    """:func:`replay_child` in a fresh interpreter; adds its ``ru_maxrss`` (os.wait4; includes this
    process's resident set at the fork) and wall time."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout:
        argv = [sys.executable, "-c", _CHILD, str(bag), str(bundle), str(out), *(["attribute"] if attribute else [])]
        process = subprocess.Popen(argv, stdout=stdout)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"the replay child {argv[3:]} ended with exit code {process.returncode}")
        stdout.seek(0)
        report: dict[str, Any] = json.loads(stdout.read().strip().splitlines()[-1])
    report["child_ru_maxrss_mb"] = round(usage.ru_maxrss / 1024, 1)  # kB on Linux
    report["child_wall_s"] = round(time.perf_counter() - started, 2)
    return report


# ----------------------------------------------------------------------------------- the benchmark
def run(lengths_min: Sequence[float], repeats: int, bundle: Path, scratch: Path, attribute: bool = True) -> dict[str, Any]:
    """Write one bag per length into ``scratch``, replay each ``repeats`` times interleaved; the report."""
    from lnn_ros.bundle import load_bundle

    camera = load_bundle(bundle).manifest.camera
    width, height = (camera.width, camera.height) if camera is not None else (32, 24)
    bags: dict[float, dict[str, Any]] = {}
    for minutes in lengths_min:
        started = time.perf_counter()
        path = write_long_flight(scratch / f"flight_{minutes:g}min", minutes * 60.0, width, height)
        size = sum(p.stat().st_size for p in path.iterdir())
        bags[minutes] = {"path": path, "mb_on_disk": round(size / MB, 1), "write_s": round(time.perf_counter() - started, 1)}
        print(f"wrote the {minutes:g} min bag ({size / MB:.0f} MB) in {bags[minutes]['write_s']} s", flush=True)
    runs: dict[float, list[dict[str, Any]]] = {m: [] for m in lengths_min}
    for r in range(repeats):
        for minutes in lengths_min:
            out = scratch / f"out_{minutes:g}_{r}"
            one = run_child(bags[minutes]["path"], bundle, out)
            shutil.rmtree(out)
            runs[minutes].append(one)
            print(f"round {r + 1}: {minutes:g} min: loop {one['loop_x_real_time']}x, total {one['total_x_real_time']}x "
                  f"real time, peak RSS {one['peak_rss_mb']} MB", flush=True)
    rows = {}
    for minutes in lengths_min:
        done = runs[minutes]
        rows[f"{minutes:g}"] = {
            "minutes": minutes,
            "messages": done[0]["messages"],
            "commands": done[0]["commands"],
            "bag_mb_on_disk": bags[minutes]["mb_on_disk"],
            "bag_write_s": bags[minutes]["write_s"],
            "loop_x_real_time": spread([d["loop_x_real_time"] for d in done], 1),
            "total_x_real_time": spread([d["total_x_real_time"] for d in done], 1),
            "peak_rss_mb": spread([d["peak_rss_mb"] for d in done], 1),
            "rss_after_loop_mb": _probe_spread(done, "before_write_outputs", "VmRSS"),
            "rss_after_imports_mb": spread([d["rss_after_imports_mb"] for d in done], 1),
            "runs": done,
        }
    first, last = min(lengths_min), max(lengths_min)
    report: dict[str, Any] = {"bag": {"imu_hz": 200, "camera_hz": 30, "camera": f"{width}x{height} rgb8",
                                      "cmd_vel_hz": 50, "storage": "mcap"}, "lengths": rows}
    if last > first:
        a, b = rows[f"{first:g}"], rows[f"{last:g}"]
        report["growth"] = {
            "peak_rss_mb_per_bag_minute": round((b["peak_rss_mb"]["median"] - a["peak_rss_mb"]["median"]) / (last - first), 2),
            "peak_rss_ratio_longest_over_shortest": round(b["peak_rss_mb"]["median"] / a["peak_rss_mb"]["median"], 2),
            "bytes_per_command_at_peak": round(
                (b["peak_rss_mb"]["median"] - a["peak_rss_mb"]["median"]) * MB / (b["commands"] - a["commands"])),
        }
        if a["rss_after_loop_mb"] and b["rss_after_loop_mb"]:
            report["growth"]["bytes_per_command_after_loop"] = round(
                (b["rss_after_loop_mb"]["median"] - a["rss_after_loop_mb"]["median"]) * MB / (b["commands"] - a["commands"]))
    if attribute:
        out = scratch / "out_attribution"
        report["attribution"] = {
            "bag_minutes": first,
            "note": "tracemalloc: the allocations alive when replay_bag's loop has ended (at its write_outputs "
                    "call), in all (total_mb) and by allocating line of lnn_ros (the line that allocated, not the "
                    "list that keeps the objects alive)",
            **run_child(bags[first]["path"], bundle, out, attribute=True),
        }
        shutil.rmtree(out, ignore_errors=True)
    return report


def _probe_spread(done: list[dict[str, Any]], probe: str, key: str) -> dict[str, Any] | None:
    values = [d["probes"][probe][key] for d in done if probe in d["probes"]]
    return spread(values, 1) if len(values) == len(done) else None


def format_table(report: dict[str, Any]) -> str:
    lines = ["| bag | messages | loop × real time | total × real time | peak RSS MB | RSS after loop MB |",
             "|---:|---:|---:|---:|---:|---:|"]
    for row in report["lengths"].values():
        loop, total, peak, after = row["loop_x_real_time"], row["total_x_real_time"], row["peak_rss_mb"], row["rss_after_loop_mb"]
        lines.append(f"| {row['minutes']:g} min | {row['messages']} | {loop['median']:.0f} ({loop['min']:.0f}–{loop['max']:.0f}) "
                     f"| {total['median']:.0f} ({total['min']:.0f}–{total['max']:.0f}) | {peak['median']:.0f} "
                     f"| {'' if after is None else format(after['median'], '.0f')} |")
    return "\n".join(lines)


def plot(report: dict[str, Any], out: Path) -> Path:
    rows = list(report["lengths"].values())
    minutes = [r["minutes"] for r in rows]

    def series(label: str, key: str) -> Series:
        figures = [r[key] for r in rows]
        return Series(label, minutes, [f["median"] for f in figures], [f["min"] for f in figures], [f["max"] for f in figures])

    ticks = [(m, f"{m:g}") for m in minutes]
    memory = [series("peak RSS", "peak_rss_mb")]
    if all(r["rss_after_loop_mb"] for r in rows):
        memory.append(series("RSS when the loop ends", "rss_after_loop_mb"))
    memory.append(series("RSS after imports", "rss_after_imports_mb"))
    return plot_panels(out, [
        Panel("replay speed", "bag length (min)", "× real time", [series("loop", "loop_x_real_time"),
                                                                    series("whole call", "total_x_real_time")], ticks=ticks),
        Panel("replay memory", "bag length (min)", "MB", memory, ticks=ticks),
    ], f"lnn-ros replay on the {report['bag']['camera']} benchmark bag")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lengths-min", type=float, nargs="+", default=list(LENGTHS_MIN),
                        help="bag lengths in minutes (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default %(default)s)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "drone_cfc", help="IMU + camera bundle")
    parser.add_argument("--scratch", type=Path, help="folder for the bags (default: a temporary one, removed)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "scaling" / "replay_length.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="lnn_replay_scaling_", dir=args.scratch) as scratch:
        result = run(args.lengths_min, args.repeats, args.model, Path(scratch))
    report = publish(
        args.out, result, benchmark="lnn-ros replay throughput and peak memory against bag length",
        command=command_line("replay_scaling", parser, args), load_before=load_before, started=started,
        packages=("onnxruntime", "rosbags", "numpy", "matplotlib"), plot=plot, table=format_table,
        model=shown_path(args.model),
    )
    if "growth" in report:
        print(json.dumps(report["growth"]))
    if "attribution" in report:
        print(f"alive when the loop ends: {report['attribution']['traced_mb']}")
        for line in report["attribution"]["lines"][:8]:
            print(f"  {line['mb']:8.3f} MB {line['blocks']:>9d} blocks  {line['line']}  {line['code']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
