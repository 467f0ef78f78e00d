"""Declared ROS parameters, shared by every lnn_ros node: a table of :class:`ParamSpec` and its checks.

A node keeps one table (``PARAMETERS``, a tuple of :class:`ParamSpec`) and a frozen dataclass
of the values; :func:`check_values` checks a mapping of values against the table (what a
parameter file or a replay reads); :func:`lnn_ros.ros.declare.declare_and_read` declares the
table on a live rclpy node and returns what the node got for the same checks. ROS-free.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from lnn_ros.errors import LnnRosError
from lnn_ros.node_spec.errors import NodeConfigError

AUTOMATIC_PARAMETERS: tuple[str, ...] = ("use_sim_time",)
"""Declared by rclpy for every node; a parameter file may set them too."""

QOS_RELIABILITY: tuple[str, ...] = ("best_effort", "reliable")
"""The QoS reliability names a ``*_qos_reliability`` parameter takes."""


class ParamType(Enum):
    """The ROS parameter types the nodes use."""

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

    def check(self, value: Any, error: builtins.type[LnnRosError] = NodeConfigError) -> Any:
        """Return ``value`` converted to the Python type of the field, or raise.

        Args:
            value: the value to check.
            error: the exception class raised (the node's own, e.g. ``SimError``).

        Raises:
            NodeConfigError (or ``error``): wrong type, outside the range or not one of the choices.
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
            raise error(f"Parameter {self.name!r} must be {kind.label}, got {value!r}.")
        if self.low is not None and self.high is not None and not self.low <= value <= self.high:
            raise error(f"Parameter {self.name!r} is {value!r} but must be in [{self.low:g}, {self.high:g}].")
        if self.choices is not None:
            for item in value if kind is ParamType.STRING_ARRAY else (value,):
                if item not in self.choices:
                    raise error(f"Parameter {self.name!r} has {item!r}; use one of {list(self.choices)}.")
        return value


def check_values(
    specs: Sequence[ParamSpec],
    values: Mapping[str, Any],
    node_name: str,
    error: type[LnnRosError] = NodeConfigError,
) -> dict[str, Any]:
    """Every parameter of ``specs`` checked, by name; a name missing from ``values`` takes its default.

    Args:
        specs: the node's parameter table.
        values: values by name (e.g. a parameter file's ``ros__parameters``).
        node_name: the node, for the message about unknown names.
        error: the exception class raised.

    Raises:
        NodeConfigError (or ``error``): a name the table does not declare, or the first invalid value.
    """
    known = [spec.name for spec in specs]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise error(f"Unknown {node_name} parameters {unknown}; known ones are {known}.")
    return {spec.name: spec.check(values.get(spec.name, spec.default), error) for spec in specs}
