"""lnn_ros: liquid neural network policies from PyTorch training to onboard ROS 2 flight.

The onboard part (engine, node, replay) needs only numpy, onnxruntime and pyyaml.
Training and export (torch, onnx) live in the ``train`` extra; the pip ROS 2 wheels
live in the ``ros`` extra so that they never shadow a system ROS install's rclpy.
"""
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "lnn_ros"
VERSION = "0.1.0"  # keep equal to package.xml <version>

ROS_WHEELS = [
    "ros-rclpy",
    "ros-rmw-fastrtps-cpp",
    "ros-sensor-msgs",
    "ros-geometry-msgs",
    "ros-std-msgs",
    "ros-std-srvs",
    "ros-diagnostic-msgs",
    "ros-rosgraph-msgs",
]

EXTRAS = {
    # Training and export: torch pinned to the CPU build this project is tested with.
    "train": ["torch==2.13.0", "onnx>=1.16", "onnxscript>=0.2", "safetensors>=0.4", "tqdm>=4.60"],
    # Rosbag replay, recording and training from bags (no ROS install needed).
    "bag": ["rosbags>=0.10", "tqdm>=4.60"],
    # Plots written by the demo, the example and replay.
    "plot": ["matplotlib>=3.7"],
    # Simulated drone.
    "sim": ["rotorpy==3.0.0", "scipy>=1.10"],
    # ROS 2 from PyPI for pip-only installs and CI. On a robot, rclpy comes from /opt/ros.
    "ros": ROS_WHEELS,
    # Test-only: the reference implementation for numerical parity, and the runner.
    "test": [
        "ncps==1.0.1",
        "pytest>=7",
        "pytest-timeout>=2",
        # `colcon build` of this package is tested for real.
        "colcon-core",
        "colcon-python-setup-py",
        "colcon-ros",
        "colcon-bash",
        "ros-ament-package",
    ],
}


def model_data_files() -> list[tuple[str, list[str]]]:
    """Install every shipped bundle under share/lnn_ros/models/<name>/."""
    return [
        (f"share/{PACKAGE}/{folder}", sorted(str(p) for p in Path(folder).iterdir() if p.is_file()))
        for folder in sorted({str(p.parent) for p in Path("models").glob("*/manifest.yaml")})
    ]


EXTRAS["all"] = sorted({dep for deps in EXTRAS.values() for dep in deps})

setup(
    name=PACKAGE,
    version=VERSION,
    packages=find_packages(exclude=["tests", "tests.*"]),
    python_requires=">=3.10",
    install_requires=["numpy>=1.21", "onnxruntime>=1.16", "pyyaml>=5.4"],  # numpy 1.21 = Ubuntu 22.04 / Humble
    extras_require=EXTRAS,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        # What `ros2 run` / `ros2 launch` start: plain scripts copied as they are (console-script wrappers
        # written by `setup.py install` import importlib.metadata first, where Ctrl-C would be a traceback).
        (f"lib/{PACKAGE}", sorted(glob("bin/*"))),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.*")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        *model_data_files(),
    ],
    zip_safe=True,
    maintainer="lnn_ros maintainers",
    maintainer_email="maintainers@lnn-ros.dev",
    description="Liquid neural network (CfC / LTC) policies for ROS 2: train, export to ONNX, fly.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "lnn-ros = lnn_ros.cli:main",
            "lnn_node = lnn_ros.ros.entry:lnn_node",
            "lnn_lifecycle_node = lnn_ros.ros.entry:lnn_lifecycle_node",
            "sim_drone_node = lnn_ros.ros.entry:sim_drone_node",
        ],
    },
)
