"""Errors raised by :mod:`lnn_ros.cells`."""

from lnn_ros.errors import LnnRosError


class CellConfigError(LnnRosError, ValueError):
    """A cell, wiring or sequence input was asked for with arguments that cannot work.

    Also a :class:`ValueError`, so callers that validate user input generically still catch it.
    """
