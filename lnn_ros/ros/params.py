"""The node's parameters: names, types, defaults, ranges and descriptions, without rclpy.

:data:`PARAMETERS` is the one table the node declares from (with ``ParameterDescriptor``
ranges built from it) and that the launch-file tests read: :data:`DECLARED_PARAMETERS` lists
every name a parameter file may set. The values are read once, at start-up, into the frozen
:class:`NodeParams`; the parameters are declared read-only, so later changes are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from lnn_ros.engine import EngineConfig, SessionConfig
from lnn_ros.engine.session import KNOWN_PROVIDERS, PROVIDER_ALIASES
from lnn_ros.ros.errors import NodeConfigError
from lnn_ros.runtime.live import LiveConfig

QOS_RELIABILITY = ("best_effort", "reliable")
PROVIDER_CHOICES = tuple(PROVIDER_ALIASES) + KNOWN_PROVIDERS


class ParamType(Enum):
    """The ROS parameter types the node uses."""

    BOOL = "bool"
    INTEGER = "integer"
    DOUBLE = "double"
    STRING = "string"
    STRING_ARRAY = "string_array"

    @property
    def label(self) -> str:
        """The type with its article, for error messages (``an integer``)."""
        return {"integer": "an integer", "string_array": "a list of strings"}.get(self.value, f"a {self.value}")


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    Attributes:
        name: parameter name.
        type: its ROS type.
        default: value when neither a parameter file nor the command line sets it.
        description: what it does (shown by ``ros2 param describe``).
        low, high: inclusive range of a number.
        choices: allowed strings (for a string array: allowed elements).
    """

    name: str
    type: ParamType
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> Any:
        """Return ``value`` converted to the Python type of the field, or raise.

        Raises:
            NodeConfigError: wrong type, outside the range or not one of the choices.
        """
        kind = self.type
        if kind is ParamType.BOOL:
            ok = isinstance(value, bool)
        elif kind is ParamType.INTEGER:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is ParamType.DOUBLE:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif kind is ParamType.STRING:
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
            value = tuple(value) if ok else value
        if not ok:
            raise NodeConfigError(f"Parameter {self.name!r} must be {kind.label}, got {value!r}.")
        if self.low is not None and self.high is not None and not self.low <= value <= self.high:
            raise NodeConfigError(
                f"Parameter {self.name!r} is {value!r} but must be in [{self.low:g}, {self.high:g}]."
            )
        if self.choices is not None:
            for item in value if kind is ParamType.STRING_ARRAY else (value,):
                if item not in self.choices:
                    raise NodeConfigError(f"Parameter {self.name!r} has {item!r}; use one of {list(self.choices)}.")
        return value


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
)

DECLARED_PARAMETERS: tuple[str, ...] = tuple(spec.name for spec in PARAMETERS)
"""Every parameter name the node declares itself."""

AUTOMATIC_PARAMETERS: tuple[str, ...] = ("use_sim_time",)
"""Declared by rclpy for every node; a parameter file may set them too."""


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

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeParams:
        """Check every value against its spec; missing ones take the default.

        Raises:
            NodeConfigError: the first invalid value, or an empty ``model_path``.
        """
        unknown = sorted(set(values) - set(DECLARED_PARAMETERS))
        if unknown:
            raise NodeConfigError(f"Unknown lnn_node parameters {unknown}; known ones are {list(DECLARED_PARAMETERS)}.")
        checked = {spec.name: spec.check(values.get(spec.name, spec.default)) for spec in PARAMETERS}
        if not checked["model_path"]:
            raise NodeConfigError(
                "Parameter 'model_path' is empty; set it to a bundle folder, e.g. --ros-args -p model_path:=/path/to/bundle."
            )
        return cls(**checked)

    def engine_config(self) -> EngineConfig:
        """The engine settings these parameters select."""
        return EngineConfig(
            session=SessionConfig(intra_op_threads=self.intra_op_threads, providers=self.execution_providers),
            max_gap_s=self.max_gap_s or None,
        )

    def live_config(self) -> LiveConfig:
        """The watchdog and statistics settings these parameters select."""
        return LiveConfig(
            stale_timeout_s=self.stale_timeout_s, stats_window=self.stats_window, rate_window_s=self.diagnostics_period_s
        )
