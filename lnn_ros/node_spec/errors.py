"""Errors of a node's configuration (parameters, the bundle it is given), raised with or without ROS."""

from lnn_ros.errors import LnnRosError


class NodeConfigError(LnnRosError):
    """A node parameter is invalid or the configured model cannot be run by the node."""
