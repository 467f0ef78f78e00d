"""Declaring a parameter table (:mod:`lnn_ros.node_spec.param_table`) on a live rclpy node."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from lnn_ros.errors import LnnRosError
from lnn_ros.node_spec.errors import NodeConfigError
from lnn_ros.node_spec.param_table import ParamSpec, ParamType


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The read-only ``ParameterDescriptor`` of ``spec``: type, description, range or choices."""
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
    values = {}
    for spec in specs:
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
        except InvalidParameterTypeException as exc:
            raise error(f"Parameter {spec.name!r} must be {spec.type.label}: {exc.args[0]}.") from None
        except InvalidParameterValueException as exc:
            raise error(f"Parameter {spec.name!r} is invalid: {exc.args[0]}.") from None
    return values
