"""``lnn-ros replay``: run a bundle on a recorded bag exactly as the live node would.

The bag's IMU and camera messages go through :class:`~lnn_ros.runtime.LiveLoop`, the class
``lnn_node`` runs per message and per timer tick, built from the node's parameters (its
defaults or its ``ros2`` parameter file: :meth:`~lnn_ros.node_spec.params.NodeParams.from_params_file`,
so that both run with the same settings) and driven by a
:class:`~lnn_ros.bag.log_clock.LogClock` on the bag's log time. Hold and hover commands of the failsafe
ticks are counted, not written: they are the node's fallback output, not the policy's.
Outputs, in ``out_dir``:

* ``commands/``: a rosbag2 bag (mcap) with the commands the node would have published
  (``geometry_msgs/TwistStamped`` stamped with the producing sensor message's stamp, logged at
  that message's log time) and its ``/diagnostics`` every ``diagnostics_period_s`` of bag time;
* ``commands.csv``: one row per command (stamps, every output, and the paired recorded value
  of every Twist-mapped output when the bag has recorded commands);
* ``metrics.json`` and ``commands.png`` when the bag has recorded commands (a pilot's or an
  expert's ``cmd_vel``): per-axis MSE, MAE and Pearson correlation against the recorded
  command valid at each prediction's stamp, and a plot of both over time;
* ``summary.json``: counters, warnings, speed (× real time = bag duration / wall time).

Order: use the default ``--order log`` for bags recorded by ``ros2 bag record`` next to the
node (log time = arrival time, so replay == live); use ``--order stamp`` for bags whose log
time is not the arrival time (see :mod:`lnn_ros.bag.reader`).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnn_ros.bag.errors import BagError
from lnn_ros.bag.log_clock import LogClock, Timer
from lnn_ros.bag.metrics import CommandMetrics, command_metrics
from lnn_ros.bag.reader import BagReader, MessageOrder
from lnn_ros.bag.records import BagMessage
from lnn_ros.bag.topics import BagTopics
from lnn_ros.bag.writer import BagWriter
from lnn_ros.bundle.manifest import TWIST_FIELDS
from lnn_ros.node_spec.errors import NodeConfigError
from lnn_ros.node_spec.interface import NODE_NAME
from lnn_ros.node_spec.params import NodeParams
from lnn_ros.runtime import Command, PolicyRunner, Report, Stream

COMMANDS_BAG = "commands"
COMMANDS_CSV = "commands.csv"
METRICS_JSON = "metrics.json"
SUMMARY_JSON = "summary.json"
PLOT_PNG = "commands.png"
_PROGRESS_EVERY = 500


@dataclass(frozen=True)
class ReplayConfig:
    """Replay settings.

    Attributes:
        topics: input topic names and types.
        order: message order (``log``: what the node saw; ``stamp``: header stamps).
        reorder_window_s: reorder buffer of ``stamp`` order, in seconds of stamp time.
        params_file: a ``ros2`` parameter YAML of the node (stale timeout, rates, frame id,
            engine settings); the node's defaults otherwise.
        command_topic: topic of the predicted commands in the output bag.
        diagnostics_topic: topic of the diagnostics in the output bag.
        max_command_age_s: a recorded command older than this is not compared (None: no limit).
        plot: write ``commands.png`` (matplotlib) when there are recorded commands.
        strict: stop with an error on any bag problem instead of counting it.
        progress: show a progress bar (None: only on a terminal).
        batch: when the bundle has a window graph, compute the IMU steps between two camera
            frames ahead through it (:meth:`~lnn_ros.runtime.PolicyRunner.plan_imu`); every
            message still goes through the live loop one by one, so the outcomes, counters and
            diagnostics are those of the step-by-step path and the commands equal it to float
            rounding. Off by default: on a CPU, onnxruntime's cost per graph node makes an unrolled
            window about as costly per step as a step call (``python -m lnn_ros_benchmarks.replay``
            measures both).
        batch_messages: the most messages read ahead for one plan.
    """

    topics: BagTopics = BagTopics()
    order: MessageOrder = MessageOrder.LOG
    reorder_window_s: float = 1.0
    params_file: Path | None = None
    command_topic: str = "/cmd_vel"
    diagnostics_topic: str = "/diagnostics"
    max_command_age_s: float | None = 0.5
    plot: bool = True
    strict: bool = False
    progress: bool | None = None
    batch: bool = False
    batch_messages: int = 64


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did; ``summary.json`` holds the same."""

    bag: Path
    bundle: Path
    out_dir: Path
    messages: int
    commands: int
    bag_duration_s: float
    wall_s: float
    counters: dict[str, int]
    warnings: tuple[str, ...]
    metrics: CommandMetrics | None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def speed(self) -> float:
        """Bag duration / wall time (× real time)."""
        return self.bag_duration_s / self.wall_s if self.wall_s > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "bag": str(self.bag),
            "bundle": str(self.bundle),
            "messages": self.messages,
            "commands": self.commands,
            "bag_duration_s": self.bag_duration_s,
            "wall_s": self.wall_s,
            "speed_x_real_time": self.speed if math.isfinite(self.speed) else None,
            "counters": self.counters,
            "warnings": list(self.warnings),
            "metrics": None if self.metrics is None else self.metrics.to_dict(),
            "files": {name: str(path) for name, path in self.files.items()},
        }


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BagError(f"Output folder {str(out_dir)!r} exists and is not empty; pass another --out or remove it.")
    out_dir.mkdir(parents=True, exist_ok=True)


def _progress(total: int, enabled: bool | None) -> Any:
    from tqdm import tqdm

    return tqdm(total=total or None, unit="msg", unit_scale=True, disable=None if enabled is None else not enabled,
                desc="replay", leave=False)


def replay_bag(
    bag: str | Path, bundle: str | Path, out_dir: str | Path, config: ReplayConfig = ReplayConfig()
) -> ReplayResult:
    """Replay ``bag`` through ``bundle`` as the live node would; write the outputs to ``out_dir``.

    Raises:
        BagError: the bag cannot be used (missing topic, wrong type, unreadable), the output
            folder is not empty, or (with ``strict``) any problem in the bag.
        BundleError, EngineError: the bundle does not load.
    """
    bag, bundle_path, out_dir = Path(bag), Path(bundle), Path(out_dir)
    try:  # the model_path of a parameter file is replaced by the bundle passed here
        params = NodeParams.from_params_file(config.params_file, model_path=str(bundle_path))
    except NodeConfigError as exc:
        raise BagError(str(exc)) from None
    clock = LogClock(params.failsafe_rate_hz, params.diagnostics_period_s)
    try:
        live = params.build_loop(clock.now_ns)
    except NodeConfigError as exc:
        raise BagError(str(exc)) from None
    runner = live.runner
    loaded = runner.engine.bundle
    diagnostics_count = 0

    def write_diagnostics(report: Report) -> None:
        nonlocal diagnostics_count
        writer.write_diagnostics(
            config.diagnostics_topic,
            clock.now_ns(),
            dict(report.values),
            name=f"{NODE_NAME}: policy",
            hardware_id=loaded.manifest.name,
            level=int(report.level),
            message=report.message,
        )
        diagnostics_count += 1

    streams = [s for s in (Stream.IMU, Stream.CAMERA) if s in runner.streams]
    reader = BagReader(bag, config.topics, streams=[*streams, Stream.COMMAND], required=streams, strict=config.strict)
    published: list[tuple[Command, int]] = []
    recorded: list[Command] = []
    count = 0
    with reader:  # opened (topics checked) before anything is written
        _prepare_out_dir(out_dir)
        writer = BagWriter(out_dir / COMMANDS_BAG)
        duration_s = reader.info.duration_s
        progress = _progress(reader.expected_count(), config.progress)
        start = time.perf_counter()
        frame_id = params.command_frame_id
        try:
            with writer:
                messages = reader.messages(config.order, config.reorder_window_s)
                if config.batch and runner.engine.can_plan:
                    messages = _planned(messages, runner, config.batch_messages)
                for message in messages:
                    count += 1
                    if count % _PROGRESS_EVERY == 0:
                        progress.update(_PROGRESS_EVERY)
                    if message.stream is Stream.COMMAND:
                        recorded.append(message.record)  # type: ignore[arg-type]
                        continue
                    for timer in clock.advance(message.log_time_ns):
                        if timer is Timer.FAILSAFE:
                            live.tick()  # the node would publish a hold or hover now; counted, not written
                        else:
                            write_diagnostics(live.report())
                    if message.stream is Stream.IMU:
                        command = live.on_imu(message.record)  # type: ignore[arg-type]
                    else:
                        command = live.on_image(message.record)  # type: ignore[arg-type]
                    if command is not None:
                        writer.write_twist(config.command_topic, command, message.log_time_ns, frame_id)
                        published.append((command, message.log_time_ns))
                if count:
                    write_diagnostics(live.report())  # the final state, as a last diagnostics message
        finally:
            progress.close()
        wall_s = time.perf_counter() - start
        warnings = reader.warnings.lines()
    if not published:
        warnings.append(
            f"The policy produced no command from {count} messages; see the counters (e.g. camera_waiting, "
            "imu_duplicate, imu_gap_reset) for why."
        )

    files = {"commands_bag": writer.path, "commands_csv": out_dir / COMMANDS_CSV}
    metrics = None
    pairs = None
    axes = [
        (o.name, o.twist_field, TWIST_FIELDS.index(o.twist_field))
        for o in loaded.manifest.outputs
        if o.twist_field is not None
    ]
    if recorded and published and axes:
        metrics, pairs = command_metrics(
            np.array([c.stamp_ns for c, _ in published], dtype=np.int64),
            np.array([c.twist for c, _ in published], dtype=np.float64),
            np.array([r.stamp_ns for r in recorded], dtype=np.int64),
            np.stack([r.twist for r in recorded]),
            axes,
            config.max_command_age_s,
        )
        files["metrics_json"] = out_dir / METRICS_JSON
        files["metrics_json"].write_text(json.dumps(metrics.to_dict(), indent=2) + "\n")
        if config.plot:
            from lnn_ros.bag.plot import plot_commands

            files["plot_png"] = plot_commands(out_dir / PLOT_PNG, published, recorded, axes, title=f"{bag.name}: {loaded.manifest.name}")
    _write_csv(files["commands_csv"], published, [o.name for o in loaded.manifest.outputs], axes, recorded, pairs)
    counters = runner.counters_dict()
    counters.update(
        commands_published=live.commands_published,
        commands_withheld=live.commands_withheld,
        hover_ticks=live.hover_commands,
        hold_ticks=live.hold_commands,
        failsafe_stops=live.failsafe_stops,
        failsafe_entries=live.watchdog.failsafe_entries,
        recoveries=live.watchdog.recoveries,
        diagnostics_written=diagnostics_count,
        recorded_commands=len(recorded),
    )
    result = ReplayResult(
        bag=bag,
        bundle=bundle_path,
        out_dir=out_dir,
        messages=count,
        commands=len(published),
        bag_duration_s=duration_s,
        wall_s=wall_s,
        counters=counters,
        warnings=tuple(warnings),
        metrics=metrics,
        files=files,
    )
    files["summary_json"] = out_dir / SUMMARY_JSON
    files["summary_json"].write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _planned(messages: Iterator[BagMessage], runner: PolicyRunner, limit: int) -> Iterator[BagMessage]:
    """``messages`` unchanged, read ahead in runs of up to ``limit`` that end before a camera
    frame; before a run is handed on, its IMU samples are planned (the held camera value cannot
    change inside it). Recorded commands in a run do not touch the policy."""
    run: list[BagMessage] = []
    for message in messages:
        if message.stream is Stream.CAMERA:
            yield from _flush(run, runner)
            yield message
            continue
        run.append(message)
        if len(run) >= limit:
            yield from _flush(run, runner)
    yield from _flush(run, runner)


def _flush(run: list[BagMessage], runner: PolicyRunner) -> list[BagMessage]:
    samples = [m.record for m in run if m.stream is Stream.IMU]
    if samples:
        runner.plan_imu(samples)  # type: ignore[arg-type]
    out = run.copy()
    run.clear()
    return out


def _write_csv(
    path: Path,
    published: list[tuple[Command, int]],
    output_names: list[str],
    axes: list[tuple[str, str, int]],
    recorded: list[Command],
    pairs: np.ndarray | None,
) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        header = ["stamp_ns", "log_time_ns", *output_names]
        if pairs is not None:
            header += [f"recorded_{name}" for name, _, _ in axes]
        writer.writerow(header)
        for row, (command, log_time_ns) in enumerate(published):
            values = [repr(float(v)) for v in command.values]
            line = [command.stamp_ns, log_time_ns, *values]
            if pairs is not None:
                paired = int(pairs[row])
                line += [repr(float(recorded[paired].twist[index])) if paired >= 0 else "" for _, _, index in axes]
            writer.writerow(line)
