"""launch_testing: ``launch/lnn_node.launch.xml`` through the real launcher, from the installed package.

Run by ``tests/test_launch_files.py`` as ``launch_test lnn_node_launch.py model_path:=... params_file:=...``
(the launch file's own arguments, plus a namespace and remaps set here). Checks that the node comes up
with the parameters of the YAML file, in the namespace, on the remapped topics, flies the policy from
messages on those topics, and exits with code 0 and no traceback when the launch ends (SIGINT).
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
from lnn_launch_probe import Probe, fly, stamp_ns
from rcl_interfaces.srv import GetParameters

import launch

NAMESPACE = "drone1"
IMU_TOPIC = "/sensors/imu"
CAMERA_TOPIC = "/sensors/camera"
CMD_TOPIC = "/fc/cmd_vel"
# What the test's parameter file sets (tests/test_launch_files.py writes it).
EXPECTED = {"stale_timeout_s": 0.25, "diagnostics_period_s": 0.2, "command_frame_id": "fc_heading", "input_qos_depth": 7}


def generate_test_description() -> launch.LaunchDescription:
    share = get_package_share_directory("lnn_ros")
    include = IncludeLaunchDescription(
        AnyLaunchDescriptionSource(os.path.join(share, "launch", "lnn_node.launch.xml")),
        launch_arguments={
            "model_path": LaunchConfiguration("model_path"),
            "params_file": LaunchConfiguration("params_file"),
            "namespace": NAMESPACE,
            "imu_topic": IMU_TOPIC,
            "camera_topic": CAMERA_TOPIC,
            "cmd_vel_topic": CMD_TOPIC,
        }.items(),
    )
    return launch.LaunchDescription([
        DeclareLaunchArgument("model_path"),
        DeclareLaunchArgument("params_file"),
        include,
        launch_testing.actions.ReadyToTest(),
    ])


class TestNodeUp(unittest.TestCase):
    probe: Probe

    @classmethod
    def setUpClass(cls) -> None:
        cls.probe = Probe()
        cls.commands = cls.probe.record(TwistStamped, CMD_TOPIC)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.probe.close()

    def test_parameters_come_from_the_yaml_file(self) -> None:
        names = [*EXPECTED, "model_path"]
        reply = self.probe.call(GetParameters, f"/{NAMESPACE}/lnn_node/get_parameters", GetParameters.Request(names=names))
        values = dict(zip(names, reply.values))
        self.assertAlmostEqual(values["stale_timeout_s"].double_value, EXPECTED["stale_timeout_s"])
        self.assertAlmostEqual(values["diagnostics_period_s"].double_value, EXPECTED["diagnostics_period_s"])
        self.assertEqual(values["command_frame_id"].string_value, EXPECTED["command_frame_id"])
        self.assertEqual(values["input_qos_depth"].integer_value, EXPECTED["input_qos_depth"])
        self.assertTrue(values["model_path"].string_value.endswith("drone_stack_mlp"), values["model_path"])

    def test_node_is_in_the_namespace_on_the_remapped_topics(self) -> None:
        node = self.probe.node
        self.probe.spin_until(lambda: ("lnn_node", f"/{NAMESPACE}") in node.get_node_names_and_namespaces(), 20.0, "the node")

        def graph() -> tuple[dict, dict] | None:
            publishers = dict(node.get_publisher_names_and_types_by_node("lnn_node", f"/{NAMESPACE}"))
            subscriptions = dict(node.get_subscriber_names_and_types_by_node("lnn_node", f"/{NAMESPACE}"))
            return (publishers, subscriptions) if CMD_TOPIC in publishers and {IMU_TOPIC, CAMERA_TOPIC} <= set(subscriptions) else None

        publishers, subscriptions = self.probe.spin_until(graph, 20.0, "the node's topics")
        self.assertIn(IMU_TOPIC, subscriptions)
        self.assertIn(CAMERA_TOPIC, subscriptions)
        self.assertNotIn(f"/{NAMESPACE}/cmd_vel", publishers)

    def test_policy_flies_from_the_remapped_inputs(self) -> None:
        stamps = fly(self.probe, IMU_TOPIC, CAMERA_TOPIC, self.commands)
        flown = [c for c in self.commands if stamp_ns(c) in stamps]
        self.assertTrue(flown)
        self.assertEqual({c.header.frame_id for c in self.commands}, {EXPECTED["command_frame_id"]})


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_code_0_after_sigint(self, proc_info) -> None:  # type: ignore[no-untyped-def]
        launch_testing.asserts.assertExitCodes(proc_info)

    def test_no_traceback(self, proc_output) -> None:  # type: ignore[no-untyped-def]
        for output in proc_output:
            self.assertNotIn("Traceback", output.text.decode(errors="replace"))
