"""The node's parameters: names, types, defaults, ranges and descriptions, without rclpy.

:data:`PARAMETERS` is the one table the node declares from (with ``ParameterDescriptor``
ranges built from it) and that the launch-file tests read: :data:`DECLARED_PARAMETERS` lists
every name a parameter file may set. The values are read once, at start-up, into the frozen
:class:`NodeParams`; the parameters are declared read-only, so later changes are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lnn_ros.engine import EngineConfig, SessionConfig
from lnn_ros.engine.session import KNOWN_PROVIDERS, PROVIDER_ALIASES
from lnn_ros.node_spec.errors import NodeConfigError
from lnn_ros.node_spec.interface import CAMERA_TRANSPORTS, NODE_NAME, check_streams_fed
from lnn_ros.node_spec.param_table import AUTOMATIC_PARAMETERS, QOS_RELIABILITY, ParamSpec, ParamType, check_values
from lnn_ros.runtime.factory import build_live_loop
from lnn_ros.runtime.live import LiveConfig, LiveLoop

__all__ = [
    "AUTOMATIC_PARAMETERS",
    "DECLARED_PARAMETERS",
    "PARAMETERS",
    "PROVIDER_CHOICES",
    "QOS_RELIABILITY",
    "NodeParams",
    "ParamSpec",
    "ParamType",
]

PROVIDER_CHOICES = tuple(PROVIDER_ALIASES) + KNOWN_PROVIDERS


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", ParamType.STRING, "", "Bundle folder (the one holding manifest.yaml). Required."),
    ParamSpec("frame_id", ParamType.STRING, "base_link", "header.frame_id of the published cmd_vel."),
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
    ParamSpec(
        "camera_transport", ParamType.STRING, "raw",
        "raw: sensor_msgs/Image on camera/image_raw; compressed: sensor_msgs/CompressedImage (jpeg / png) on "
        "camera/image_raw/compressed (image_transport's naming). The bundle's preprocess must accept the format.",
        choices=CAMERA_TRANSPORTS,
    ),
)

DECLARED_PARAMETERS: tuple[str, ...] = tuple(spec.name for spec in PARAMETERS)
"""Every parameter name the node declares itself."""


@dataclass(frozen=True)
class NodeParams:
    """The node's parameters, read once at start-up (see :data:`PARAMETERS` for each meaning)."""

    model_path: str
    frame_id: str
    stale_timeout_s: float
    failsafe_rate_hz: float
    diagnostics_period_s: float
    input_qos_reliability: str
    input_qos_depth: int
    execution_providers: tuple[str, ...]
    intra_op_threads: int
    max_gap_s: float
    verify_bundle_hashes: bool
    stats_window: int
    camera_transport: str = "raw"

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

        Raises:
            NodeConfigError: the file cannot be read, has no section for the node, or holds invalid values.
        """
        values: dict[str, Any] = {}
        if path is not None:
            values = _params_file_values(Path(path), node_name)
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
            session=SessionConfig(intra_op_threads=self.intra_op_threads, providers=self.execution_providers),
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
        """The watchdog and statistics settings these parameters select."""
        return LiveConfig(
            stale_timeout_s=self.stale_timeout_s, stats_window=self.stats_window, rate_window_s=self.diagnostics_period_s
        )


def _params_file_values(path: Path, node_name: str) -> dict[str, Any]:
    """The node's own parameters set by a ``ros2`` parameter file (see :meth:`NodeParams.from_params_file`)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise NodeConfigError(f"Cannot read node parameter file {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise NodeConfigError(
            f"Node parameter file {str(path)!r} must be a mapping of node names, got {type(data).__name__}."
        )
    found = [data.get(key) for key in ("/**", node_name, f"/{node_name}")]
    sections: list[dict[str, Any]] = [
        s["ros__parameters"] for s in found if isinstance(s, dict) and isinstance(s.get("ros__parameters"), dict)
    ]
    if not sections:
        raise NodeConfigError(
            f"Node parameter file {str(path)!r} has no '/**' or {node_name!r} section with ros__parameters; "
            f"it has {sorted(map(str, data))}."
        )
    values: dict[str, Any] = {}
    for section in sections:
        values.update(section)
    for name in AUTOMATIC_PARAMETERS:  # read by rclpy, not by the node's own parameters
        values.pop(name, None)
    return values
