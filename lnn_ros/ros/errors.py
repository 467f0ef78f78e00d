"""Errors of the ROS adapter."""

from lnn_ros.errors import LnnRosError


class NodeConfigError(LnnRosError):
    """A node parameter is invalid or the configured model cannot be run by the node."""
