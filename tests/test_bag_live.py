"""Replay == live: what the real ``lnn_node`` published for the inputs it received, replay reproduces to 1e-6.

The node runs as its own process; ``fixtures/live_record.py`` (another process) feeds it IMU
messages and camera frames over DDS, in lock step so the node handles them in publication
order, and records inputs and the node's ``cmd_vel`` into a bag the way ``ros2 bag record``
would (log time = wall-clock publish / arrival time). Replaying that bag's inputs with the
same node parameter file must give the same commands.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from bundle_factory import make_imu_camera_bundle
from ros_helpers import stop_process
from rosbags.highlevel import AnyReader

from lnn_ros.bag.reader import BagReader
from lnn_ros.bag.replay import ReplayConfig, replay_bag
from lnn_ros.runtime.records import Stream
from lnn_ros_tools.synthetic.flight import START_NS

FIXTURES = Path(__file__).resolve().parent / "fixtures"

IMU_MESSAGES = 80
PARAMS = """\
/**:
  ros__parameters:
    input_qos_reliability: "reliable"
    input_qos_depth: 100
    diagnostics_period_s: 0.1
    stale_timeout_s: 5.0
    command_frame_id: "fcu"
    # The feeder stamps from the synthetic flight's START_NS, not the node clock; no holds or
    # stop, so cmd_vel holds exactly the policy's commands (docs/failsafe.md).
    max_age_s: 0.0
    max_future_s: 0.0
    max_command_gap_s: 10.0
    failsafe_action: "hover"
"""


def commands_in(bag: Path) -> list[tuple[int, np.ndarray]]:
    with BagReader(bag, streams=[Stream.COMMAND]) as reader:
        return [(m.record.stamp_ns, m.record.twist) for m in reader.messages()]


def test_replay_reproduces_the_live_nodes_commands(tmp_path: Path, ros_env: dict[str, str]) -> None:
    bundle = make_imu_camera_bundle(tmp_path / "bundle").path
    params = tmp_path / "lnn_node.yaml"
    params.write_text(PARAMS)
    log = tmp_path / "node.log"
    with log.open("wb") as out:
        node = subprocess.Popen(
            [sys.executable, "-m", "lnn_ros.ros.node", "--ros-args", "--params-file", str(params),
             "-p", f"model_path:={bundle}"],
            env=ros_env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        feeder = subprocess.run(
            [sys.executable, str(FIXTURES / "live_record.py"), str(tmp_path / "live"),
             "--imu", str(IMU_MESSAGES), "--frame-every", "8"],
            env=ros_env, capture_output=True, text=True, timeout=120,
        )
        assert feeder.returncode == 0, feeder.stdout + feeder.stderr + log.read_text()
        assert json.loads(feeder.stdout.strip().splitlines()[-1])["published"] == IMU_MESSAGES + IMU_MESSAGES // 8
    finally:
        stop_process(node, log, signal.SIGINT, timeout_s=15.0)

    # The node's policy commands carry IMU stamps; its hover commands (while waiting) carry its clock.
    imu_range = (START_NS, START_NS + IMU_MESSAGES * 5_000_000)
    live = [(s, t) for s, t in commands_in(tmp_path / "live") if imu_range[0] <= s < imu_range[1]]
    assert len(live) == IMU_MESSAGES - 1  # the first IMU message only starts the clock

    result = replay_bag(tmp_path / "live", bundle, tmp_path / "replay", ReplayConfig(params_file=params, progress=False))
    replayed = commands_in(tmp_path / "replay" / "commands")
    assert [s for s, _ in replayed] == [s for s, _ in live]
    difference = np.abs(np.array([t for _, t in replayed]) - np.array([t for _, t in live]))
    assert difference.max() <= 1e-6
    assert not result.warnings
    with AnyReader([tmp_path / "replay" / "commands"]) as reader:  # the frame id of the parameter file
        frames = {reader.deserialize(raw, c.msgtype).header.frame_id for c, _, raw in reader.messages() if c.topic == "/cmd_vel"}
    assert frames == {"fcu"}
    # The recorded cmd_vel of the bag is the node's own output: the metrics see a perfect match.
    assert result.metrics is not None and all(axis.mse <= 1e-12 for axis in result.metrics.axes)
