"""Declared ROS parameters, shared by every lnn_ros node: a table of :class:`ParamSpec` and its checks.

A node keeps one table (``PARAMETERS``, a tuple of :class:`ParamSpec`) and a frozen dataclass
of the values. One code path checks the values wherever they come from: :func:`check_values`
checks a mapping of values against the table (a parameter file read by
:func:`params_file_values`, a replay); an unknown name is an error with a "did you mean"
(:func:`check_names`), which :func:`lnn_ros.ros.declare.declare_and_read` also applies to the
names a live rclpy node was given (``-p``, ``--params-file``) before it declares the table. ROS-free.
"""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
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


def check_names(
    specs: Sequence[ParamSpec],
    names: Iterable[str],
    node_name: str,
    error: type[LnnRosError] = NodeConfigError,
    also_known: Iterable[str] = (),
) -> None:
    """Refuse every name the table does not declare, suggesting the closest declared one.

    Args:
        specs: the node's parameter table.
        names: the names given (a parameter file's keys, the node's ``-p`` overrides).
        node_name: the node, for the message.
        error: the exception class raised.
        also_known: names that are not in the table but are fine (rclpy's own, e.g. ``use_sim_time``).

    Raises:
        NodeConfigError (or ``error``): naming the first unknown parameters and what was meant.
    """
    known = [spec.name for spec in specs]
    unknown = sorted(set(names) - set(known) - set(also_known))
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    raise error(
        f"Unknown {node_name} parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
        f"a misspelt parameter would be ignored, so {node_name} refuses to start. Known ones: {known}."
    )


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
        NodeConfigError (or ``error``): a name the table does not declare (:func:`check_names`),
            or the first invalid value.
    """
    check_names(specs, values, node_name, error)
    return {spec.name: spec.check(values.get(spec.name, spec.default), error) for spec in specs}


def params_file_values(path: Path, node_name: str, error: type[LnnRosError] = NodeConfigError) -> dict[str, Any]:
    """What a ``ros2`` parameter YAML file sets for a node called ``node_name``.

    The file's ``/**``, ``<node_name>`` and ``/<node_name>`` sections (their
    ``ros__parameters``) apply in that order; the parameters rclpy declares itself
    (:data:`AUTOMATIC_PARAMETERS`) are left out.

    Raises:
        NodeConfigError (or ``error``): the file cannot be read or has no section for the node.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error(f"Cannot read parameter file {str(path)!r}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise error(f"Parameter file {str(path)!r} must be a mapping of node names, got {type(data).__name__}.")
    sections = [data.get(key) for key in ("/**", node_name, f"/{node_name}")]
    found = [s["ros__parameters"] for s in sections if isinstance(s, dict) and isinstance(s.get("ros__parameters"), dict)]
    if not found:
        raise error(
            f"Parameter file {str(path)!r} has no '/**' or {node_name!r} section with ros__parameters; "
            f"it has {sorted(map(str, data))}."
        )
    values: dict[str, Any] = {}
    for section in found:
        values.update(section)
    for name in AUTOMATIC_PARAMETERS:  # read by rclpy, not by the node's own parameters
        values.pop(name, None)
    return values
