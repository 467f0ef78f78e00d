"""What ``lnn_node`` is, without rclpy: its name, topics, parameter table and :class:`NodeParams`.

Shared by the ROS adapter (:mod:`lnn_ros.ros`) and the bag replay (:mod:`lnn_ros.bag.replay`), so
both run a bundle with the same settings and refuse the same bundles.
"""
