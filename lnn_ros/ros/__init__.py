"""The ROS 2 adapter: ``lnn_node`` (rclpy) over the ROS-free :mod:`lnn_ros.runtime`.

Only :mod:`lnn_ros.ros.node`, :mod:`~lnn_ros.ros.convert` and :mod:`~lnn_ros.ros.diagnostics`
import rclpy and message packages; :mod:`lnn_ros.ros.params` does not, so tools (e.g. the
launch-file checks) can read the declared parameter names without ROS installed.
"""
