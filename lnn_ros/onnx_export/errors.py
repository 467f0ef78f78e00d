"""Errors raised by :mod:`lnn_ros.onnx_export`."""

from lnn_ros.errors import LnnRosError


class ExportError(LnnRosError):
    """A model could not be exported, or an exported graph breaks the bundle contract."""


class ParityError(ExportError):
    """An exported graph does not reproduce the PyTorch model within the tolerance."""
