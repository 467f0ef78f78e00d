"""The node's parameter table and diagnostics report, without starting ROS."""

from __future__ import annotations

import dataclasses
import math

import pytest

from lnn_ros.runtime.report import DROP_COUNTERS, Level, build_report
from lnn_ros.ros.errors import NodeConfigError
from lnn_ros.ros.params import AUTOMATIC_PARAMETERS, DECLARED_PARAMETERS, PARAMETERS, NodeParams, ParamType
from lnn_ros.runtime import Summary, WatchdogStatus


def test_table_and_dataclass_agree() -> None:
    assert DECLARED_PARAMETERS == tuple(f.name for f in dataclasses.fields(NodeParams))
    assert not set(DECLARED_PARAMETERS) & set(AUTOMATIC_PARAMETERS)
    for spec in PARAMETERS:
        assert spec.description.endswith((".", ")")) and len(spec.description) > 20, spec.name
        assert (spec.low is None) == (spec.high is None), spec.name
        if spec.type in (ParamType.INTEGER, ParamType.DOUBLE):
            assert spec.low is not None, f"{spec.name} needs a range"
            assert spec.low <= spec.default <= spec.high, spec.name
        spec.check(spec.default)


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
        ({"model_path": "/b", "stale_timeout": 1.0}, "Unknown lnn_node parameters ['stale_timeout']"),
    ],
)
def test_invalid_values_are_clear_errors(values: dict[str, object], fragment: str) -> None:
    with pytest.raises(NodeConfigError) as error:
        NodeParams.from_values(values)
    assert fragment in str(error.value)


def test_integer_is_accepted_for_a_double() -> None:
    assert NodeParams.from_values({"model_path": "/b", "stale_timeout_s": 1}).stale_timeout_s == 1.0


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
    counters = {name: 1 for name in DROP_COUNTERS} | {"explicit_resets": 2, "gap_reset": 1, "steps": 9}
    ok = _report(WatchdogStatus.OK, counters)
    values = dict(ok.values)
    assert (ok.level, ok.message) == (Level.OK, "flying")
    assert values["step_latency_ms.p50"] == "0.100" and values["step_latency_ms.max"] == "1.000"
    assert values["message_age_ms.p50"] == "nan"
    assert values["frame_latency_ms.p99"] == "3.000"
    assert "frame_latency_ms.p50" not in dict(_report(WatchdogStatus.OK, counters, camera=False).values)
    assert values["imu.rate_hz"] == "199.50" and values["camera.rate_hz"] == "30.00"
    assert values["dropped"] == str(len(DROP_COUNTERS)) and values["resets"] == "3" and values["steps"] == "9"
    assert (values["failsafe"], values["bundle_hash"], values["execution_provider"]) == ("false", "abc", "CPUExecutionProvider")
    assert len(values) == len(ok.values)  # no key twice
    waiting = _report(WatchdogStatus.WAITING, counters)
    assert waiting.level is Level.WARN and "waiting for camera" in waiting.message
    stale = _report(WatchdogStatus.STALE, counters)
    assert stale.level is Level.ERROR and "stale input camera" in stale.message
    assert dict(stale.values)["failsafe"] == "true"
