"""Declared ROS parameters, shared by every lnn_ros node: a table of :class:`ParamSpec` and its checks.

A node keeps one table (``PARAMETERS``, a tuple of :class:`ParamSpec`) and a frozen dataclass
of the values; :func:`check_values` checks a mapping of values against the table (what a
parameter file or a replay reads), :func:`declare_and_read` declares the table on a live
rclpy node, read-only with its ranges in the ``ParameterDescriptor``, and returns what the
node got (defaults, parameter files, ``-p name:=value``) for the same checks.

Only :func:`descriptor` and :func:`declare_and_read` use rclpy, which they import when
called, so this module (and every parameter table built on it) imports without ROS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from lnn_ros.errors import LnnRosError
from lnn_ros.ros.errors import NodeConfigError

if TYPE_CHECKING:
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.node import Node

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

    def check(self, value: Any, error: type[LnnRosError] = NodeConfigError) -> Any:
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


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The read-only ``ParameterDescriptor`` of ``spec``: type, description, range or choices."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    ros_type = {
        ParamType.BOOL: ParameterType.PARAMETER_BOOL,
        ParamType.INTEGER: ParameterType.PARAMETER_INTEGER,
        ParamType.DOUBLE: ParameterType.PARAMETER_DOUBLE,
        ParamType.STRING: ParameterType.PARAMETER_STRING,
        ParamType.STRING_ARRAY: ParameterType.PARAMETER_STRING_ARRAY,
    }[spec.type]
    result = ParameterDescriptor(name=spec.name, type=ros_type, description=spec.description, read_only=True)
    if spec.choices is not None:
        result.additional_constraints = f"one of {list(spec.choices)}"
    if spec.low is not None and spec.high is not None:
        if spec.type is ParamType.INTEGER:
            result.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
        else:
            result.floating_point_range = [
                FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
            ]
    return result


def declare_and_read(
    node: Node, specs: Sequence[ParamSpec], error: type[LnnRosError] = NodeConfigError
) -> dict[str, Any]:
    """Declare every parameter of ``specs`` on ``node`` (read-only) and return their values by name.

    rclpy itself refuses a value of another type than the declared one and a number outside
    the declared range (raised here as ``error``); pass what it accepted to the node's
    ``from_values`` (:func:`check_values`) for the remaining checks (choices, conversions).

    Raises:
        NodeConfigError (or ``error``): a value of the wrong type or out of range.
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values = {}
    for spec in specs:
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
        except InvalidParameterTypeException as exc:
            raise error(f"Parameter {spec.name!r} must be {spec.type.label}: {exc.args[0]}.") from None
        except InvalidParameterValueException as exc:
            raise error(f"Parameter {spec.name!r} is invalid: {exc.args[0]}.") from None
    return values
