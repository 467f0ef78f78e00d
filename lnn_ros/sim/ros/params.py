"""``sim_drone_node`` parameters: names, types, defaults, ranges, descriptions, without rclpy.

Same layout as :mod:`lnn_ros.node_spec.params` (the node's table), on the shared
:mod:`lnn_ros.node_spec.param_table`: :data:`PARAMETERS` is the one table the simulator node declares
from (``ParameterDescriptor`` ranges built from it, read-only), :data:`DECLARED_PARAMETERS`
the names a parameter file may set (and :data:`AUTOMATIC_PARAMETERS` those rclpy declares:
the simulator *is* the clock, so leave ``use_sim_time`` false for it), and the values are read
once into the frozen :class:`SimNodeParams`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lnn_ros.node_spec.param_table import AUTOMATIC_PARAMETERS, QOS_RELIABILITY, ParamSpec, ParamType, check_values
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.world.config import ScenarioVariant, VehicleModel
from lnn_ros.sim.world.sensors import CAMERA_OUTPUT_ENCODINGS

__all__ = ["AUTOMATIC_PARAMETERS", "DECLARED_PARAMETERS", "NODE_NAME", "PARAMETERS", "SimNodeParams"]

NODE_NAME = "sim_drone_node"

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "seed", ParamType.INTEGER, 10_000,
        "Episode seed: start pose, target, sensor noise and timing (seeds below 10000 are training data).",
        low=0, high=2**31 - 1,
    ),
    ParamSpec(
        "variant", ParamType.STRING, "nominal",
        "Scenario variant: nominal (training distribution) or an out-of-distribution one.",
        choices=tuple(v.value for v in ScenarioVariant),
    ),
    ParamSpec("vehicle", ParamType.STRING, "crazyflie", "rotorpy vehicle model.", choices=tuple(v.value for v in VehicleModel)),
    ParamSpec("duration_s", ParamType.DOUBLE, 12.0, "Episode length in sim time.", low=0.1, high=3600.0),
    ParamSpec(
        "stop_on_success", ParamType.BOOL, False,
        "End the episode as soon as the drone held near the target (else fly the whole duration).",
    ),
    ParamSpec(
        "real_time_factor", ParamType.DOUBLE, 1.0,
        "Sim seconds per wall second; 1.0 paces sim time at real time (what the latency figures assume).",
        low=0.05, high=10.0,
    ),
    ParamSpec(
        "deadline_ms", ParamType.DOUBLE, 5.0,
        "Control deadline: the command for an IMU sample must arrive within this many ms of the sample's "
        "publication (default: one 200 Hz IMU period), else it counts as a missed deadline.",
        low=0.1, high=10_000.0,
    ),
    ParamSpec(
        "wait_for_policy_s", ParamType.DOUBLE, 30.0,
        "Before starting the clock, wait this long for a node subscribing imu and camera/image_raw and "
        "publishing cmd_vel; 0 starts at once. Gives up with an error if none shows up.",
        low=0.0, high=3600.0,
    ),
    ParamSpec(
        "drain_s", ParamType.DOUBLE, 0.2,
        "After the episode, keep receiving commands this long (wall time) so late ones are counted.",
        low=0.0, high=10.0,
    ),
    ParamSpec(
        "sensor_qos_reliability", ParamType.STRING, "best_effort",
        "Reliability of the imu and camera publishers (sensor data QoS is best_effort).",
        choices=QOS_RELIABILITY,
    ),
    ParamSpec("imu_frame_id", ParamType.STRING, "base_link", "header.frame_id of the imu messages."),
    ParamSpec("camera_frame_id", ParamType.STRING, "camera_optical", "header.frame_id of the camera images."),
    ParamSpec(
        "summary_path", ParamType.STRING, "",
        "Write the JSON summary (flight result, latency percentiles, missed deadlines) here at the end; '' = do not.",
    ),
    ParamSpec(
        "record_path", ParamType.STRING, "",
        "Write an .npz with the trajectory, commands and every latency here at the end; '' = do not.",
    ),
    ParamSpec("shutdown_when_done", ParamType.BOOL, True, "Exit once the episode is over and the summary is written."),
    ParamSpec(
        "camera_width", ParamType.INTEGER, 0,
        "Published image columns (0: the rendered size). The rendered frame is scaled by pixel repetition and "
        "centred, grey bands where the aspect ratio differs (a stand-in for a real camera's resolution).",
        low=0, high=8192,
    ),
    ParamSpec("camera_height", ParamType.INTEGER, 0, "Published image rows (0: the rendered size).", low=0, high=8192),
    ParamSpec(
        "camera_encoding", ParamType.STRING, "rgb8", "Published image encoding.", choices=CAMERA_OUTPUT_ENCODINGS
    ),
    ParamSpec(
        "camera_transport", ParamType.STRING, "raw",
        "raw: sensor_msgs/Image on camera/image_raw; jpeg / png: sensor_msgs/CompressedImage on "
        "camera/image_raw/compressed (image_transport's naming).",
        choices=("raw", "jpeg", "png"),
    ),
    ParamSpec("jpeg_quality", ParamType.INTEGER, 90, "JPEG quality of camera_transport jpeg.", low=1, high=95),
)

DECLARED_PARAMETERS: tuple[str, ...] = tuple(spec.name for spec in PARAMETERS)
"""Every parameter name the simulator node declares itself."""


@dataclass(frozen=True)
class SimNodeParams:
    """The simulator node's parameters (see :data:`PARAMETERS` for each meaning)."""

    seed: int
    variant: str
    vehicle: str
    duration_s: float
    stop_on_success: bool
    real_time_factor: float
    deadline_ms: float
    wait_for_policy_s: float
    drain_s: float
    sensor_qos_reliability: str
    imu_frame_id: str
    camera_frame_id: str
    summary_path: str
    record_path: str
    shutdown_when_done: bool
    camera_width: int = 0
    camera_height: int = 0
    camera_encoding: str = "rgb8"
    camera_transport: str = "raw"
    jpeg_quality: int = 90

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> SimNodeParams:
        """Check every value against its spec; missing ones take the default.

        Raises:
            SimError: an unknown name or the first invalid value.
        """
        return cls(**check_values(PARAMETERS, values, NODE_NAME, SimError))
