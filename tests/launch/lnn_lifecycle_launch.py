"""launch_testing: ``launch/lnn_lifecycle_node.launch.xml`` (``autostart:=false``) driven through every transition.

Run by ``tests/test_launch_files.py`` as ``launch_test lnn_lifecycle_launch.py model_path:=<a bundle that
does not load>``, with the bundles to swap in named by ``LNN_TEST_GOOD_MODEL`` and ``LNN_TEST_OTHER_MODEL``. Over real DDS, through the standard
lifecycle services (``/lnn_node/change_state``, ``/lnn_node/get_state``): the node starts unconfigured
and publishes nothing; configure with a bundle that does not load fails and leaves it unconfigured and
alive; model_path is set while unconfigured (hot swap) and configure / activate fly; parameters are
refused while configured; deactivate stops cmd_vel at once; cleanup unloads, a second bundle is swapped
in; shutdown finalizes; the process ends with exit code 0 and no traceback.
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
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from lnn_launch_probe import Probe, fly, imu_msg, stamp_ns
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Imu

import launch


def generate_test_description() -> launch.LaunchDescription:
    share = get_package_share_directory("lnn_ros")
    include = IncludeLaunchDescription(
        AnyLaunchDescriptionSource(os.path.join(share, "launch", "lnn_lifecycle_node.launch.xml")),
        launch_arguments={"model_path": LaunchConfiguration("model_path"), "autostart": "false"}.items(),
    )
    return launch.LaunchDescription([
        DeclareLaunchArgument("model_path"),
        include,
        launch_testing.actions.ReadyToTest(),
    ])


def _model(name: str) -> str:
    value = os.environ.get(f"LNN_TEST_{name.upper()}")
    if not value:
        raise AssertionError(f"LNN_TEST_{name.upper()} is not set (tests/test_launch_files.py sets it)")
    return value


class TestTransitions(unittest.TestCase):
    """One lifecycle, in order (the methods are numbered: unittest runs them sorted by name)."""

    probe: Probe

    @classmethod
    def setUpClass(cls) -> None:
        cls.probe = Probe()
        cls.commands = cls.probe.record(TwistStamped, "cmd_vel")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.probe.close()

    def state(self) -> str:
        return self.probe.call(GetState, "/lnn_node/get_state", GetState.Request()).current_state.label

    def change(self, transition: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition
        return bool(self.probe.call(ChangeState, "/lnn_node/change_state", request, timeout_s=60.0).success)

    def set_string(self, name: str, text: str) -> bool:
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=text)
        reply = self.probe.call(SetParameters, "/lnn_node/set_parameters", SetParameters.Request(parameters=[Parameter(name=name, value=value)]))
        return bool(reply.results[0].successful)

    def set_model(self, path: str) -> bool:
        return self.set_string("model_path", path)

    def cmd_vel_publishers(self) -> int:
        return self.probe.node.count_publishers("/cmd_vel")

    def test_1_starts_unconfigured_and_publishes_nothing(self) -> None:
        self.assertEqual(self.state(), "unconfigured")
        self.probe.spin_for(0.5)
        self.assertEqual(self.cmd_vel_publishers(), 0)
        self.assertEqual(self.commands, [])
        # The executor is chosen when the process starts: refused even while unconfigured.
        self.assertFalse(self.set_string("executor", "events"))
        self.assertTrue(self.set_string("executor", "single_threaded"))  # the one it spins: no change

    def test_2_configure_with_a_bundle_that_does_not_load_fails_and_stays_unconfigured(self) -> None:
        self.assertFalse(self.change(Transition.TRANSITION_CONFIGURE))
        self.assertEqual(self.state(), "unconfigured")  # and alive: it answered

    def test_3_hot_swap_then_configure_and_activate_fly(self) -> None:
        self.assertTrue(self.set_model(_model("good_model")))
        self.assertTrue(self.change(Transition.TRANSITION_CONFIGURE))
        self.assertEqual(self.state(), "inactive")
        self.assertEqual(self.cmd_vel_publishers(), 0)
        self.assertTrue(self.change(Transition.TRANSITION_ACTIVATE))
        self.assertEqual(self.state(), "active")
        self.probe.spin_until(lambda: self.commands, 10.0, "hover commands once active")
        stamps = fly(self.probe, "imu", "camera/image_raw", self.commands)
        self.assertTrue(any(stamp_ns(c) in stamps for c in self.commands))

    def test_4_parameters_are_refused_while_configured(self) -> None:
        self.assertFalse(self.set_model(_model("other_model")))

    def test_5_deactivate_stops_cmd_vel_at_once_and_keeps_the_model(self) -> None:
        self.assertTrue(self.change(Transition.TRANSITION_DEACTIVATE))
        self.assertEqual(self.state(), "inactive")
        self.probe.spin_for(0.3)  # commands already on the wire
        count = len(self.commands)
        imu_pub = self.probe.node.create_publisher(Imu, "imu", QoSProfile(depth=10))
        for _ in range(20):
            imu_pub.publish(imu_msg(self.probe.now_ns()))
            self.probe.spin_for(0.02)
        self.probe.spin_for(0.5)
        self.assertEqual(len(self.commands), count)
        self.assertEqual(self.cmd_vel_publishers(), 0)
        self.assertTrue(self.change(Transition.TRANSITION_ACTIVATE))  # the model is still loaded
        self.probe.spin_until(lambda: len(self.commands) > count, 10.0, "commands after re-activation")
        self.assertTrue(self.change(Transition.TRANSITION_DEACTIVATE))

    def test_6_cleanup_unloads_and_another_bundle_is_swapped_in(self) -> None:
        self.assertTrue(self.change(Transition.TRANSITION_CLEANUP))
        self.assertEqual(self.state(), "unconfigured")
        self.assertTrue(self.set_model(_model("other_model")))
        self.assertTrue(self.change(Transition.TRANSITION_CONFIGURE))
        self.assertTrue(self.change(Transition.TRANSITION_ACTIVATE))
        count = len(self.commands)
        self.probe.spin_until(lambda: len(self.commands) > count, 10.0, "commands from the swapped bundle")

    def test_7_shutdown_from_active_finalizes(self) -> None:
        self.assertTrue(self.change(Transition.TRANSITION_ACTIVE_SHUTDOWN))
        self.assertEqual(self.state(), "finalized")
        self.assertEqual(self.cmd_vel_publishers(), 0)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_code_0(self, proc_info) -> None:  # type: ignore[no-untyped-def]
        launch_testing.asserts.assertExitCodes(proc_info)

    def test_the_failed_configure_logged_one_error_naming_the_problem(self, proc_output) -> None:  # type: ignore[no-untyped-def]
        text = "".join(output.text.decode(errors="replace") for output in proc_output)
        self.assertNotIn("Traceback", text)
        errors = [line for line in text.splitlines() if "[ERROR]" in line and "Configure failed" in line]
        self.assertEqual(len(errors), 1, text)
        self.assertIn("manifest.yaml", errors[0])
