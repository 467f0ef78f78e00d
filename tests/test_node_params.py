"""The nodes' parameter tables, the node's parameter file, the streams it feeds and its diagnostics report, without ROS."""

from __future__ import annotations

import dataclasses
import itertools
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import lnn_ros.node_spec.params
import lnn_ros.sim.ros.params
from lnn_ros.bag.errors import BagError
from lnn_ros.bag.replay import ReplayConfig, replay_bag
from lnn_ros.node_spec.errors import NodeConfigError
from lnn_ros.node_spec.interface import check_streams_fed
from lnn_ros.node_spec.param_table import ParamSpec, ParamType, check_values
from lnn_ros.node_spec.params import NodeParams
from lnn_ros.ros.entry import SIM_INSTALL
from lnn_ros.ros.rate_limit import RateLimit
from lnn_ros.runtime import Stream, Summary, WatchdogStatus
from lnn_ros.runtime.counters import DROPPED_NAMES
from lnn_ros.runtime.report import Level, build_report
from lnn_ros.sim.errors import SimError

REPO = Path(__file__).resolve().parent.parent
TABLES: dict[str, tuple[ModuleType, type]] = {  # node -> (parameter module, its dataclass)
    "lnn_node": (lnn_ros.node_spec.params, NodeParams),
    "sim_drone_node": (lnn_ros.sim.ros.params, lnn_ros.sim.ros.params.SimNodeParams),
}


@pytest.mark.parametrize("node", list(TABLES))
def test_table_and_dataclass_agree(node: str) -> None:
    table, params_class = TABLES[node]
    assert tuple(f.name for f in dataclasses.fields(params_class)) == table.DECLARED_PARAMETERS
    assert table.AUTOMATIC_PARAMETERS == ("use_sim_time",)
    assert not set(table.DECLARED_PARAMETERS) & set(table.AUTOMATIC_PARAMETERS)
    for spec in table.PARAMETERS:
        assert spec.description.endswith((".", ")")) and len(spec.description) > 20, spec.name
        assert (spec.low is None) == (spec.high is None), spec.name
        if spec.type in (ParamType.INTEGER, ParamType.DOUBLE):
            assert spec.low is not None, f"{spec.name} needs a range"
            assert spec.low <= spec.default <= spec.high, spec.name
        spec.check(spec.default)


def test_every_node_parameter_is_in_the_reference_table() -> None:
    """docs/node.md's parameter table names every declared parameter of lnn_node, and no parameter that is gone."""
    text = (REPO / "docs" / "node.md").read_text(encoding="utf-8")
    table = text.split("## Parameters", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in row.split("|")[1].replace("`", "").replace(" ", "").split(",")}
    assert documented == set(lnn_ros.node_spec.params.DECLARED_PARAMETERS)


def test_defaults_are_px4_friendly() -> None:
    params = NodeParams.from_values({"model_path": "/b"})
    assert params.failsafe_rate_hz > 2.0  # PX4 offboard drops out below 2 Hz
    assert params.stale_timeout_s < 1.0  # hover before PX4's own offboard-loss timeout (COM_OF_LOSS_T, 1 s)
    assert params.input_qos_reliability == "best_effort"
    assert params.execution_providers == ("cpu",)


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({}, "'model_path' is empty"),
        ({"model_path": "/b", "stale_timeout_s": 0.0}, "'stale_timeout_s' is 0.0 but must be in [0.01, 60]"),
        ({"model_path": "/b", "failsafe_rate_hz": "20"}, "'failsafe_rate_hz' must be a double, got '20'"),
        ({"model_path": "/b", "input_qos_depth": 2.5}, "'input_qos_depth' must be an integer"),
        ({"model_path": "/b", "input_qos_depth": True}, "'input_qos_depth' must be an integer"),
        ({"model_path": "/b", "input_qos_reliability": "fast"}, "'fast'; use one of ['best_effort', 'reliable']"),
        ({"model_path": "/b", "execution_providers": ["cpu", "npu"]}, "'npu'; use one of"),
        ({"model_path": "/b", "stale_timeout": 1.0}, "Unknown lnn_node parameter 'stale_timeout' (did you mean 'stale_timeout_s'?)"),
        ({"model_path": "/b", "frame_id": "x", "zzz": 1}, "Unknown lnn_node parameters 'frame_id' (did you mean 'command_frame_id'?), 'zzz';"),
    ],
)
def test_invalid_values_are_clear_errors(values: dict[str, object], fragment: str) -> None:
    with pytest.raises(NodeConfigError) as error:
        NodeParams.from_values(values)
    assert fragment in str(error.value)


def test_integer_is_accepted_for_a_double() -> None:
    assert NodeParams.from_values({"model_path": "/b", "stale_timeout_s": 1}).stale_timeout_s == 1.0


def test_checks_raise_the_nodes_own_error() -> None:
    spec = ParamSpec("rate_hz", ParamType.DOUBLE, 1.0, "A rate.", low=1.0, high=2.0)
    with pytest.raises(NodeConfigError, match=r"'rate_hz' is 3.0 but must be in \[1, 2\]"):
        spec.check(3)
    with pytest.raises(SimError, match=r"'rate_hz' must be a double, got 'x'"):
        spec.check("x", SimError)
    assert check_values([spec], {}, "n") == {"rate_hz": 1.0}
    with pytest.raises(SimError, match=r"Unknown n parameter 'rate' \(did you mean 'rate_hz'\?\).* Known ones: \['rate_hz'\]"):
        check_values([spec], {"rate": 1.0}, "n", SimError)


# ---------------------------------------------------------------------- the node's parameter file
def _params_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_shipped_parameter_file_gives_the_defaults() -> None:
    from_file = NodeParams.from_params_file(REPO / "config" / "lnn_node.yaml", model_path="/b")
    assert from_file == NodeParams.from_values({"model_path": "/b"})
    assert NodeParams.from_params_file(None, model_path="/b") == from_file
    with pytest.raises(NodeConfigError, match="'model_path' is empty") as error:
        NodeParams.from_params_file(REPO / "config" / "lnn_node.yaml")  # the file leaves model_path to the launch
    assert "lnn_node.yaml" in str(error.value)


def test_parameter_file_sections_apply_in_order_and_overrides_last(tmp_path: Path) -> None:
    path = _params_file(
        tmp_path,
        "/**:\n  ros__parameters:\n    command_frame_id: all\n    stale_timeout_s: 0.2\n    use_sim_time: true\n"
        "other_node:\n  ros__parameters:\n    command_frame_id: other\n"
        "lnn_node:\n  ros__parameters:\n    command_frame_id: mine\n    stats_window: 50\n"
        "/lnn_node:\n  ros__parameters:\n    stats_window: 60\n",
    )
    params = NodeParams.from_params_file(path, model_path="/b", stats_window=70)
    assert (params.command_frame_id, params.stale_timeout_s, params.stats_window) == ("mine", 0.2, 70)
    assert NodeParams.from_params_file(path, model_path="/b").stats_window == 60
    renamed = NodeParams.from_params_file(path, node_name="other_node", model_path="/b")
    assert (renamed.command_frame_id, renamed.stats_window) == ("other", 1000)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (None, "Cannot read parameter file"),
        ("a: [1\n", "Cannot read parameter file"),
        ("- 1\n", "must be a mapping of node names, got list"),
        ("other_node:\n  ros__parameters: {}\n", "has no '/**' or 'lnn_node' section with ros__parameters; it has ['other_node']"),
        ("/**:\n  ros__parameters:\n    stale_timeout: 1.0\n", "params.yaml': Unknown lnn_node parameter 'stale_timeout' (did you mean 'stale_timeout_s'?)"),
        ("/**:\n  ros__parameters:\n    input_qos_depth: 0\n", "params.yaml': Parameter 'input_qos_depth' is 0 but must be in"),
    ],
)
def test_bad_parameter_files_are_clear_errors(tmp_path: Path, text: str | None, fragment: str) -> None:
    path = tmp_path / "params.yaml" if text is None else _params_file(tmp_path, text)
    with pytest.raises(NodeConfigError) as error:
        NodeParams.from_params_file(path, model_path="/b")
    assert fragment in str(error.value)
    assert str(path) in str(error.value)


# ---------------------------------------------------------------------- the streams the node feeds
def test_node_and_replay_refuse_a_bundle_they_cannot_feed(tmp_path: Path) -> None:
    check_streams_fed([Stream.IMU, Stream.CAMERA], "/b")
    with pytest.raises(NodeConfigError) as error:
        check_streams_fed([Stream.IMU, Stream.VECTOR], "/b")
    message = str(error.value)
    assert message.startswith("Bundle '/b' reads 'vector' features, which lnn_node cannot feed") and "replay" in message
    vector_bundle = REPO / "models" / "sine_cfc"  # a shipped bundle whose one feature is a 'vector'
    with pytest.raises(BagError) as replayed:
        replay_bag(REPO / "tests" / "fixtures" / "flight_small", vector_bundle, tmp_path / "out", ReplayConfig(progress=False))
    assert str(replayed.value) == message.replace("'/b'", repr(str(vector_bundle)))
    assert not (tmp_path / "out").exists()


def _report(status: WatchdogStatus, counters: dict[str, int], camera: bool = True):
    summary = Summary(10, 0.0001, 0.0005, 0.001)
    return build_report(
        status=status,
        stale_streams=[] if status is WatchdogStatus.OK else ["camera"],
        failsafe_entries=1,
        recoveries=0,
        latency_s=summary,
        frame_latency_s=Summary(3, 0.002, 0.003, 0.004) if camera else None,
        age_s=Summary(0, math.nan, math.nan, math.nan),
        rates_hz={"imu": 199.5, "camera": 30.0},
        counters=counters,
        commands_published=5,
        hover_published=7,
        bundle_name="b",
        bundle_hash="abc",
        execution_provider="CPUExecutionProvider",
    )


def test_report_levels_and_values() -> None:
    counters = {name: 1 for name in DROPPED_NAMES} | {"explicit_resets": 2, "imu_gap_reset": 1, "imu_stepped": 9}
    ok = _report(WatchdogStatus.OK, counters)
    values = dict(ok.values)
    assert (ok.level, ok.message) == (Level.OK, "flying")
    assert values["step_latency_ms.p50"] == "0.100" and values["step_latency_ms.max"] == "1.000"
    assert values["message_age_ms.p50"] == "nan"
    assert values["frame_latency_ms.p99"] == "3.000"
    assert "frame_latency_ms.p50" not in dict(_report(WatchdogStatus.OK, counters, camera=False).values)
    assert values["imu.rate_hz"] == "199.50" and values["camera.rate_hz"] == "30.00"
    assert values["dropped"] == str(len(DROPPED_NAMES)) and values["resets"] == "3" and values["imu_stepped"] == "9"
    assert (values["failsafe"], values["bundle_hash"], values["execution_provider"]) == ("false", "abc", "CPUExecutionProvider")
    assert len(values) == len(ok.values)  # no key twice
    waiting = _report(WatchdogStatus.WAITING, counters)
    assert waiting.level is Level.WARN and "waiting for camera" in waiting.message
    stale = _report(WatchdogStatus.STALE, counters)
    assert stale.level is Level.ERROR and "stale input camera" in stale.message
    assert dict(stale.values)["failsafe"] == "true"


def test_simulator_parameter_values_are_checked() -> None:
    with pytest.raises(SimError, match="variant"):
        lnn_ros.sim.ros.params.SimNodeParams.from_values({"variant": "foggy"})
    with pytest.raises(SimError, match="deadline_ms"):
        lnn_ros.sim.ros.params.SimNodeParams.from_values({"deadline_ms": 0.0})
    with pytest.raises(SimError, match=r"Unknown sim_drone_node parameter 'deadline' \(did you mean 'deadline_ms'\?\)"):
        lnn_ros.sim.ros.params.SimNodeParams.from_values({"deadline": 5.0})


# ---------------------------------------------------------------------- command_rate_hz
MS = 1_000_000


def test_rate_limit_passes_one_command_per_period_of_sensor_time() -> None:
    limit = RateLimit(50.0)
    stamps = [k * 5 * MS for k in range(200)]  # 200 Hz
    passed = [s for s in stamps if limit.passes(s)]
    assert passed == stamps[::4]  # every 20 ms


def test_rate_limit_absorbs_jitter_without_drifting_slower() -> None:
    limit = RateLimit(50.0)
    jitter = [0, 400_000, -300_000, 200_000, -400_000]
    stamps = [k * 5 * MS + jitter[k % 5] for k in range(400)]
    passed = [s for s in stamps if limit.passes(s)]
    assert len(passed) == 100  # 2 s of stamps at 50 Hz
    assert min(b - a for a, b in itertools.pairwise(passed)) >= 18 * MS


def test_rate_limit_sends_no_catch_up_burst_after_lost_messages() -> None:
    limit = RateLimit(50.0)  # 20 ms
    stamps = [0, 5, 10, 15, 40, 45, 50, 55, 60, 65]  # ms; 20-35 lost (best effort): 40 is one period late
    passed = [s for s in stamps if limit.passes(s * MS)]
    assert passed == [0, 40, 60]  # not 40 and 45 back to back


def test_rate_limit_restarts_after_a_gap_or_a_stamp_going_back() -> None:
    limit = RateLimit(10.0)
    assert limit.passes(0) and not limit.passes(50 * MS) and limit.passes(100 * MS)
    assert limit.passes(1_000 * MS)  # a gap: publish at once
    assert limit.passes(10 * MS)  # stamps went back (a reset, a looped bag): publish at once
    assert not limit.passes(20 * MS)
    assert all(RateLimit(0.0).passes(s) for s in (0, 1, 1, 0))  # 0 = no limit
    limit.reset()
    assert limit.passes(20 * MS)


def test_tensorrt_engine_cache_and_fp16_reach_the_provider_options() -> None:
    params = NodeParams.from_values(
        {"model_path": "/b", "execution_providers": ["tensorrt", "cpu"], "tensorrt_engine_cache_path": "/var/cache/lnn", "tensorrt_fp16": True}
    )
    session = params.engine_config().session
    assert session.provider_options("TensorrtExecutionProvider") == {
        "trt_fp16_enable": "True", "trt_engine_cache_enable": "True", "trt_engine_cache_path": "/var/cache/lnn",
    }
    assert session.provider_options("CPUExecutionProvider") == {}
    plain = NodeParams.from_values({"model_path": "/b"}).engine_config().session
    assert plain.provider_options("TensorrtExecutionProvider") == {"trt_fp16_enable": "False"}


def test_an_executable_whose_module_is_missing_says_what_to_install_in_one_line() -> None:
    """What sim_drone_node does on a robot install without rotorpy (run in a subprocess: it installs signal handlers)."""
    code = (
        "import sys; from lnn_ros.ros import entry; "
        "sys.exit(entry._run('lnn_ros_test_no_such_module', 'sim_drone_node', entry.SIM_INSTALL))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"[FATAL] [sim_drone_node]: Python module 'lnn_ros_test_no_such_module' is not installed; {SIM_INSTALL}."
    ]
