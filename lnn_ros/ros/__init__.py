"""The ROS 2 adapter: ``lnn_node`` (rclpy) over the ROS-free :mod:`lnn_ros.runtime`.

* :mod:`~lnn_ros.ros.node`: the node; :mod:`~lnn_ros.ros.convert` and
  :mod:`~lnn_ros.ros.diagnostics`: messages <-> runtime records;
* :mod:`~lnn_ros.ros.process`: ``run_node``, the ``main()`` of every lnn_ros node (start-up
  errors as one FATAL line and exit code 1, clean exit on SIGINT/SIGTERM);
* :mod:`~lnn_ros.node_spec.param_table`: declared parameters (``ParamSpec`` tables, their checks,
  declaring them on a node), shared with the simulator node;
* :mod:`~lnn_ros.node_spec.params`: ``lnn_node``'s table and its parameter files;
  :mod:`~lnn_ros.node_spec.interface`: its name, topics and the streams it feeds.

Only ``node``, ``process``, ``convert`` and ``diagnostics`` import rclpy and message packages
(``parameters`` imports rclpy only inside the functions that declare on a node), so tools (the
launch-file checks, replay) read the parameter tables and the interface without ROS installed.
"""
