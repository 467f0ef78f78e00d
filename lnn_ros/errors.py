"""Exception classes shared across lnn_ros.

Every message is a full sentence that quotes the bad value and says what to fix.
"""


class LnnRosError(Exception):
    """Base class of every error lnn_ros raises on purpose."""


class BundleError(LnnRosError):
    """A bundle folder, its manifest or one of its graphs is missing, corrupt or inconsistent."""


class EngineError(LnnRosError):
    """The engine was configured or called in a way it cannot honour."""
