"""The live node flies the simulator from camera streams as real drivers publish them, over DDS.

``sim_drone_node`` publishes 640x480 ``bgr8`` frames on ``camera/image_raw`` (or 640x480 jpeg
``CompressedImage`` on ``camera/image_raw/compressed``); ``lnn_node`` flies the shipped CfC,
whose declared preprocessing brings them to 64x48. Short episodes (3.5 s): the loop closes and
the drone moves toward the target; latency is reported by benchmarks, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from lnn_ros.sim.demo import executable, shipped_model, stop_process

DURATION_S = 3.5
REAL_TIME_FACTOR = 0.3  # sim time at 0.3x wall time: a loaded 2-core CI machine keeps up with the renderer


def fly(env: dict[str, str], tmp_path: Path, sim_params: dict[str, object], node_params: dict[str, object]) -> dict:
    summary_path = tmp_path / "summary.json"
    sim_cmd = [str(executable("sim_drone_node")), "--ros-args"]
    for name, value in {
        "duration_s": DURATION_S,
        "real_time_factor": REAL_TIME_FACTOR,
        "wait_for_policy_s": 30.0,
        "summary_path": str(summary_path),
        **sim_params,
    }.items():
        sim_cmd += ["-p", f"{name}:={value}"]
    node_cmd = [str(executable("lnn_node")), "--ros-args", "-p", f"model_path:={shipped_model('drone_cfc')}",
                "-p", "use_sim_time:=true"]
    for name, value in node_params.items():
        node_cmd += ["-p", f"{name}:={value}"]
    node_log, sim_log = tmp_path / "node.log", tmp_path / "sim.log"
    with node_log.open("wb") as node_out, sim_log.open("wb") as sim_out:
        node = subprocess.Popen(node_cmd, env=env, stdout=node_out, stderr=subprocess.STDOUT)
        sim = subprocess.Popen(sim_cmd, env=env, stdout=sim_out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90.0
            while sim.poll() is None and node.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            endings = (stop_process(sim), stop_process(node))
    logs = f"{endings}\nsim:\n{sim_log.read_text()[-3000:]}\nnode:\n{node_log.read_text()[-3000:]}"
    assert summary_path.is_file(), logs
    assert "Traceback" not in logs, logs
    return json.loads(summary_path.read_text()) | {"logs": logs}


@pytest.mark.parametrize(
    ("sim_params", "node_params"),
    [
        ({"camera_width": 640, "camera_height": 480, "camera_encoding": "bgr8"}, {}),
        (  # decoding a jpeg per frame: slower still, so that a loaded machine keeps up
            {"camera_width": 640, "camera_height": 480, "camera_transport": "jpeg", "real_time_factor": 0.15},
            {"camera_transport": "compressed"},
        ),
    ],
    ids=["bgr8_640x480", "jpeg_640x480_compressed"],
)
def test_node_flies_the_simulator_from_a_real_camera_stream(
    ros_env: dict[str, str], tmp_path: Path, sim_params: dict[str, object], node_params: dict[str, object]
) -> None:
    summary = fly(ros_env, tmp_path, sim_params, node_params)
    logs = summary.pop("logs")
    assert summary["completed"], logs
    assert summary["commands_matched"] > 0.5 * summary["imu_published"] > 100, (summary, logs)
    flight = summary["flight"]
    assert not flight["crashed"], flight
    assert flight["final_distance_m"] < flight["start_distance_m"] - 0.5, flight
