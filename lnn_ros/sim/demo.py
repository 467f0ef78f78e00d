"""``lnn-ros demo``: fly the simulated drone with the shipped liquid policy through the real ROS 2 node.

Two processes talk over real DDS on a domain id of their own, localhost only:

* ``sim_drone_node`` publishes ``imu``, ``camera/image_raw`` and ``/clock`` paced at real time,
  flies the ``cmd_vel`` it receives, measures latency and missed deadlines and writes a JSON
  summary and the flight's arrays;
* ``lnn_node`` (``use_sim_time``) runs the bundle (``models/drone_cfc`` by default) on the
  torch-free engine and publishes ``cmd_vel``.

This module starts both, waits for the simulator to finish the episode, stops the policy node
(SIGINT, then SIGTERM, SIGKILL only as a last resort, each by its process id), checks that no
Fast DDS shared-memory file was left behind, prints a short summary and writes
``demo.json`` and ``demo.png`` (trajectory, commands, latency histogram) into the output folder.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from lnn_ros.bundle import load_bundle
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.plot import plot_flight
from lnn_ros.sim.ros.flight_log import load_record, write_json
from lnn_ros.sim.world.config import variant_from_name

DEMO_SEED = 10_000  # the first evaluation seed: never in the training data (seeds below 10 000)
SHM_PATTERNS = ("/dev/shm/fastrtps_*", "/dev/shm/fastdds_*", "/dev/shm/fast_datasharing*", "/dev/shm/sem.fastrtps_*", "/dev/shm/sem.fastdds_*")
TRANSPORT_CHOICES = ("DEFAULT", "SHM", "UDPv4", "LARGE_DATA")
STOP_GRACE_S = 10.0
Log = Callable[[str], None]


def shipped_model(name: str = "drone_cfc") -> Path:
    """The folder of a shipped bundle: ``models/<name>`` of this checkout, else the installed share folder.

    Raises:
        SimError: neither exists.
    """
    candidates = [
        Path(__file__).resolve().parents[2] / "models" / name,
        Path(sys.prefix) / "share" / "lnn_ros" / "models" / name,
    ]
    for folder in candidates:
        if (folder / "manifest.yaml").is_file():
            return folder
    raise SimError(
        f"The shipped bundle {name!r} is in none of {[str(c) for c in candidates]}; "
        "regenerate it with `lnn-ros sim train-policy` or pass --model."
    )


def executable(name: str) -> Path:
    """A console script of this installation (next to the running Python, else on PATH).

    Raises:
        SimError: it is not installed.
    """
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found is None:
        raise SimError(f"The console script {name!r} is not installed; run `pip install -e .` (or ./run.sh) first.")
    return Path(found)


def shm_files() -> set[str]:
    """Fast DDS shared-memory files that exist right now (of any process)."""
    return {path for pattern in SHM_PATTERNS for path in glob.glob(pattern)}


def mapped_shm_files(pid: int) -> set[str]:
    """The Fast DDS shared-memory files process ``pid`` has mapped, with their ``_el`` lock files (Linux /proc).

    Attributing files to our own processes keeps the leak check exact while other ROS
    processes on the machine create and remove theirs.
    """
    try:
        text = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    paths = {line.split(maxsplit=5)[5].strip() for line in text.splitlines() if "/dev/shm/" in line and len(line.split()) >= 6}
    ours = {path for path in paths if any(fnmatch.fnmatch(path, pattern) for pattern in SHM_PATTERNS)}
    return ours | {f"{path}_el" for path in ours if not Path(path).name.startswith("sem.")}


@dataclass(frozen=True)
class DemoConfig:
    """Settings of one demo flight.

    Attributes:
        model: bundle folder flown by lnn_node.
        seed: simulator seed.
        variant: scenario variant.
        duration_s: episode length (sim time = wall time at real_time_factor 1).
        out_dir: where demo.json and demo.png go (the nodes' logs and raw outputs go to ``raw/`` in it).
        deadline_ms: control deadline of the simulator's missed-deadline count.
        real_time_factor: sim seconds per wall second.
        transports: FASTDDS_BUILTIN_TRANSPORTS for both processes (None: leave the environment's).
        domain_id: ROS_DOMAIN_ID (None: a random one in 1..100).
        startup_timeout_s: how long the simulator waits for lnn_node to appear.
    """

    model: Path
    seed: int = DEMO_SEED
    variant: str = "nominal"
    duration_s: float = 12.0
    out_dir: Path = Path("results/demo")
    deadline_ms: float = 5.0
    real_time_factor: float = 1.0
    transports: str | None = None
    domain_id: int | None = None
    startup_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        variant_from_name(self.variant)
        if not self.duration_s > 0:
            raise SimError(f"DemoConfig.duration_s must be > 0, got {self.duration_s!r}.")
        if self.transports is not None and self.transports not in TRANSPORT_CHOICES:
            raise SimError(f"DemoConfig.transports must be one of {list(TRANSPORT_CHOICES)}, got {self.transports!r}.")
        if self.domain_id is not None and not 0 <= self.domain_id <= 101:
            raise SimError(f"DemoConfig.domain_id must be in 0..101, got {self.domain_id!r}.")


class DemoResult(NamedTuple):
    """What a demo run produced."""

    summary: dict[str, Any]  # demo.json's content
    json_path: Path
    png_path: Path | None
    completed: bool


def ros_environment(domain_id: int, transports: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The two processes' environment: ``base`` (default ``os.environ``) with their own domain id, localhost only."""
    env = dict(os.environ if base is None else base)
    env.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_LOCALHOST_ONLY="1",
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env.pop("ROS_STATIC_PEERS", None)
    if transports is not None:
        env["FASTDDS_BUILTIN_TRANSPORTS"] = transports
    return env


def stop_process(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> str:
    """Stop one process we started: SIGINT, then SIGTERM, then SIGKILL; returns how it ended."""
    if process.poll() is not None:
        return f"exited with code {process.returncode}"
    for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
        process.send_signal(sig)
        try:
            process.wait(timeout=grace_s)
            return f"stopped by {name} (exit code {process.returncode})"
        except subprocess.TimeoutExpired:
            continue
    process.kill()
    process.wait()
    return "killed with SIGKILL after ignoring SIGINT and SIGTERM"


def _param(name: str, value: object) -> list[str]:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return ["-p", f"{name}:={text}"]


def node_commands(config: DemoConfig, summary_path: Path, record_path: Path) -> tuple[list[str], list[str]]:
    """The command lines of (sim_drone_node, lnn_node)."""
    sim = [str(executable("sim_drone_node")), "--ros-args"]
    for name, value in (
        ("seed", config.seed),
        ("variant", config.variant),
        ("duration_s", float(config.duration_s)),
        ("deadline_ms", float(config.deadline_ms)),
        ("real_time_factor", float(config.real_time_factor)),
        ("wait_for_policy_s", float(config.startup_timeout_s)),
        ("summary_path", summary_path),
        ("record_path", record_path),
    ):
        sim += _param(name, value)
    node = [str(executable("lnn_node")), "--ros-args"]
    node += _param("model_path", config.model) + _param("use_sim_time", True)
    # A statistics window that holds every command of the flight (200 Hz IMU, margin for the
    # camera), so the node's last /diagnostics report gives its hops over the whole flight.
    node += _param("stats_window", max(1000, math.ceil(config.duration_s * 300)))
    return sim, node


def run_demo(config: DemoConfig, log: Log = print, env: Mapping[str, str] | None = None) -> DemoResult:
    """Fly one episode over ROS 2 and write ``demo.json`` and ``demo.png``; see the module docstring.

    Args:
        config: what to fly.
        log: where the summary lines go.
        env: base environment of the two processes (default ``os.environ``); the domain id,
            localhost-only settings and transports of ``config`` are applied on top.

    Raises:
        SimError: the bundle does not load, a console script is missing, or the simulator
            wrote no summary (its log is quoted).
    """
    bundle = load_bundle(config.model)
    out = Path(config.out_dir)
    raw = out / "raw"  # the nodes' own outputs and logs; demo.json and demo.png are made from them
    raw.mkdir(parents=True, exist_ok=True)
    summary_path, record_path = raw / "sim_summary.json", raw / "flight.npz"
    for stale in (summary_path, record_path, out / "demo.json", out / "demo.png"):
        stale.unlink(missing_ok=True)
    domain_id = config.domain_id if config.domain_id is not None else random.randint(1, 100)
    env = ros_environment(domain_id, config.transports, env)
    env.setdefault("ROS_LOG_DIR", str(raw / "ros_log"))
    sim_cmd, node_cmd = node_commands(config, summary_path.resolve(), record_path.resolve())
    mapped: set[str] = set()
    transports = env.get("FASTDDS_BUILTIN_TRANSPORTS", "DEFAULT")
    log(
        f"lnn-ros demo: flying {config.model} ({bundle.manifest.name}, {bundle.manifest.model.kind}) in the simulator, "
        f"seed {config.seed}, variant {config.variant}, {config.duration_s:g} s; ROS_DOMAIN_ID={domain_id}, "
        f"Fast DDS transports {transports}."
    )
    started = time.monotonic()
    endings: dict[str, str] = {}
    node_log, sim_log = raw / "lnn_node.log", raw / "sim_drone_node.log"
    with node_log.open("wb") as node_out, sim_log.open("wb") as sim_out:
        node = subprocess.Popen(node_cmd, env=env, stdout=node_out, stderr=subprocess.STDOUT)
        sim = None
        failure: str | None = None
        try:
            sim = subprocess.Popen(sim_cmd, env=env, stdout=sim_out, stderr=subprocess.STDOUT)
            limit_s = config.startup_timeout_s + config.duration_s / config.real_time_factor + 30.0
            deadline = time.monotonic() + limit_s
            while sim.poll() is None:
                if node.poll() is not None:
                    failure = f"lnn_node exited with code {node.returncode} before the episode ended"
                    break
                if time.monotonic() > deadline:
                    failure = f"the episode did not end within {limit_s:.0f} s"
                    break
                for process in (sim, node):
                    mapped |= mapped_shm_files(process.pid)
                time.sleep(0.1)
        finally:
            if sim is not None:
                endings["sim_drone_node"] = stop_process(sim)
            endings["lnn_node"] = stop_process(node)
    wall_s = time.monotonic() - started
    left = sorted(path for path in mapped if Path(path).exists())
    if failure is not None or not summary_path.is_file():
        raise SimError(
            f"The demo flight failed: {failure or 'sim_drone_node wrote no summary'} ({endings}).\n"
            f"sim_drone_node log {sim_log}:\n{_tail(sim_log)}\nlnn_node log {node_log}:\n{_tail(node_log)}"
        )
    sim_summary = json.loads(summary_path.read_text())
    png: Path | None = out / "demo.png"
    try:
        plot_flight(load_record(record_path), sim_summary, out / "demo.png")
    except (SimError, ImportError) as exc:
        log(f"lnn-ros demo: no plot ({exc}).")
        png = None
    completed = bool(sim_summary["completed"]) and endings["sim_drone_node"].startswith("exited with code 0")
    summary = {
        "demo": "lnn-ros demo",
        "completed": completed,
        "model": {
            "path": str(config.model),
            "name": bundle.manifest.name,
            "kind": bundle.manifest.model.kind,
            "hash": bundle.digest,
        },
        "ros": {"domain_id": domain_id, "localhost_only": True, "fastdds_builtin_transports": transports},
        "processes": endings,
        "dds_shm_files_mapped": len(mapped),
        "dds_shm_files_left": left,
        "wall_s": round(wall_s, 2),
        **{k: v for k, v in sim_summary.items() if k not in ("node", "transport")},
    }
    json_path = write_json(out / "demo.json", summary)
    for line in describe(summary, json_path, png):
        log(line)
    return DemoResult(summary, json_path, png, completed)


def describe(summary: dict[str, Any], json_path: Path, png: Path | None) -> list[str]:
    """The few lines the demo prints."""
    flight, latency, stamp, deadline = (
        summary["flight"], summary["latency_ms"], summary["stamp_to_arrival_ms"], summary["deadline"]
    )
    if flight["reached"]:
        outcome = f"reached the target (within 1 m for 1 s) at t = {flight['time_to_reach_s']:.2f} s"
    elif flight["crashed"]:
        outcome = f"crashed: {flight['crash_reason']}"
    else:
        outcome = "did not reach the target"
    lines = [
        f"  flight:    {outcome}; distance {flight['start_distance_m']:.2f} m -> {flight['final_distance_m']:.2f} m "
        f"(closest {flight['min_distance_m']:.2f} m) over {flight['sim_duration_s']:.1f} s",
        f"  commands:  {summary['commands_matched']} cmd_vel from lnn_node for {summary['imu_published']} IMU samples "
        f"and {summary['images_published']} camera frames published",
        f"  latency:   sensor publish -> cmd_vel arrival p50 {_ms(latency['p50'])}, p99 {_ms(latency['p99'])}, "
        f"max {_ms(latency['max'])} (from the stamp's time: p50 {_ms(stamp['p50'])}, p99 {_ms(stamp['p99'])})",
        _hops_line(summary.get("hops")),
        f"  deadlines: {deadline['missed']} of {deadline['checked']} IMU samples without a command within "
        f"{deadline['deadline_ms']:g} ms ({deadline['late']} late, {deadline['lost']} lost)",
        f"  processes: {', '.join(f'{k} {v}' for k, v in summary['processes'].items())}; "
        f"Fast DDS shm files left: {len(summary['dds_shm_files_left'])}",
        f"  wrote {json_path}" + (f" and {png}" if png is not None else ""),
    ]
    return lines


def _hops_line(hops: dict[str, Any] | None) -> str:
    if not hops or not hops.get("available"):
        note = (hops or {}).get("note", "not measured")
        return f"  hops:      {note}; the latency above counts from the simulator's callback"
    parts = [
        f"{name} p50 {_ms(hops[key]['p50'])} / p99 {_ms(hops[key]['p99'])}"
        if hops.get(key, {}).get("p50") is not None
        else f"{name} n/a"
        for name, key in (("sensor->node", "sensor_to_node"), ("node compute", "node_compute"),
                          ("of which executor pickup", "node_pickup"),
                          ("node->sim", "node_to_sim"), ("sim pickup (not counted)", "sim_pickup"))
    ]
    return "  hops:      " + "; ".join(parts)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
