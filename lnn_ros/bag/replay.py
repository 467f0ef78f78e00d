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

Memory does not grow with the bag: the commands are kept on disk while the loop runs and the
CSV, metrics and plot are written from them in chunks (:mod:`lnn_ros.bag.replay_outputs`).

Speed: by default, runs of messages where the node would simply fly (watchdog OK, every stamp
accepted and continuing its stream, every IMU sample stepping and published, every frame held,
no diagnostics due) are handled as one batch (:meth:`~lnn_ros.runtime.LiveLoop.run_batch`): the
frames are encoded in one encoder call, the IMU steps go through the step graph unrolled T times
(:class:`~lnn_ros.engine.plan.UnrolledSteps`) and the commands are written as one block. A batch
is taken only when vectorised checks prove that the calls one by one would do exactly that, and
it leaves every counter, the watchdog, the gates, the timers and the state as those calls would;
any other run of messages goes through the live loop one message at a time. ``step_by_step``
(``--step-by-step``) forces that for every message.

Order: use the default ``--order log`` for bags recorded by ``ros2 bag record`` next to the
node (log time = arrival time, so replay == live); use ``--order stamp`` for bags whose log
time is not the arrival time (see :mod:`lnn_ros.bag.reader`).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import itertools
import json
import math
import operator
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnn_ros.bag.errors import BagError
from lnn_ros.bag.log_clock import LogClock, Timer
from lnn_ros.bag.metrics import CommandMetrics
from lnn_ros.bag.reader import BagReader, MessageBlock, MessageOrder
from lnn_ros.bag.records import BagMessage
from lnn_ros.bag.replay_outputs import PublishedLog, RecordedLog, write_outputs
from lnn_ros.bag.topics import BagTopics
from lnn_ros.bag.writer import BagWriter
from lnn_ros.bundle.manifest import TWIST_FIELDS
from lnn_ros.node_spec.errors import NodeConfigError
from lnn_ros.node_spec.interface import NODE_NAME
from lnn_ros.node_spec.params import NodeParams
from lnn_ros.runtime import LiveLoop, PolicyRunner, Report, Stream
from lnn_ros.runtime.live import LiveBatch
from lnn_ros.runtime.records import ImageFrame

COMMANDS_BAG = "commands"
SUMMARY_JSON = "summary.json"
_PROGRESS_EVERY = 500
_READ_AHEAD = 8192  # messages buffered for batches (at most 16 MiB of them: BagReader.blocks)
_MIN_BATCH = 8  # fewer messages than this go one by one
_COMMANDS = itertools.repeat(Stream.COMMAND)  # map(operator.is_, streams, _COMMANDS): which are recorded commands


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
        step_by_step: hand every message to the live loop one at a time (as ``lnn_node`` does)
            instead of batching the runs where the node simply flies (see the module docstring);
            the outputs are the same (commands to float rounding, counters identical).
        batch: the older, step-by-step way of using the window graph (implies one message at a
            time): the IMU steps between two camera frames are computed ahead through the
            bundle's window graph (:meth:`~lnn_ros.runtime.PolicyRunner.plan_imu`) and every
            message still goes through the live loop one by one. Off by default: the window graph
            costs about as much per step as a step call (tests/test_engine_plan.py).
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
    step_by_step: bool = False
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
    count = 0
    batched = (
        not config.step_by_step
        and not config.batch
        and runner.driver is Stream.IMU
        and set(runner.streams) <= {Stream.IMU, Stream.CAMERA}
        and runner.engine.prepare_runs()
    )
    with reader, _collector_skips_what_exists():  # opened (topics checked) before anything is written
        _prepare_out_dir(out_dir)
        writer = BagWriter(out_dir / COMMANDS_BAG)
        published = PublishedLog(len(loaded.manifest.outputs), out_dir)  # on disk until the loop ends
        recorded = RecordedLog(out_dir)
        duration_s = reader.info.duration_s
        progress = _progress(reader.expected_count(), config.progress)
        start = time.perf_counter()
        frame_id = params.command_frame_id

        def handle(message: BagMessage, timers: bool = True) -> None:
            """One message through the live loop, as ``lnn_node``'s callbacks (after its timers, unless done)."""
            if timers:
                run_timers(message.log_time_ns)
            if message.stream is Stream.IMU:
                command = live.on_imu(message.record)  # type: ignore[arg-type]
            else:
                command = live.on_image(message.record)  # type: ignore[arg-type]
            if command is not None:
                writer.write_twist(config.command_topic, command, message.log_time_ns, frame_id)
                published.add(command, message.log_time_ns)

        def run_timers(log_time_ns: int) -> None:
            for timer in clock.advance(log_time_ns):
                if timer is Timer.FAILSAFE:
                    live.tick()  # the node would publish a hold or hover now; counted, not written
                else:
                    write_diagnostics(live.report())

        retry = [_MIN_BATCH]  # messages handled one by one after a refused batch

        def handle_block(block: MessageBlock) -> None:
            """``block``'s sensor messages in order: batches where :meth:`LiveLoop.run_batch` takes them, else one by one."""
            chosen = np.flatnonzero(np.fromiter(map(operator.is_not, block.streams, _COMMANDS), dtype=bool, count=len(block)))
            log_ns = block.log_time_ns[chosen]
            index = 0
            while index < len(chosen):
                if len(chosen) - index < _MIN_BATCH:
                    handle(block.message(int(chosen[index])))
                    index += 1
                    continue
                run_timers(int(log_ns[index]))
                end, now_ns, ticks_ns = _batch_span(clock, log_ns, index)
                part = chosen[index:end]
                taken = _run_batch(live, block, part, now_ns, ticks_ns) if end - index >= _MIN_BATCH else None
                if taken is None:
                    # this message and the next few one by one (a problem is near), then a batch again; each
                    # refusal in a row doubles the run handled one by one (at most half of the rest)
                    handle(block.message(int(chosen[index])), timers=False)
                    step = max(1, min(retry[0], (end - index) // 2))
                    for position in chosen[index + 1 : index + step].tolist():
                        handle(block.message(position))
                    index += step
                    retry[0] *= 2
                    continue
                retry[0] = _MIN_BATCH
                for timer in clock.advance(int(now_ns[-1])):  # failsafe ticks only: run_batch applied them
                    assert timer is Timer.FAILSAFE
                imu_log_ns = block.log_time_ns[part[block.imu_row[part] >= 0]]
                writer.write_twists(config.command_topic, taken.stamps_ns, taken.twists, imu_log_ns, frame_id)
                published.add_batch(taken.stamps_ns, imu_log_ns, taken.values)
                index = end

        try:
            with writer:
                if batched:
                    for block in reader.blocks(config.order, config.reorder_window_s, _READ_AHEAD):
                        count += len(block)
                        progress.update(len(block))
                        recorded.extend(itertools.compress(block.records, map(operator.is_, block.streams, _COMMANDS)))  # type: ignore[arg-type]
                        handle_block(block)
                else:
                    messages = reader.messages(config.order, config.reorder_window_s)
                    if config.batch and runner.engine.can_plan:
                        messages = _planned(messages, runner, config.batch_messages)
                    for message in messages:
                        count += 1
                        if count % _PROGRESS_EVERY == 0:
                            progress.update(_PROGRESS_EVERY)
                        if message.stream is Stream.COMMAND:
                            recorded.add(message.record)  # type: ignore[arg-type]
                        else:
                            handle(message)
                if count:
                    write_diagnostics(live.report())  # the final state, as a last diagnostics message
        finally:
            progress.close()
        wall_s = time.perf_counter() - start
        warnings = reader.warnings.lines()
    if not len(published):
        warnings.append(
            f"The policy produced no command from {count} messages; see the counters (e.g. camera_waiting, "
            "imu_duplicate, imu_gap_reset) for why."
        )

    axes = [
        (o.name, o.twist_field, TWIST_FIELDS.index(o.twist_field))
        for o in loaded.manifest.outputs
        if o.twist_field is not None
    ]
    with published.spool, recorded.spool:
        metrics, written = write_outputs(
            out_dir, published, recorded, runner.twists, [o.name for o in loaded.manifest.outputs], axes,
            config.max_command_age_s, f"{bag.name}: {loaded.manifest.name}" if config.plot else None,
        )
    files = {"commands_bag": writer.path, **written}
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


@contextlib.contextmanager
def _collector_skips_what_exists() -> Iterator[None]:
    """Python's cyclic garbage collector leaves the objects that exist now alone until the block
    ends (:func:`gc.freeze`); objects made inside it are collected as usual.

    Its full passes otherwise walk every object of the loaded bundle, onnxruntime, numpy and the
    reader, about 15 ms each, whenever they fall inside the replay loop (they made the batched
    loop's slowest rounds, ``python -m lnn_ros_benchmarks.replay``).
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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


def _batch_span(clock: LogClock, log_ns: np.ndarray, index: int) -> tuple[int, np.ndarray, np.ndarray]:
    """The batch starting at message ``index`` of log times ``log_ns`` (its timers already run): it
    ends before the message that the next diagnostics tick comes before. Returns its end, the
    clock at each of its messages and the failsafe ticks among them (a copy of ``clock`` is
    advanced, not ``clock``)."""
    now_ns = np.maximum.accumulate(np.maximum(log_ns[index:], clock.now_ns()))
    probe = copy.copy(clock)
    ticks: list[int] = []
    end = len(log_ns)
    for timer in probe.advance(int(now_ns[-1])):
        tick_ns = probe.now_ns()
        if timer is Timer.DIAGNOSTICS:
            end = index + int(np.searchsorted(now_ns, tick_ns, side="left"))
            break
        ticks.append(tick_ns)
    now_ns = now_ns[: end - index]
    last = int(now_ns[-1]) if len(now_ns) else 0
    return end, now_ns, np.array([t for t in ticks if t <= last], dtype=np.int64)


def _run_batch(
    live: LiveLoop, block: MessageBlock, part: np.ndarray, now_ns: np.ndarray, ticks_ns: np.ndarray
) -> LiveBatch | None:
    """:meth:`LiveLoop.run_batch` of the messages ``part`` (indices) of ``block`` (IMU samples and camera frames)."""
    rows = block.imu_row[part]
    is_frame = rows < 0
    if is_frame.all():
        return None
    frames: list[ImageFrame] = [block.records[i] for i in part[is_frame].tolist()]  # type: ignore[misc]
    return live.run_batch(is_frame, now_ns, block.stamp_ns[part], block.imu[rows[~is_frame]], frames, ticks_ns)


