"""``launch/sim_demo.launch.xml`` and ``config/sim_drone.yaml``: what is specific to the simulator node.

The checks every launch file and every node gets (console scripts, files, each node's parameter
names and values against its own table, remaps, default parameter files) are in
``test_launch_files.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_launch_files import LaunchFile, console_scripts, parameter_file_values

from lnn_ros.sim.errors import SimError
from lnn_ros.sim.ros.params import SimNodeParams
from lnn_ros.sim.world.config import ScenarioVariant

REPO = Path(__file__).resolve().parent.parent
LAUNCH = REPO / "launch" / "sim_demo.launch.xml"


def test_default_parameter_file_is_a_valid_simulator_configuration() -> None:
    values = parameter_file_values(REPO / "config" / "sim_drone.yaml", "sim_drone_node")
    assert SimNodeParams.from_values(values).variant in {v.value for v in ScenarioVariant}


def test_launch_file_starts_simulator_and_node_with_declared_parameters() -> None:
    launch = LaunchFile.read(LAUNCH)
    for name in ("model", "seed", "variant", "use_sim_time"):
        assert name in launch.args, name
    nodes = {node.get("exec"): node for node in launch.root.iter("node")}
    assert set(nodes) == {"sim_drone_node", "lnn_node"}
    assert console_scripts()["sim_drone_node"] == "lnn_ros.sim.ros.node:main"
    sim = nodes["sim_drone_node"]
    values: dict[str, Any] = {}
    for param in sim.findall("param"):
        if param.get("from"):
            values.update(parameter_file_values(Path(launch.resolve(param.get("from", ""))), "sim_drone_node"))
        else:
            values[param.get("name", "")] = yaml.safe_load(launch.resolve(param.get("value", "")))
    assert SimNodeParams.from_values(values).seed == int(launch.args["seed"] or 0)
    assert sim.get("on_exit") == "shutdown"  # the launch ends with the episode
    node = nodes["lnn_node"]
    params = {p.get("name"): p.get("value") for p in node.findall("param") if p.get("name")}
    assert params["model_path"] == "$(var model)" and params["use_sim_time"] == "$(var use_sim_time)"
    assert Path(launch.resolve(params["model_path"])) == REPO / "models" / "drone_cfc"


def test_parameter_values_are_checked() -> None:
    with pytest.raises(SimError, match="variant"):
        SimNodeParams.from_values({"variant": "foggy"})
    with pytest.raises(SimError, match="deadline_ms"):
        SimNodeParams.from_values({"deadline_ms": 0.0})
    with pytest.raises(SimError, match="Unknown sim_drone_node parameters"):
        SimNodeParams.from_values({"deadline": 5.0})
