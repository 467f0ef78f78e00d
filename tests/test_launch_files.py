"""Static checks of every ``launch/*.launch.xml`` (``ros2 launch`` itself is not installable here).

Checked, for each launch file:

* it is well-formed XML with a ``<launch>`` root, and every ``$(var NAME)`` refers to an
  ``<arg>`` (or ``<let>``) of that file; substitutions are limited to ``var``,
  ``find-pkg-share``, ``env`` (with a default) and ``dirname`` so that paths can be resolved;
* every ``<node pkg="lnn_ros" exec=...>`` names a console script declared in setup.py whose
  ``module:function`` exists (setup.cfg installs console scripts in ``lib/lnn_ros``, where
  ``ros2 run``/``ros2 launch`` look);
* every ``<param from=...>`` and ``<include file=...>`` resolves (using the ``<arg>`` defaults,
  ``$(find-pkg-share lnn_ros)`` = this repository) to an existing file that setup.py's
  ``data_files`` installs into the package's share folder;
* for every lnn_ros node (:data:`NODES` maps each executable to its parameter module, which
  exposes ``PARAMETERS``, ``DECLARED_PARAMETERS`` and ``AUTOMATIC_PARAMETERS``: ``lnn_node``
  -> :mod:`lnn_ros.node_spec.params`, ``sim_drone_node`` -> :mod:`lnn_ros.sim.ros.params`): every key
  of its parameter files and every ``<param name=...>`` is a parameter the node declares (or
  one rclpy declares, ``use_sim_time``), literal values pass the node's own type/range check,
  and every ``<remap from=...>`` is one of the node's topics; its default parameter file in
  ``config/`` sets every declared parameter to its default;
* an ``<include>`` of an lnn_ros launch file passes only arguments that file declares, and
  every argument it requires.

Not checked: the rest of the launch grammar (attributes ``ros2 launch`` would reject),
parameters of other packages' executables, files of other packages, values that are only known at
launch time (``$(var model_path)``), and whether the bundle at ``model_path`` loads (the node
tests cover that).
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from lnn_ros.node_spec.errors import NodeConfigError
from lnn_ros.node_spec.interface import REMAPPABLE
from lnn_ros.node_spec.param_table import ParamSpec

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "lnn_ros"
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.xml"))
SUBSTITUTION = re.compile(r"\$\(([\w-]+)((?:\s+[^()\s]+)*)\)")
CLI_SCRIPT = "lnn-ros"  # the one console script that is not a node


@dataclass(frozen=True)
class NodeTable:
    """What the checks know of one lnn_ros node executable.

    Attributes:
        module: its parameter module (``PARAMETERS``, ``DECLARED_PARAMETERS``, ``AUTOMATIC_PARAMETERS``).
        defaults_file: its parameter file in ``config/`` (every declared parameter at its default).
        remappable: the topic names a launch file may remap on it.
    """

    module: str
    defaults_file: str
    remappable: tuple[str, ...]

    @property
    def parameters(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def names(self) -> set[str]:
        """Every name a parameter file may set for the node."""
        return set(self.parameters.DECLARED_PARAMETERS) | set(self.parameters.AUTOMATIC_PARAMETERS)

    @property
    def specs(self) -> dict[str, ParamSpec]:
        return {spec.name: spec for spec in self.parameters.PARAMETERS}


NODES: dict[str, NodeTable] = {
    "lnn_node": NodeTable("lnn_ros.node_spec.params", "config/lnn_node.yaml", REMAPPABLE),
    # The simulator publishes and subscribes the same relative topics (lnn_ros.node_spec.interface).
    "sim_drone_node": NodeTable("lnn_ros.sim.ros.params", "config/sim_drone.yaml", REMAPPABLE),
}


class Unresolvable(Exception):
    """A value that is only known at launch time (an argument without default, another package)."""


# ---------------------------------------------------------------------- setup.py
def _setup_call() -> ast.Call:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            return node
    raise AssertionError("setup.py has no setup(...) call.")


def console_scripts() -> dict[str, str]:
    """``name -> module:function`` of the installed distribution (pyproject.toml's ``[project.scripts]``)."""
    from importlib.metadata import distribution

    return {ep.name: ep.value for ep in distribution("lnn_ros").entry_points if ep.group == "console_scripts"}


def installed_share_patterns() -> list[str]:
    """The repo-relative glob patterns setup.py's ``data_files`` install (``glob("config/*.yaml")``, ...)."""
    keyword = next(k for k in _setup_call().keywords if k.arg == "data_files")
    return [
        node.args[0].value
        for node in ast.walk(keyword.value)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "glob" and isinstance(node.args[0], ast.Constant)
    ] + ["package.xml"]


def target_exists(target: str) -> bool:
    module, _, function = target.partition(":")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    tree = ast.parse(Path(spec.origin).read_text())
    return any(isinstance(node, ast.FunctionDef) and node.name == function for node in tree.body)


# ---------------------------------------------------------------------- launch files
@dataclass
class LaunchFile:
    path: Path
    root: ET.Element
    args: dict[str, str | None]  # name -> default (None: required)

    @classmethod
    def read(cls, path: Path) -> LaunchFile:
        root = ET.parse(path).getroot()
        assert root.tag == "launch", f"{path.name}: root element is <{root.tag}>, not <launch>."
        args: dict[str, str | None] = {}
        for element in root.iter():
            if element.tag in ("arg", "let") and element.get("name") and element not in _include_args(root):
                args[element.get("name")] = element.get("default", element.get("value"))
        return cls(path, root, args)

    def resolve(self, text: str, args: dict[str, str | None] | None = None) -> str:
        """Substitute ``$(...)``; raises Unresolvable for launch-time values."""
        values = self.args if args is None else args

        def substitute(match: re.Match[str]) -> str:
            kind, rest = match.group(1), match.group(2).split()
            if kind == "var":
                if rest[0] not in values:
                    raise AssertionError(f"{self.path.name}: $(var {rest[0]}) has no <arg name={rest[0]!r}>.")
                value = values[rest[0]]
                if value is None:
                    raise Unresolvable(f"$(var {rest[0]}) has no default")
                return self.resolve(value, values)
            if kind == "find-pkg-share":
                if rest[0] != PACKAGE:
                    raise Unresolvable(f"package {rest[0]}")
                return str(REPO)
            if kind == "env":
                if len(rest) < 2:
                    raise Unresolvable(f"$(env {rest[0]}) has no default")
                return rest[1]
            if kind == "dirname":
                return str(self.path.parent)
            raise AssertionError(
                f"{self.path.name}: substitution $({kind} ...) is not understood by tests/test_launch_files.py; "
                "use var, find-pkg-share, env or dirname, or teach the test the new one."
            )

        return SUBSTITUTION.sub(substitute, text)

    def used_vars(self) -> set[str]:
        names = set()
        for element in self.root.iter():
            for value in element.attrib.values():
                names |= {m.group(2).split()[0] for m in SUBSTITUTION.finditer(value) if m.group(1) == "var"}
        return names


def _include_args(root: ET.Element) -> list[ET.Element]:
    return [arg for include in root.iter("include") for arg in include.findall("arg")]


def shared_file(launch: LaunchFile, text: str) -> Path | None:
    """Resolve a file reference; None if it is only known at launch time."""
    try:
        resolved = Path(launch.resolve(text))
    except Unresolvable:
        return None
    assert resolved.is_file(), f"{launch.path.name}: {text!r} resolves to {resolved}, which does not exist."
    if resolved.is_relative_to(REPO) and text.startswith(f"$(find-pkg-share {PACKAGE})"):
        relative = resolved.relative_to(REPO).as_posix()
        patterns = installed_share_patterns()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), (
            f"{launch.path.name}: {relative} is not installed into share/{PACKAGE} by setup.py data_files {patterns}."
        )
    return resolved


def flatten(parameters: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in parameters.items():
        name = f"{prefix}{key}"
        flat.update(flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return flat


def parameter_file_values(path: Path, node_name: str) -> dict[str, Any]:
    """The parameters a YAML file sets for ``node_name`` (``/**`` and name-matching sections)."""
    data = yaml.safe_load(path.read_text()) or {}
    assert isinstance(data, dict), f"{path.name}: must be a mapping of node name -> ros__parameters."
    values: dict[str, Any] = {}
    for key, section in data.items():
        assert isinstance(section, dict) and set(section) == {"ros__parameters"}, (
            f"{path.name}: section {key!r} must hold exactly 'ros__parameters', got {sorted(section or {})}."
        )
        if key in ("/**", node_name, f"/{node_name}") or key.endswith(f"/{node_name}"):
            values.update(flatten(section["ros__parameters"]))
    return values


def check_node_parameters(executable: str, where: str, values: dict[str, Any]) -> None:
    """Every name is one the node declares; every literal value passes the node's own check."""
    table = NODES[executable]
    names, specs = table.names, table.specs
    for name, value in values.items():
        assert name in names, f"{where}: {executable} declares no parameter {name!r}; it declares {sorted(names)}."
        if name in specs and not (isinstance(value, str) and "$(" in value):
            specs[name].check(value)


# ---------------------------------------------------------------------- tests
def test_there_is_a_launch_file_for_the_node() -> None:
    assert (REPO / "launch" / "lnn_node.launch.xml") in LAUNCH_FILES


def test_every_node_executable_has_a_parameter_table() -> None:
    nodes = {name for name in console_scripts() if name != CLI_SCRIPT}
    assert set(NODES) == nodes, f"console scripts {sorted(nodes)} vs parameter tables {sorted(NODES)}"
    launched = {node.get("exec") for path in LAUNCH_FILES for node in LaunchFile.read(path).root.iter("node")}
    assert set(NODES) <= launched, f"nodes no launch file starts: {sorted(set(NODES) - launched)}"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file(path: Path) -> None:
    launch = LaunchFile.read(path)
    undeclared = launch.used_vars() - set(launch.args)
    assert not undeclared, f"{path.name}: $(var ...) without <arg>: {sorted(undeclared)}."
    scripts = console_scripts()
    for node in launch.root.iter("node"):
        pkg, exe = node.get("pkg"), node.get("exec")
        assert pkg and exe, f"{path.name}: <node> needs pkg and exec, got {node.attrib}."
        if pkg != PACKAGE:
            continue
        assert exe in scripts, f"{path.name}: exec {exe!r} is not a console script in setup.py ({sorted(scripts)})."
        assert target_exists(scripts[exe]), f"{path.name}: {exe} -> {scripts[exe]} does not exist."
        assert exe in NODES, f"{path.name}: no parameter table for {exe!r}; add its parameter module to NODES."
        try:
            node_name = launch.resolve(node.get("name", exe))
        except Unresolvable:
            node_name = exe
        for param in node.findall("param"):
            if param.get("from") is not None:
                file = shared_file(launch, param.get("from", ""))
                if file is not None:
                    check_node_parameters(exe, f"{path.name} -> {file.name}", parameter_file_values(file, node_name))
            else:
                value = param.get("value", "")
                try:
                    resolved: Any = yaml.safe_load(launch.resolve(value))
                except Unresolvable:
                    resolved = value
                check_node_parameters(exe, path.name, {param.get("name", ""): resolved})
        remappable = NODES[exe].remappable
        for remap in node.findall("remap"):
            assert remap.get("from") in remappable, (
                f"{path.name}: remap from {remap.get('from')!r} matches no {exe} topic {list(remappable)}."
            )
    for include in launch.root.iter("include"):
        target = shared_file(launch, include.get("file", ""))
        if target is None or not target.name.endswith(".launch.xml") or target.parent != REPO / "launch":
            continue
        included = LaunchFile.read(target)
        passed = {arg.get("name") for arg in include.findall("arg")}
        assert passed <= set(included.args), f"{path.name}: include {target.name} passes unknown args {sorted(passed - set(included.args))}."
        missing = {name for name, default in included.args.items() if default is None} - passed
        assert not missing, f"{path.name}: include {target.name} lacks required args {sorted(missing)}."


def test_node_launch_file_exposes_model_params_remaps_namespace_and_sim_time() -> None:
    launch = LaunchFile.read(REPO / "launch" / "lnn_node.launch.xml")
    assert launch.args["model_path"] is None  # required
    for name in ("params_file", "namespace", "imu_topic", "camera_topic", "cmd_vel_topic", "use_sim_time"):
        assert name in launch.args, name
    (node,) = launch.root.iter("node")
    assert {r.get("from") for r in node.findall("remap")} == set(REMAPPABLE)
    assert node.get("namespace") == "$(var namespace)"


@pytest.mark.parametrize("executable", list(NODES))
def test_default_parameter_file_lists_every_parameter_with_its_default(executable: str) -> None:
    table = NODES[executable]
    values = parameter_file_values(REPO / table.defaults_file, executable)
    assert set(values) == set(table.parameters.DECLARED_PARAMETERS)
    for spec in table.parameters.PARAMETERS:
        assert spec.check(values[spec.name]) == spec.check(spec.default), spec.name


def test_the_parameter_checks_catch_mistakes(tmp_path: Path) -> None:
    """The checker itself: an unknown parameter and a value out of range fail, for each node."""
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("/**:\n  ros__parameters:\n    stale_timeout: 1.0\n")
    with pytest.raises(AssertionError, match="lnn_node declares no parameter 'stale_timeout'"):
        check_node_parameters("lnn_node", "bad.yaml", parameter_file_values(bad_yaml, "lnn_node"))
    with pytest.raises(NodeConfigError, match="must be in"):
        check_node_parameters("lnn_node", "x", {"failsafe_rate_hz": 0.0})
    with pytest.raises(AssertionError, match="sim_drone_node declares no parameter 'model_path'"):
        check_node_parameters("sim_drone_node", "x", {"model_path": "/b"})
    with pytest.raises(NodeConfigError, match="'foggy'; use one of"):
        check_node_parameters("sim_drone_node", "x", {"variant": "foggy"})


SIM_PARAMS = "sim_drone_node:\n  ros__parameters:\n    seeds: 3\n"  # written to {sim_params} below
BAD_LAUNCH_FILES: dict[str, tuple[str, type[Exception], str]] = {
    "missing parameter file": (
        '<launch><arg name="p" default="$(find-pkg-share lnn_ros)/config/missing.yaml"/>'
        '<node pkg="lnn_ros" exec="lnn_node"><param from="$(var p)"/></node></launch>',
        AssertionError, "does not exist",
    ),
    "unknown executable": ('<launch><node pkg="lnn_ros" exec="lnn_nodes"/></launch>', AssertionError, "not a console script"),
    "unknown topic remapped": (
        '<launch><node pkg="lnn_ros" exec="lnn_node"><remap from="imu/data" to="x"/></node></launch>',
        AssertionError, "matches no lnn_node topic",
    ),
    "undeclared argument": ('<launch><node pkg="lnn_ros" exec="lnn_node" name="$(var n)"/></launch>', AssertionError, "without <arg>"),
    # The simulator node's parameters and remaps are checked as the policy node's are.
    "simulator parameter file with an unknown name": (
        '<launch><node pkg="lnn_ros" exec="sim_drone_node"><param from="{sim_params}"/></node></launch>',
        AssertionError, "sim_drone_node declares no parameter 'seeds'",
    ),
    "simulator parameter out of range": (
        '<launch><node pkg="lnn_ros" exec="sim_drone_node"><param name="duration_s" value="0.0"/></node></launch>',
        NodeConfigError, "'duration_s' is 0.0 but must be in",
    ),
    "simulator topic that is not remappable": (
        '<launch><node pkg="lnn_ros" exec="sim_drone_node"><remap from="clock" to="x"/></node></launch>',
        AssertionError, "matches no sim_drone_node topic",
    ),
}


@pytest.mark.parametrize("case", list(BAD_LAUNCH_FILES))
def test_the_launch_checks_catch_mistakes(case: str, tmp_path: Path) -> None:
    text, error, fragment = BAD_LAUNCH_FILES[case]
    sim_params = tmp_path / "sim.yaml"
    sim_params.write_text(SIM_PARAMS)
    launch_path = tmp_path / "bad.launch.xml"
    launch_path.write_text(text.replace("{sim_params}", str(sim_params)))
    with pytest.raises(error, match=fragment):
        test_launch_file(launch_path)
