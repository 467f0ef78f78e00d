"""The ROS 2 adapter: ``lnn_node`` and ``lnn_lifecycle_node`` (rclpy) over :mod:`lnn_ros.node_spec` and :mod:`lnn_ros.runtime`.

* :mod:`~lnn_ros.ros.flight`: everything the node does with a loaded bundle (topics, timers,
  watchdog, diagnostics), on any rclpy node; :mod:`~lnn_ros.ros.node` (``lnn_node``) starts it at
  once, :mod:`~lnn_ros.ros.lifecycle` (``lnn_lifecycle_node``) under the managed-node state machine;
* :mod:`~lnn_ros.ros.convert`, :mod:`~lnn_ros.ros.diagnostics`: messages <-> runtime records;
  :mod:`~lnn_ros.ros.rate_limit`: ``command_rate_hz`` (ROS-free);
* :mod:`~lnn_ros.ros.declare`: declaring a node's parameter table on an rclpy node (unknown names
  refused with a "did you mean", as in a parameter file);
* :mod:`~lnn_ros.ros.process`: ``run_node``, the ``main()`` of every lnn_ros node (start-up errors as
  one FATAL line and exit code 1, exit code 0 on SIGINT/SIGTERM); :mod:`~lnn_ros.ros.signals` and
  :mod:`~lnn_ros.ros.entry`: the executables' entry points, quiet signals from the first import on.

The node's name, topics, parameter table and ``NodeParams`` live in :mod:`lnn_ros.node_spec`
(without rclpy), shared with the bag replay.
"""
