"""Errors raised by :mod:`lnn_ros.training`."""

from lnn_ros.errors import LnnRosError


class TrainingError(LnnRosError):
    """Training was configured or fed in a way it cannot honour."""


class DataError(TrainingError):
    """A sequence or dataset file is malformed (shapes, dtypes, non-finite values, Δt < 0)."""


class CheckpointError(TrainingError):
    """A checkpoint folder is missing, corrupt, or in a format lnn_ros refuses to load."""
