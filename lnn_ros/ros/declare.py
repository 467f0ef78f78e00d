"""Declaring a parameter table (:mod:`lnn_ros.node_spec.param_table`) on a live rclpy node.

:func:`declare_and_read` first refuses the names the node was given (``-p name:=value``,
``--params-file``) that the table does not declare, through the same
:func:`~lnn_ros.node_spec.param_table.check_names` that checks a parameter file in replay, so a
misspelt parameter is a FATAL start-up error with a "did you mean", never a silent default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from lnn_ros.errors import LnnRosError
from lnn_ros.node_spec.errors import NodeConfigError
from lnn_ros.node_spec.param_table import AUTOMATIC_PARAMETERS, ParamSpec, ParamType, check_names


def descriptor(spec: ParamSpec, read_only: bool = True) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` of ``spec``: type, description, range or choices."""
    ros_type = {
        ParamType.BOOL: ParameterType.PARAMETER_BOOL,
        ParamType.INTEGER: ParameterType.PARAMETER_INTEGER,
        ParamType.DOUBLE: ParameterType.PARAMETER_DOUBLE,
        ParamType.STRING: ParameterType.PARAMETER_STRING,
        ParamType.STRING_ARRAY: ParameterType.PARAMETER_STRING_ARRAY,
    }[spec.type]
    result = ParameterDescriptor(name=spec.name, type=ros_type, description=spec.description, read_only=read_only)
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


def parameter_overrides(node: Node) -> list[str] | None:
    """The names of the parameters ``node`` was given (``-p``, ``--params-file``), or None if unknown.

    rclpy keeps them in ``Node._parameter_overrides`` (Humble through Rolling); it has no public
    accessor, so an rclpy without the attribute gives None and the caller logs that it cannot check.
    """
    overrides = getattr(node, "_parameter_overrides", None)
    return None if overrides is None else [str(name) for name in overrides]


def declare_and_read(
    node: Node,
    specs: Sequence[ParamSpec],
    error: type[LnnRosError] = NodeConfigError,
    *,
    read_only: bool = True,
) -> dict[str, Any]:
    """Declare every parameter of ``specs`` on ``node`` and return their values by name.

    The names the node was given that the table does not declare are refused first (as in a
    parameter file); rclpy itself refuses a value of another type than the declared one and a
    number outside the declared range (raised here as ``error``); pass what it accepted to the
    node's ``from_values`` (:func:`~lnn_ros.node_spec.param_table.check_values`) for the rest.

    Args:
        node: the node to declare on.
        specs: its parameter table.
        error: the exception class raised.
        read_only: declare read-only (a managed node leaves them writable while unconfigured).

    Raises:
        NodeConfigError (or ``error``): an unknown name, a value of the wrong type or out of range.
    """
    overrides = parameter_overrides(node)
    if overrides is None:
        node.get_logger().warning("This rclpy does not expose the parameters given; misspelt names are not checked.")
    else:
        check_names(specs, overrides, node.get_name(), error, AUTOMATIC_PARAMETERS)
    values = {}
    for spec in specs:
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default, descriptor(spec, read_only)).value
        except InvalidParameterTypeException as exc:
            hint = ""
            if spec.type is ParamType.STRING:
                hint = f" A value that looks like a number needs quotes (-p '{spec.name}:=\"2024\"') or type=\"str\" in a launch file."
            raise error(f"Parameter {spec.name!r} must be {spec.type.label}: {exc.args[0]}.{hint}") from None
        except InvalidParameterValueException as exc:
            raise error(f"Parameter {spec.name!r} is invalid: {exc.args[0]}.") from None
    return values
