"""The bundle's error types: every problem with a bundle is a :class:`BundleError`."""

from __future__ import annotations

from lnn_ros.errors import BundleError

__all__ = ["BundleError", "ManifestError"]


class ManifestError(BundleError):
    """``manifest.yaml`` is unreadable, malformed or inconsistent."""
