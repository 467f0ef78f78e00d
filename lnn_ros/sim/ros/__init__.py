"""``sim_drone_node``: the simulator as a ROS 2 node, its parameters and its flight log."""
