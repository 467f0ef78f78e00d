"""The bag subsystem's exception class."""

from lnn_ros.errors import LnnRosError


class BagError(LnnRosError):
    """A bag cannot be read, written, replayed or played as asked; the message names the file and topic."""
