"""Errors of the aarch64 verification."""

from __future__ import annotations

from lnn_ros.errors import LnnRosError


class ArmError(LnnRosError):
    """Base class of the errors raised by :mod:`lnn_ros_tools.arm`."""


class ArmSetupError(ArmError):
    """The aarch64 emulation (qemu, arm64 sysroot, aarch64 wheels) cannot be set up or run.

    The message says what is missing and how to fix it.
    """


class ArmVerifyError(ArmError):
    """A bundle cannot be verified: missing folder, bad manifest, unexpected graph inputs,
    or the emulated process failed."""
