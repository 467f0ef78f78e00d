"""The node's parameters for replay: ``lnn_node``'s defaults, overridden by its ``ros2`` parameter YAML.

Replay reads the same parameter file the node is launched with, so that both run
:class:`~lnn_ros.runtime.LiveLoop` and the engine with the same settings (stale timeout,
statistics window, diagnostics period, failsafe rate, engine threads and providers, frame id).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lnn_ros.bag.errors import BagError
from lnn_ros.errors import LnnRosError
from lnn_ros.ros.params import NodeParams

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
    try:
        return NodeParams.from_values(values)
    except LnnRosError as exc:
        raise BagError(f"Node parameter file {str(params_file)!r}: {exc}") from None
