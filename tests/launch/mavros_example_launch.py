"""launch_testing: ``launch/mavros_lnn_node.launch.xml`` (without MAVROS itself) wires lnn_node to MAVROS's topics.

Run by ``tests/test_launch_files.py`` as ``launch_test mavros_example_launch.py model_path:=<bundle>``.
Checks the remaps onto ``/mavros/imu/data`` and ``/mavros/setpoint_velocity/cmd_vel``, the command frame,
and that ``command_rate_hz: 50`` from ``config/lnn_node_mavros.yaml`` thins a 200 Hz IMU stream to one
policy command per 20 ms of sensor time.
"""

from __future__ import annotations

import itertools
import os
import time
import unittest

import launch_testing
import launch_testing.actions
import launch_testing.asserts
from ament_index_python.packages import get_package_share_directory
from geometry_msgs.msg import TwistStamped
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import AnyLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from lnn_launch_probe import Probe, image_msg, imu_msg, stamp_ns
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, Imu

import launch

IMU_TOPIC = "/mavros/imu/data"
CMD_TOPIC = "/mavros/setpoint_velocity/cmd_vel"
CAMERA_TOPIC = "/camera/image_raw"
IMU_PERIOD_NS = 5_000_000  # 200 Hz


def generate_test_description() -> launch.LaunchDescription:
    share = get_package_share_directory("lnn_ros")
    include = IncludeLaunchDescription(
        AnyLaunchDescriptionSource(os.path.join(share, "launch", "mavros_lnn_node.launch.xml")),
        launch_arguments={"model_path": LaunchConfiguration("model_path")}.items(),
    )
    return launch.LaunchDescription([DeclareLaunchArgument("model_path"), include, launch_testing.actions.ReadyToTest()])


class TestMavrosWiring(unittest.TestCase):
    def test_imu_to_setpoint_velocity_at_50_hz(self) -> None:
        probe = Probe()
        try:
            commands = probe.record(TwistStamped, CMD_TOPIC)
            qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
            imu_pub = probe.node.create_publisher(Imu, IMU_TOPIC, qos)
            image_pub = probe.node.create_publisher(Image, CAMERA_TOPIC, qos)
            probe.spin_until(lambda: imu_pub.get_subscription_count() and image_pub.get_subscription_count() and commands,
                             20.0, "lnn_node on the MAVROS topics")
            start = probe.now_ns()
            image_pub.publish(image_msg(start))
            probe.spin_for(0.05)
            first = probe.now_ns()  # no backlog: the first IMU message is due now
            stamps = [first + k * IMU_PERIOD_NS for k in range(100)]
            for k, stamp in enumerate(stamps):
                # Paced like a driver: a message is sent once its stamp has come (never far behind the clock,
                # which lnn_node checks: max_age_s), whatever the granularity of the probe's executor.
                while (wait_ns := stamp - probe.now_ns()) > 0:
                    time.sleep(wait_ns / 1e9)
                imu_pub.publish(imu_msg(stamp))
                if k % 4 == 3:  # a 50 Hz camera
                    image_pub.publish(image_msg(stamp))
            probe.spin_for(1.0)
            flown = sorted(stamp_ns(c) for c in commands if stamp_ns(c) in set(stamps))
            self.assertGreaterEqual(len(flown), 15, flown)
            self.assertLessEqual(len(flown), 26, flown)  # 100 IMU steps over 0.5 s of sensor time -> at most 25 + 1
            gaps = [b - a for a, b in itertools.pairwise(flown)]
            self.assertGreaterEqual(min(gaps), 18_000_000, gaps)
            self.assertEqual({c.header.frame_id for c in commands}, {"base_stabilized"})
        finally:
            probe.close()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_code_0(self, proc_info) -> None:  # type: ignore[no-untyped-def]
        launch_testing.asserts.assertExitCodes(proc_info)
