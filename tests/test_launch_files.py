"""The project's launch files, run with the real ``ros2 launch`` on a colcon install space.

The package is built with ``colcon build`` into a temporary install space once per module and
every launch file is started from it the way a user starts it, with the launcher built from the
upstream sources (``tests/ros2_launch.py`` finds and installs it; without it these tests skip
with one line saying so). One test per launch file and feature:

* ``lnn_node.launch.xml``: parameters from the YAML file, namespace, remaps, policy flown from the
  remapped inputs, exit code 0 when the launch ends (``tests/launch/lnn_node_launch.py``);
* ``lnn_lifecycle_node.launch.xml``: every transition over real DDS, hot swap of the bundle, a
  bundle that does not load (``tests/launch/lnn_lifecycle_launch.py``), and ``autostart:=true``;
* ``mavros_lnn_node.launch.xml``: the MAVROS topics and ``command_rate_hz`` decimation;
* ``sim_demo.launch.xml``: the episode completes, the launch ends by itself, the summary is written;
* launch-time mistakes (missing params file, misspelt parameter, ``use_sim_time:=1``, a numeric
  ``model_path``): one ``[FATAL]`` line, exit code 1, no traceback;
* Ctrl-C: SIGINT to the launch alone, to the whole process group as a terminal sends it (each node
  then gets two SIGINTs: the terminal's and the launcher's), SIGTERM to a node, 20 times at moments
  spread over the node's start-up, and during the simulator's episode (summary still written):
  every node ends with exit code 0 ("process has finished cleanly") and no traceback. (SIGTERM to
  ``ros2 launch`` itself makes the launcher exit at once without stopping its children, upstream's
  choice; each node then ends on the SIGTERM it got, tested in test_node_process / test_demo_ros.)

The static checks that still add something run without ROS: each node's default parameter file
sets every parameter to its default, and the example parameter files pass the nodes' own checks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ros2_launch import LAUNCH_TESTS, colcon_install, ensure_launcher, launch_env
from ros_helpers import wait_until_handling_sigterm

from lnn_ros.node_spec.param_table import params_file_values
from lnn_ros.node_spec.params import DECLARED_PARAMETERS, PARAMETERS, NodeParams
from lnn_ros.sim.ros import params as sim_params

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
BUNDLE = MODELS / "drone_stack_mlp"  # shipped: the launch tests need no torch
OTHER_BUNDLE = MODELS / "drone_cfc"
FINISHED = re.compile(r"\[INFO\] \[(?P<name>[\w-]+)\]: process has finished cleanly")
DIED = re.compile(r"\[(?P<name>[\w-]+)\]: process has died \[pid \d+, exit code (?P<code>-?\d+)")


# ---------------------------------------------------------------------- without ROS
@pytest.mark.parametrize(
    ("path", "specs", "node"),
    [("config/lnn_node.yaml", PARAMETERS, "lnn_node"), ("config/sim_drone.yaml", sim_params.PARAMETERS, "sim_drone_node")],
)
def test_default_parameter_file_sets_every_parameter_to_its_default(path: str, specs: tuple, node: str) -> None:
    values = params_file_values(REPO / path, node)
    assert set(values) == {spec.name for spec in specs}
    for spec in specs:
        assert spec.check(values[spec.name]) == spec.check(spec.default), spec.name


def test_example_parameter_files_pass_the_nodes_checks() -> None:
    mavros = NodeParams.from_params_file(REPO / "config" / "lnn_node_mavros.yaml", model_path="/b")
    assert (mavros.command_rate_hz, mavros.command_frame_id) == (50.0, "base_stabilized")
    setpoint = yaml.safe_load((REPO / "config" / "mavros_setpoint_velocity.yaml").read_text())
    assert setpoint == {"/**/setpoint_velocity": {"ros__parameters": {"mav_frame": "BODY_NED"}}}
    assert set(DECLARED_PARAMETERS) >= set(params_file_values(REPO / "config" / "lnn_node_mavros.yaml", "lnn_node"))


# ---------------------------------------------------------------------- the real launcher


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = ensure_launcher()
    if reason is not None:
        pytest.skip(reason)
    return colcon_install(tmp_path_factory.mktemp("colcon"))


@pytest.fixture
def env(install: Path, ros_env: dict[str, str]) -> dict[str, str]:
    return launch_env(install, ros_env)


def launch_test(env: dict[str, str], name: str, *args: str, timeout_s: float = 180.0) -> str:
    """Run ``launch_test tests/launch/<name> args...``; fails with its output unless every test passed."""
    result = subprocess.run(
        ["launch_test", str(LAUNCH_TESTS / name), *args], env=env, capture_output=True, text=True, timeout=timeout_s
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "FAILED" not in output and "Traceback" not in output, output
    return output


@pytest.mark.ros
def test_lnn_node_launch_file_parameters_namespace_and_remaps(env: dict[str, str], tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        "/**:\n  ros__parameters:\n    stale_timeout_s: 0.25\n    diagnostics_period_s: 0.2\n"
        "    command_frame_id: fc_heading\n    input_qos_depth: 7\n"
    )
    launch_test(env, "lnn_node_launch.py", f"model_path:={BUNDLE}", f"params_file:={params}")


@pytest.mark.ros
def test_lifecycle_launch_file_through_every_transition(env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "broken_bundle"
    broken.mkdir()
    (broken / "manifest.yaml").write_text("format: [not closed\n")
    env = {**env, "LNN_TEST_GOOD_MODEL": str(BUNDLE), "LNN_TEST_OTHER_MODEL": str(OTHER_BUNDLE)}
    launch_test(env, "lnn_lifecycle_launch.py", f"model_path:={broken}")


@pytest.mark.ros
def test_lifecycle_launch_file_autostart(env: dict[str, str]) -> None:
    launch_test(env, "lnn_lifecycle_autostart_launch.py", f"model_path:={BUNDLE}")


@pytest.mark.ros
def test_mavros_example_launch_file_topics_and_command_rate(env: dict[str, str]) -> None:
    launch_test(env, "mavros_example_launch.py", f"model_path:={BUNDLE}")


# ---------------------------------------------------------------------- ros2 launch as a user runs it
def _sigint_default() -> None:
    """``ros2 launch`` as a terminal starts it: SIGINT at its default disposition. A test run
    started in the background (``nohup ... &`` in a script) ignores SIGINT and its children
    inherit that; ``ros2 launch`` then never sees the SIGINT these tests send it (seen in two
    fresh-clone runs of this session, the node flying on for 60 s)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Launch:
    """``ros2 launch lnn_ros <file> args...`` in a process group of its own (as a terminal starts it)."""

    def __init__(self, env: dict[str, str], log: Path, launch_file: str, *args: str) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                ["ros2", "launch", "lnn_ros", launch_file, *args],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_sigint_default,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not re.search(pattern, self.output):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no line matching {pattern!r} within {timeout_s} s; output:\n{self.output}")
            time.sleep(0.02)

    def pid_of(self, node: str) -> int:
        match = re.search(rf"\[{node}-\d+\]: process started with pid \[(\d+)\]", self.output)
        assert match, self.output
        return int(match.group(1))

    def signal_group(self, sig: signal.Signals) -> None:
        """What a terminal's Ctrl-C does: the signal to every process of the group."""
        os.killpg(self.process.pid, sig)

    def wait(self, timeout_s: float = 60.0) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"ros2 launch did not end within {timeout_s} s; output:\n{self.output}")

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


@pytest.fixture
def launches() -> Iterator[list[Launch]]:
    started: list[Launch] = []
    yield started
    for launch in started:  # a failed test must not leave nodes behind
        if launch.process.poll() is None:
            launch.kill()


def assert_clean_exit(output: str, nodes: set[str]) -> None:
    """Every node in ``nodes`` (launch's process names without the ``-N``) finished cleanly; no traceback."""
    finished = {re.sub(r"-\d+$", "", m.group("name")) for m in FINISHED.finditer(output)}
    died = [m.group(0) for m in DIED.finditer(output)]
    assert not died, f"{died}\n{output}"
    assert nodes <= finished, f"not finished cleanly: {sorted(nodes - finished)}\n{output}"
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output


@pytest.mark.ros
@pytest.mark.parametrize(
    "how", ["SIGINT to ros2 launch", "SIGINT to the group (Ctrl-C)", "SIGTERM to the node"]
)
def test_stopping_the_launch_ends_the_node_with_exit_code_0(
    how: str, env: dict[str, str], tmp_path: Path, launches: list[Launch]
) -> None:
    launch = Launch(env, tmp_path / "launch.log", "lnn_node.launch.xml", f"model_path:={BUNDLE}")
    launches.append(launch)
    launch.wait_for(r"\[lnn_node\]: Flying bundle")
    if how == "SIGINT to ros2 launch":
        launch.process.send_signal(signal.SIGINT)
    elif how == "SIGTERM to the node":  # what kill or a process manager sends; the launch then ends by itself
        os.kill(launch.pid_of("lnn_node"), signal.SIGTERM)
    else:
        launch.signal_group(signal.SIGINT)
    assert launch.wait() == 0, launch.output
    assert_clean_exit(launch.output, {"lnn_node"})


@pytest.mark.ros
def test_ctrl_c_20_times_at_any_point_of_start_up(env: dict[str, str], tmp_path: Path, launches: list[Launch]) -> None:
    """Ctrl-C while the node imports, inits rclpy, loads the bundle, or spins: always exit code 0, no traceback."""
    for run in range(20):
        launch = Launch(env, tmp_path / f"launch{run}.log", "lnn_node.launch.xml", f"model_path:={BUNDLE}")
        launches.append(launch)
        launch.wait_for(r"\[lnn_node-1\]: process started")
        # From the moment lnn_ros code runs (before that the Python interpreter itself is starting up,
        # docs/ros.md), 0 .. 1.2 s: imports, rclpy.init, bundle load, warm-up, then spinning.
        wait_until_handling_sigterm(launch.pid_of("lnn_node"))
        time.sleep(0.065 * run)
        launch.signal_group(signal.SIGINT)
        assert launch.wait() == 0, launch.output
        assert_clean_exit(launch.output, {"lnn_node"})


@pytest.mark.ros
@pytest.mark.parametrize(
    ("case", "args", "fragment"),
    [
        ("missing params_file", ("params_file:=/nonexistent/params.yaml",), "Parameter file '/nonexistent/params.yaml' does not exist"),
        ("misspelt parameter", ("params_file:={typo}",), "Unknown lnn_node parameter 'stale_timout_s' (did you mean 'stale_timeout_s'?)"),
        ("use_sim_time not a bool", ("use_sim_time:=1",), "'use_sim_time'"),
        ("numeric model_path", ("model_path:=2024",), "Bundle folder '2024' does not exist"),
    ],
)
def test_launch_time_mistakes_are_one_fatal_line(
    case: str, args: tuple[str, ...], fragment: str, env: dict[str, str], tmp_path: Path, launches: list[Launch]
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("/**:\n  ros__parameters:\n    stale_timout_s: 0.2\n")
    launch = Launch(env, tmp_path / "launch.log", "lnn_node.launch.xml", f"model_path:={BUNDLE}", *(a.format(typo=typo) for a in args))
    launches.append(launch)
    assert launch.wait() == 0, launch.output  # the launch itself ends when its only node has
    output = launch.output
    fatal = [line for line in output.splitlines() if "[FATAL]" in line]
    assert len(fatal) == 1 and fragment in fatal[0], output
    assert [m.group("code") for m in DIED.finditer(output)] == ["1"], output
    assert "Traceback" not in output


@pytest.fixture
def sim_params(tmp_path: Path) -> Path:
    pytest.importorskip("rotorpy", reason="the simulator needs the 'sim' extra")
    path = tmp_path / "sim.yaml"
    path.write_text(
        f"/**:\n  ros__parameters:\n    duration_s: 3.0\n    summary_path: {tmp_path / 'summary.json'}\n"
        "    wait_for_policy_s: 60.0\n"
    )
    return path


@pytest.mark.ros
def test_sim_demo_launch_file_completes_and_writes_the_summary(
    env: dict[str, str], tmp_path: Path, sim_params: Path, launches: list[Launch]
) -> None:
    launch = Launch(env, tmp_path / "launch.log", "sim_demo.launch.xml", f"sim_params_file:={sim_params}")
    launches.append(launch)
    assert launch.wait(timeout_s=120) == 0, launch.output
    assert_clean_exit(launch.output, {"sim_drone_node", "lnn_node"})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["completed"] is True and summary["commands_matched"] > 0, summary


@pytest.mark.ros
def test_ctrl_c_during_the_sim_demo_still_writes_the_summary(
    env: dict[str, str], tmp_path: Path, sim_params: Path, launches: list[Launch]
) -> None:
    launch = Launch(env, tmp_path / "launch.log", "sim_demo.launch.xml", f"sim_params_file:={sim_params}")
    launches.append(launch)
    launch.wait_for(r"Policy node found; starting the clock", timeout_s=90)
    time.sleep(0.5)
    launch.signal_group(signal.SIGINT)
    assert launch.wait() == 0, launch.output
    assert_clean_exit(launch.output, {"sim_drone_node", "lnn_node"})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["completed"] is False, summary
    assert "Episode interrupted" in launch.output
