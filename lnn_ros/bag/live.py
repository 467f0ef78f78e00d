"""The live node's message handling, driven by a bag's log time instead of a ROS clock.

:class:`LiveHandling` does per message what ``lnn_ros.ros.node.LnnNode`` does in its
subscription callbacks and timers, with the same runtime classes
(:class:`~lnn_ros.runtime.PolicyRunner`, :class:`~lnn_ros.runtime.Watchdog`, the rolling
statistics and the node's diagnostics report):

* every message goes to the runner; an invalid outcome stops there;
* a valid one feeds the watchdog; if it ends a stale period the state is reset and its
  command (if any) is not published;
* a command is published only while the watchdog is OK.

The node's timers (failsafe check at ``failsafe_rate_hz``, diagnostics every
``diagnostics_period_s``) tick on the bag's log time, starting at the first message; the
node's clock is the log time (``ros2 bag record`` logs the arrival time). Hover commands are
not produced: they are the node's fallback output, not the policy's (they are counted).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lnn_ros.bag.errors import BagError
from lnn_ros.bundle import Bundle
from lnn_ros.engine import Engine, EngineConfig, SessionConfig
from lnn_ros.ros.params import NodeParams
from lnn_ros.runtime import (
    Command,
    ImageFrame,
    ImuSample,
    PolicyRunner,
    RateMeter,
    RollingWindow,
    Stream,
    Watchdog,
    WatchdogStatus,
)

NS_PER_S = 1_000_000_000
NODE_NAME = "lnn_node"


def node_params(bundle: Path, params_file: Path | None = None, node_name: str = NODE_NAME) -> NodeParams:
    """The node's parameters: its defaults, overridden by a ``ros2`` parameter YAML file if given.

    The file may hold ``/**:`` or ``<node_name>:`` sections with ``ros__parameters``; its
    ``model_path`` is ignored (the bundle passed to replay is used).

    Raises:
        BagError: the file cannot be read or holds invalid values.
    """
    values: dict[str, Any] = {}
    if params_file is not None:
        import yaml

        try:
            data = yaml.safe_load(Path(params_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise BagError(f"Cannot read node parameter file {str(params_file)!r}: {exc}") from None
        if not isinstance(data, dict):
            raise BagError(f"Node parameter file {str(params_file)!r} must be a mapping of node names, got {type(data).__name__}.")
        sections = [data.get(key) for key in ("/**", node_name, f"/{node_name}")]
        sections = [s["ros__parameters"] for s in sections if isinstance(s, dict) and isinstance(s.get("ros__parameters"), dict)]
        if not sections:
            raise BagError(
                f"Node parameter file {str(params_file)!r} has no '/**' or {node_name!r} section with ros__parameters; "
                f"it has {sorted(map(str, data))}."
            )
        for section in sections:
            values.update(section)
        values.pop("use_sim_time", None)  # read by rclpy, not by the node's own parameters
    values["model_path"] = str(bundle)
    from lnn_ros.errors import LnnRosError

    try:
        return NodeParams.from_values(values)
    except LnnRosError as exc:
        raise BagError(f"Node parameter file {str(params_file)!r}: {exc}") from None


def engine_config(params: NodeParams) -> EngineConfig:
    """The engine settings the node builds from its parameters."""
    return EngineConfig(
        session=SessionConfig(intra_op_threads=params.intra_op_threads, providers=params.execution_providers),
        max_gap_s=params.max_gap_s or None,
    )


class LiveHandling:
    """One node's message handling (see the module docstring) on bag time.

    Args:
        bundle: the loaded bundle.
        params: the node's parameters.
        on_diagnostics: called with ``(stamp_ns, report)`` at every diagnostics tick.

    Raises:
        BagError: the bundle reads ``vector`` features, which the node cannot feed either.
    """

    def __init__(
        self,
        bundle: Bundle,
        params: NodeParams,
        on_diagnostics: Callable[[int, Any], None] | None = None,
    ) -> None:
        self.bundle = bundle
        self.params = params
        self.runner = PolicyRunner(Engine(bundle, engine_config(params)))
        streams = self.runner.streams
        if Stream.VECTOR in streams:
            raise BagError(
                f"Bundle {str(bundle.path)!r} reads 'vector' features, which neither lnn_node nor replay can take "
                "from a bag; use a bundle whose features come from the imu and camera."
            )
        self.now_ns = 0
        self.watchdog = Watchdog([s.value for s in streams], params.stale_timeout_s, lambda: self.now_ns)
        window = params.stats_window
        self.latency_s = RollingWindow(window)
        self.age_s = RollingWindow(window)
        self.frame_latency_s = RollingWindow(window)
        self.rates = {s.value: RateMeter(max(window, 2)) for s in streams}
        self.commands_published = 0
        self.commands_withheld = 0  # computed while the watchdog was not OK, or dropped by a recovery
        self.hover_ticks = 0  # failsafe ticks: the node would have published hover then
        self._on_diagnostics = on_diagnostics
        self._failsafe_period_ns = int(round(NS_PER_S / params.failsafe_rate_hz))
        self._diagnostics_period_ns = int(round(params.diagnostics_period_s * NS_PER_S))
        self._next_failsafe_ns: int | None = None
        self._next_diagnostics_ns: int | None = None
        try:  # the report builder lives with the node; it needs diagnostic_msgs importable
            from lnn_ros.ros.diagnostics import build_report
        except ImportError as exc:
            self._build_report: Callable[..., Any] | None = None
            self.diagnostics_unavailable: str | None = f"{type(exc).__name__}: {exc}"
        else:
            self._build_report = build_report
            self.diagnostics_unavailable = None

    # ------------------------------------------------------------------ time
    def advance(self, now_ns: int) -> None:
        """Run the timers that fire up to ``now_ns`` (the next message's log time) and set the clock."""
        if self._next_failsafe_ns is None or self._next_diagnostics_ns is None:
            self._next_failsafe_ns = now_ns + self._failsafe_period_ns
            self._next_diagnostics_ns = now_ns + self._diagnostics_period_ns
        while min(self._next_failsafe_ns, self._next_diagnostics_ns) <= now_ns:
            if self._next_failsafe_ns <= self._next_diagnostics_ns:
                self.now_ns = self._next_failsafe_ns
                if self.watchdog.check() is not WatchdogStatus.OK:
                    self.hover_ticks += 1
                self._next_failsafe_ns += self._failsafe_period_ns
            else:
                self.now_ns = self._next_diagnostics_ns
                self.report(self.now_ns)
                self._next_diagnostics_ns += self._diagnostics_period_ns
        self.now_ns = max(self.now_ns, now_ns)

    # ------------------------------------------------------------------ messages
    def on_imu(self, sample: ImuSample) -> Command | None:
        """Handle one IMU message (the bundle must read the IMU); returns the published command."""
        start = time.perf_counter_ns()
        return self._handle(Stream.IMU, self.runner.on_imu(sample), start)

    def on_image(self, frame: ImageFrame) -> Command | None:
        """Handle one camera frame (the bundle must read the camera); returns the published command."""
        start = time.perf_counter_ns()
        encoded = self.runner.counters.frames_encoded
        command = self.runner.on_image(frame)
        if self.runner.counters.frames_encoded != encoded:
            self.frame_latency_s.add((time.perf_counter_ns() - start) / NS_PER_S)
        return self._handle(Stream.CAMERA, command, start)

    def _handle(self, stream: Stream, command: Command | None, start_ns: int) -> Command | None:
        now = self.now_ns
        self.rates[stream.value].tick(now)
        if not self.runner.last_outcome.valid:
            return None
        if self.watchdog.feed(stream.value, now):
            self.runner.reset()
            self.commands_withheld += command is not None
            return None
        if command is None:
            return None
        if self.watchdog.check(now) is not WatchdogStatus.OK:
            self.commands_withheld += 1
            return None
        self.commands_published += 1
        self.age_s.add((now - command.stamp_ns) / NS_PER_S)
        self.latency_s.add((time.perf_counter_ns() - start_ns) / NS_PER_S)
        return command

    # ------------------------------------------------------------------ diagnostics
    def report(self, now_ns: int) -> Any:
        """Build the node's diagnostics report at ``now_ns`` and pass it to ``on_diagnostics``.

        Returns None (and reports nothing) if the report builder cannot be imported.
        """
        build_report = self._build_report
        if build_report is None:
            return None
        period = self.params.diagnostics_period_s
        report = build_report(
            status=self.watchdog.check(),
            stale_streams=self.watchdog.stale_streams(now_ns),
            failsafe_entries=self.watchdog.failsafe_entries,
            recoveries=self.watchdog.recoveries,
            latency_s=self.latency_s.summary(),
            frame_latency_s=self.frame_latency_s.summary() if Stream.CAMERA in self.runner.streams else None,
            age_s=self.age_s.summary(),
            rates_hz={name: meter.rate_hz(now_ns, period) for name, meter in self.rates.items()},
            counters=self.runner.counters_dict(),
            commands_published=self.commands_published,
            hover_published=self.hover_ticks,
            bundle_name=self.bundle.manifest.name,
            bundle_hash=self.bundle.digest,
            execution_provider=self.runner.engine.provider,
        )
        if self._on_diagnostics is not None:
            self._on_diagnostics(now_ns, report)
        return report
