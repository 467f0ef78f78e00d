"""The ROS 2 adapter: ``lnn_node`` and ``lnn_lifecycle_node`` (rclpy) over the ROS-free :mod:`lnn_ros.runtime`.

* :mod:`~lnn_ros.ros.flight`: everything the node does with a loaded bundle (topics, timers,
  watchdog, diagnostics), on any rclpy node; :mod:`~lnn_ros.ros.node` (``lnn_node``) starts it at
  once, :mod:`~lnn_ros.ros.lifecycle` (``lnn_lifecycle_node``) under the managed-node state machine;
* :mod:`~lnn_ros.ros.convert`, :mod:`~lnn_ros.ros.diagnostics`: messages <-> runtime records;
  :mod:`~lnn_ros.ros.rate_limit`: ``command_rate_hz``;
* :mod:`~lnn_ros.ros.process`: ``run_node``, the ``main()`` of every lnn_ros node (start-up errors as
  one FATAL line and exit code 1, exit code 0 on SIGINT/SIGTERM); :mod:`~lnn_ros.ros.signals` and
  :mod:`~lnn_ros.ros.entry`: the executables' entry points, quiet signals from the first import on;
* :mod:`~lnn_ros.ros.param_table`: declared parameters in general (``ParamSpec`` tables, their
  checks, unknown names with "did you mean", parameter files, declaring on a node), shared with the
  simulator node; :mod:`~lnn_ros.ros.node_params`: ``lnn_node``'s table (also read by replay);
  :mod:`~lnn_ros.ros.interface`: its name, topics and the streams it feeds.

Only ``flight``, ``node``, ``lifecycle``, ``process``, ``convert`` and ``diagnostics`` import rclpy and
message packages (``param_table`` imports rclpy only inside the functions that declare on a node), so
tools (replay, the tests of parameter files) read the parameter tables and the interface without ROS.
"""
