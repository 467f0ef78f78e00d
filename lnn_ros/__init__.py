"""lnn_ros: liquid neural network policies from PyTorch training to onboard ROS 2 flight."""

from importlib.metadata import PackageNotFoundError, version

try:  # one version number: package.xml's, which setup.py gives the installed distribution
    __version__ = version("lnn_ros")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
