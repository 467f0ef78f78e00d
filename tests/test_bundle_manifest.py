"""manifest.yaml: every field is checked and every error names the field and the bad value."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lnn_ros.bundle import Manifest
from lnn_ros.bundle.manifest import ManifestError

GOOD: dict[str, Any] = {
    "schema_version": 1,
    "name": "policy",
    "model": {"kind": "cfc", "input_size": 4, "state_size": 8, "output_size": 2, "config": {"units": 8}},
    "graphs": {"step": {"file": "step.onnx"}, "window": {"file": "window.onnx", "steps": 16}, "encoder": {"file": "enc.onnx"}},
    "inputs": {
        "features": [
            {"name": "gyro_z", "source": "imu", "field": "angular_velocity.z", "unit": "rad/s", "mean": 0.0, "std": 0.5},
            {"name": "acc_x", "source": "imu", "field": "linear_acceleration.x", "mean": 0.0, "std": 2.0},
            {"name": "cam0", "source": "camera", "index": 0},
            {"name": "cam1", "source": "camera", "index": 1},
        ],
        "camera": {"width": 32, "height": 24, "encoding": "rgb8", "embedding_size": 2, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    },
    "outputs": [
        {"name": "vx", "unit": "m/s", "min": -2.0, "max": 2.0, "twist_field": "linear.x"},
        {"name": "yaw_rate", "unit": "rad/s", "min": -1.0, "max": 1.0, "twist_field": "angular.z"},
    ],
    "dt": {"unit": "s", "min_s": 0.0001, "max_s": 0.5, "max_gap_s": 1.0},
    "opset": 17,
    "producer": {"lnn_ros": "0.1.0"},
    "files": {"step.onnx": "ab" * 32, "window.onnx": "cd" * 32, "enc.onnx": "ef" * 32},
}


def test_round_trip() -> None:
    manifest = Manifest.from_dict(GOOD)
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert manifest.uses_camera and manifest.uses_imu and manifest.camera is not None
    assert manifest.camera.channels == 3


def broken(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    node: Any = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    last = keys[-1]
    if value is KeyError:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("schema_version", 3, r"'schema_version' is 3; this lnn_ros reads \[1, 2\]"),
        ("opset", 13, r"'opset' must be 17"),
        ("graphs.step", KeyError, r"'graphs.step' is missing"),
        ("graphs.window.steps", KeyError, r"'graphs.window.steps' is missing"),
        ("model.input_size", 5, r"lists 4 features but model.input_size is 5"),
        ("model.output_size", 0, r"'model.output_size' must be an integer in \[1, 1048576\], got 0"),
        ("outputs.1.max", "fast", r"'outputs\[1\].max' must be a finite number, got 'fast'"),
        ("outputs.0.min", 5.0, r"'outputs\[0\]' has min 5.0 above max 2.0"),
        ("outputs.1.twist_field", "linear.x", r"map two outputs to the same twist field"),
        ("outputs.1.twist_field", "linear.w", r"'outputs\[1\].twist_field' must be one of"),
        ("inputs.features.0.field", "angular_velocity.q", r"'inputs.features\[0\].field' must be one of"),
        ("inputs.features.1.std", 0.0, r"'inputs.features\[1\].std' must be > 0, got 0.0"),
        ("inputs.features.3.index", 5, r"must use every camera embedding index 0..1 once, got \[0, 5\]"),
        ("inputs.camera.encoding", "yuv422", r"'inputs.camera.encoding' must be one of"),
        ("inputs.camera.mean", [0.5], r"'inputs.camera.mean' must list 3 numbers"),
        ("inputs.camera", KeyError, r"'camera' is missing but some features have source 'camera'"),
        ("dt.max_gap_s", 0.1, r"'dt' must satisfy min_s <= max_s <= max_gap_s"),
        ("dt.unit", "ms", r"'dt.unit' must be 's' \(seconds\), got 'ms'"),
    ],
)
def test_errors_name_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.from_dict(broken(path, value))
