"""The simulator's exception class."""

from lnn_ros.errors import LnnRosError


class SimError(LnnRosError):
    """The simulator was configured or driven in a way it cannot honour, or a demo file is invalid."""
