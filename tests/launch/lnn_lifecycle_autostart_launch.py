"""launch_testing: ``launch/lnn_lifecycle_node.launch.xml autostart:=true`` configures and activates itself.

Run by ``tests/test_launch_files.py`` as ``launch_test lnn_lifecycle_autostart_launch.py model_path:=<bundle>``.
"""

from __future__ import annotations

import os
import unittest

import launch_testing
import launch_testing.actions
import launch_testing.asserts
from ament_index_python.packages import get_package_share_directory
from geometry_msgs.msg import TwistStamped
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import AnyLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from lifecycle_msgs.srv import GetState
from lnn_launch_probe import Probe

import launch


def generate_test_description() -> launch.LaunchDescription:
    share = get_package_share_directory("lnn_ros")
    include = IncludeLaunchDescription(
        AnyLaunchDescriptionSource(os.path.join(share, "launch", "lnn_lifecycle_node.launch.xml")),
        launch_arguments={"model_path": LaunchConfiguration("model_path"), "autostart": "true"}.items(),
    )
    return launch.LaunchDescription([DeclareLaunchArgument("model_path"), include, launch_testing.actions.ReadyToTest()])


class TestAutostart(unittest.TestCase):
    def test_node_is_active_and_publishes_without_a_manager(self) -> None:
        probe = Probe()
        try:
            commands = probe.record(TwistStamped, "cmd_vel")
            probe.spin_until(lambda: commands, 20.0, "hover commands from the autostarted node")
            reply = probe.call(GetState, "/lnn_node/get_state", GetState.Request())
            self.assertEqual(reply.current_state.label, "active")
        finally:
            probe.close()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_code_0(self, proc_info) -> None:  # type: ignore[no-untyped-def]
        launch_testing.asserts.assertExitCodes(proc_info)
