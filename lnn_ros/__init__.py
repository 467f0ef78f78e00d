"""lnn_ros: liquid neural network policies from PyTorch training to onboard ROS 2 flight."""

__version__ = "0.1.0"
