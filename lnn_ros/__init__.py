"""lnn_ros: liquid neural network policies from PyTorch training to onboard ROS 2 flight."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # ``__version__`` on first use: importlib.metadata scans every installed distribution (0.1-0.3 s),
    # which the node executables must not pay before their signal handlers are in place.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:  # one version number: package.xml's, which setup.py gives the installed distribution
            return version("lnn_ros")
        except PackageNotFoundError:  # imported from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'lnn_ros' has no attribute {name!r}")
