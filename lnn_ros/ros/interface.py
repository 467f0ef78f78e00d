"""Names of the node's topics and service (relative, so namespaces and remaps apply), without rclpy."""

from __future__ import annotations

IMU_TOPIC = "imu"
CAMERA_TOPIC = "camera/image_raw"
COMMAND_TOPIC = "cmd_vel"
DIAGNOSTICS_TOPIC = "/diagnostics"
RESET_SERVICE = "~/reset"

REMAPPABLE = (IMU_TOPIC, CAMERA_TOPIC, COMMAND_TOPIC)
"""Topic names a launch file may remap on an ``lnn_node``."""
