"""``lnn_node``'s parameters: names, types, defaults, ranges and descriptions, without rclpy.

:data:`PARAMETERS` is the one table both executables (``lnn_node``, ``lnn_lifecycle_node``)
declare from (``ParameterDescriptor`` ranges built from it, :mod:`lnn_ros.ros.declare`) and
that replay reads parameter files with (:meth:`NodeParams.from_params_file`): an unknown or
misspelt name is refused the same way in both. :data:`DECLARED_PARAMETERS` lists every name a
parameter file may set. ``lnn_node`` reads the values once, at start-up, into the frozen
:class:`NodeParams` (declared read-only); ``lnn_lifecycle_node`` reads them at every
*configure* (writable only while unconfigured).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lnn_ros.engine import EngineConfig, SessionConfig
from lnn_ros.engine.session import KNOWN_PROVIDERS, PROVIDER_ALIASES
from lnn_ros.node_spec.errors import NodeConfigError
from lnn_ros.node_spec.interface import CAMERA_TRANSPORTS, EXECUTORS, NODE_NAME, check_streams_fed
from lnn_ros.node_spec.param_table import (
    AUTOMATIC_PARAMETERS,
    QOS_RELIABILITY,
    ParamSpec,
    ParamType,
    check_values,
    params_file_values,
)
from lnn_ros.runtime.factory import build_live_loop
from lnn_ros.runtime.live import FailsafeAction, LiveConfig, LiveLoop

__all__ = [
    "AUTOMATIC_PARAMETERS",
    "AUTOSTART",
    "DECLARED_PARAMETERS",
    "DEFAULT_COMMAND_FRAME",
    "PARAMETERS",
    "PROVIDER_CHOICES",
    "QOS_RELIABILITY",
    "NodeParams",
    "ParamSpec",
    "ParamType",
]

PROVIDER_CHOICES = tuple(PROVIDER_ALIASES) + KNOWN_PROVIDERS

DEFAULT_COMMAND_FRAME = "base_stabilized"
"""The frame of ``cmd_vel``: origin at the vehicle, x forward along its heading, y left, z up
(gravity-aligned, no roll or pitch). Not REP-103's ``base_link``, which tilts with the body;
named as hector_localization names the same frame (docs/ros.md, "The command frame")."""


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", ParamType.STRING, "", "Bundle folder (the one holding manifest.yaml). Required."),
    ParamSpec(
        "command_frame_id", ParamType.STRING, DEFAULT_COMMAND_FRAME,
        "header.frame_id of cmd_vel: a level frame turned with the vehicle's heading (x forward, y left, z up), "
        "not the body frame base_link (REP-103), which tilts with the vehicle.",
    ),
    ParamSpec(
        "command_rate_hz", ParamType.DOUBLE, 0.0,
        "Publish policy commands at most at this rate (decimation by command stamp; the policy still steps "
        "on every message); 0 = one command per policy step.",
        low=0.0, high=10000.0,
    ),
    ParamSpec(
        "stale_timeout_s", ParamType.DOUBLE, 0.5,
        "A required input stream with no valid message for this long puts the node in failsafe (hover).",
        low=0.01, high=60.0,
    ),
    ParamSpec(
        "failsafe_rate_hz", ParamType.DOUBLE, 20.0,
        "Rate of the zero (hover) command while in failsafe; PX4 offboard needs more than 2 Hz.",
        low=1.0, high=1000.0,
    ),
    ParamSpec(
        "diagnostics_period_s", ParamType.DOUBLE, 1.0, "Period of the /diagnostics report.", low=0.1, high=60.0
    ),
    ParamSpec(
        "input_qos_reliability", ParamType.STRING, "best_effort",
        "Reliability of the imu and camera subscriptions (sensor data QoS is best_effort).",
        choices=QOS_RELIABILITY,
    ),
    ParamSpec(
        "input_qos_depth", ParamType.INTEGER, 5,
        "History depth (keep last) of the imu and camera subscriptions.", low=1, high=1000,
    ),
    ParamSpec(
        "execution_providers", ParamType.STRING_ARRAY, ["cpu"],
        "onnxruntime execution providers in order of preference; unavailable ones are skipped, CPU is the fallback.",
        choices=PROVIDER_CHOICES,
    ),
    ParamSpec(
        "tensorrt_engine_cache_path", ParamType.STRING, "",
        "TensorRT execution provider: folder where built engines are cached and reused across starts "
        "('' = rebuild at every start). Ignored by the other providers.",
    ),
    ParamSpec(
        "tensorrt_fp16", ParamType.BOOL, False,
        "TensorRT execution provider: allow FP16 kernels (faster on Jetson; check the bundle's outputs with "
        "lnn-ros replay first). Ignored by the other providers.",
    ),
    ParamSpec(
        "intra_op_threads", ParamType.INTEGER, 1,
        "onnxruntime threads per operator (1 keeps latency steady; 0 = onnxruntime default).", low=0, high=256,
    ),
    ParamSpec(
        "max_gap_s", ParamType.DOUBLE, 0.0,
        "A gap between driver stamps above this resets the state; 0 takes the manifest's dt.max_gap_s.",
        low=0.0, high=86400.0,
    ),
    ParamSpec(
        "verify_bundle_hashes", ParamType.BOOL, True, "Check the SHA-256 of every bundle file at start-up."
    ),
    ParamSpec(
        "stats_window", ParamType.INTEGER, 1000,
        "Samples kept for the latency and age percentiles in /diagnostics.", low=10, high=1_000_000,
    ),
    # Failsafe semantics an autopilot expects (docs/failsafe.md).
    ParamSpec(
        "max_command_gap_s", ParamType.DOUBLE, 0.15,
        "Longest silence of cmd_vel while flying: the last command is repeated (held) to fill it, well under "
        "PX4's offboard-loss timeout (COM_OF_LOSS_T, 0.5-1 s). At least 1 / failsafe_rate_hz.",
        low=0.001, high=10.0,
    ),
    ParamSpec(
        "failsafe_hover_s", ParamType.DOUBLE, 2.0,
        "With failsafe_action 'stop': hover this long without valid inputs, then stop publishing.",
        low=0.0, high=3600.0,
    ),
    ParamSpec(
        "failsafe_action", ParamType.STRING, "stop",
        "After failsafe_hover_s of hover: 'stop' publishing (the autopilot's offboard-loss failsafe, e.g. land "
        "or return, takes over) or keep on 'hover'.",
        choices=("stop", "hover"),
    ),
    ParamSpec(
        "max_age_s", ParamType.DOUBLE, 0.5,
        "An imu / camera message stamped more than this before the node clock is dropped (counted "
        "<stream>_too_old); 0 = off.", low=0.0, high=86400.0,
    ),
    ParamSpec(
        "max_future_s", ParamType.DOUBLE, 0.1,
        "An imu / camera message stamped more than this after the node clock is dropped (counted "
        "<stream>_from_future); 0 = off.", low=0.0, high=86400.0,
    ),
    ParamSpec(
        "time_base_tolerance_s", ParamType.DOUBLE, 0.1,
        "A stamp this far ahead of its stream's own time base is dropped (<stream>_from_future); offsets "
        "switching by more than this mean several time bases on one topic (<stream>_mixed_time_base, ERROR); 0 = off.",
        low=0.0, high=60.0,
    ),
    ParamSpec(
        "imu_rate_hz", ParamType.DOUBLE, 0.0,
        "Expected IMU rate for imu_missed (messages lost, from stamp gaps); 0 = learnt from the first stamps.",
        low=0.0, high=100000.0,
    ),
    ParamSpec(
        "camera_rate_hz", ParamType.DOUBLE, 0.0,
        "Expected camera rate for camera_missed (frames lost, from stamp gaps); 0 = learnt from the first stamps.",
        low=0.0, high=100000.0,
    ),
    ParamSpec(
        "camera_transport", ParamType.STRING, "raw",
        "raw: sensor_msgs/Image on camera/image_raw; compressed: sensor_msgs/CompressedImage (jpeg / png) on "
        "camera/image_raw/compressed (image_transport's naming). The bundle's preprocess must accept the format.",
        choices=CAMERA_TRANSPORTS,
    ),
    ParamSpec(
        "executor", ParamType.STRING, "single_threaded",
        "rclpy executor the process spins, chosen at start-up: single_threaded (callbacks in a fixed order, "
        "camera before IMU, as replay feeds them) or events (rclpy.experimental.EventsExecutor, Jazzy and later: "
        "less Python per message, callbacks in arrival order; Humble falls back to single_threaded with a log line).",
        choices=EXECUTORS,
    ),
)

DECLARED_PARAMETERS: tuple[str, ...] = tuple(spec.name for spec in PARAMETERS)
"""Every parameter name the node declares itself."""

AUTOSTART = ParamSpec(
    "autostart", ParamType.BOOL, False,
    "lnn_lifecycle_node only: configure and activate at start-up (a failed configure leaves it unconfigured).",
)
"""The one parameter ``lnn_lifecycle_node`` declares on top of :data:`PARAMETERS` (read once, at start-up)."""


@dataclass(frozen=True)
class NodeParams:
    """The node's parameters, read once at start-up (see :data:`PARAMETERS` for each meaning)."""

    model_path: str
    command_frame_id: str
    command_rate_hz: float
    stale_timeout_s: float
    failsafe_rate_hz: float
    diagnostics_period_s: float
    input_qos_reliability: str
    input_qos_depth: int
    execution_providers: tuple[str, ...]
    tensorrt_engine_cache_path: str
    tensorrt_fp16: bool
    intra_op_threads: int
    max_gap_s: float
    verify_bundle_hashes: bool
    stats_window: int
    max_command_gap_s: float
    failsafe_hover_s: float
    failsafe_action: str
    max_age_s: float
    max_future_s: float
    time_base_tolerance_s: float
    imu_rate_hz: float
    camera_rate_hz: float
    camera_transport: str = "raw"
    executor: str = "single_threaded"

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeParams:
        """Check every value against its spec; missing ones take the default.

        Raises:
            NodeConfigError: the first invalid value, or an empty ``model_path``.
        """
        checked = check_values(PARAMETERS, values, NODE_NAME)
        if not checked["model_path"]:
            raise NodeConfigError(
                "Parameter 'model_path' is empty; set it to a bundle folder, e.g. --ros-args -p model_path:=/path/to/bundle."
            )
        return cls(**checked)

    @classmethod
    def from_params_file(cls, path: str | Path | None, node_name: str = NODE_NAME, **overrides: Any) -> NodeParams:
        """The parameters a node called ``node_name`` gets from a ``ros2`` parameter YAML file.

        The file's ``/**``, ``<node_name>`` and ``/<node_name>`` sections (their
        ``ros__parameters``) apply in that order, then ``overrides`` (as ``-p name:=value``
        after ``--params-file`` would); the parameters rclpy declares itself
        (:data:`AUTOMATIC_PARAMETERS`) are left out. Without a file: the defaults and ``overrides``.
        Unknown names are refused as the node refuses them (:func:`~lnn_ros.node_spec.param_table.check_names`).

        Raises:
            NodeConfigError: the file cannot be read, has no section for the node, or holds unknown
                names or invalid values.
        """
        values: dict[str, Any] = {}
        if path is not None:
            values = params_file_values(Path(path), node_name)
        values.update(overrides)
        try:
            return cls.from_values(values)
        except NodeConfigError as exc:
            if path is None:
                raise
            raise NodeConfigError(f"Node parameter file {str(path)!r}: {exc}") from None

    def engine_config(self) -> EngineConfig:
        """The engine settings these parameters select."""
        return EngineConfig(
            session=SessionConfig(
                intra_op_threads=self.intra_op_threads,
                providers=self.execution_providers,
                tensorrt_cache_path=self.tensorrt_engine_cache_path,
                tensorrt_fp16=self.tensorrt_fp16,
            ),
            max_gap_s=self.max_gap_s or None,
        )

    def build_loop(self, now_ns: Callable[[], int]) -> LiveLoop:
        """Load ``model_path`` and build the node's :class:`LiveLoop` on the clock ``now_ns``.

        Raises:
            NodeConfigError: the bundle reads a stream the node cannot feed.
            BundleError, EngineError: the bundle does not load.
        """
        loop = build_live_loop(
            self.model_path,
            live=self.live_config(),
            now_ns=now_ns,
            engine=self.engine_config(),
            verify_hashes=self.verify_bundle_hashes,
        )
        check_streams_fed(loop.runner.streams, loop.runner.engine.bundle.path)
        return loop

    def live_config(self) -> LiveConfig:
        """The watchdog, failsafe, stamp-check and statistics settings these parameters select.

        Raises:
            NodeConfigError: ``max_command_gap_s`` is shorter than the tick period ``1 / failsafe_rate_hz``.
        """
        try:
            return LiveConfig(
                stale_timeout_s=self.stale_timeout_s,
                stats_window=self.stats_window,
                rate_window_s=self.diagnostics_period_s,
                tick_period_s=1.0 / self.failsafe_rate_hz,
                max_command_gap_s=self.max_command_gap_s,
                failsafe_hover_s=self.failsafe_hover_s,
                failsafe_action=FailsafeAction(self.failsafe_action),
                max_age_s=self.max_age_s,
                max_future_s=self.max_future_s,
                time_base_tolerance_s=self.time_base_tolerance_s,
                imu_rate_hz=self.imu_rate_hz,
                camera_rate_hz=self.camera_rate_hz,
            )
        except ValueError as exc:
            raise NodeConfigError(f"Parameters of {NODE_NAME}: {exc} Raise failsafe_rate_hz or max_command_gap_s.") from None

