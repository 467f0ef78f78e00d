"""lnn_ros's one source of package metadata, for pip and for colcon (ament_python).

Why here and not in pyproject.toml's [project]: ROS 2 Humble's colcon builds with Ubuntu
22.04's setuptools 59, which ignores [project] (it would install a package named UNKNOWN with no
executables). The version is package.xml's (ROS needs it there; one version number). Besides
the metadata: the data files ROS finds through the ament index (package.xml, launch/, config/,
every shipped bundle in models/), and the applications that live beside the library and install
as their own top-level packages: examples/ -> ``lnn_ros_examples``, benchmarks/ ->
``lnn_ros_benchmarks``, tools/ -> ``lnn_ros_tools`` (the library never imports them).
"""

import xml.etree.ElementTree as ET
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "lnn_ros"
APPLICATIONS = {"lnn_ros_examples": "examples", "lnn_ros_benchmarks": "benchmarks", "lnn_ros_tools": "tools"}

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
    # Test-only: the reference implementation for numerical parity, the runner, property-based
    # tests, and colcon (the package is built with it for real).
    "test": [
        "ncps==1.0.1",
        "pytest>=7",
        "pytest-timeout>=2",
        "hypothesis>=6",
        "colcon-core",
        "colcon-python-setup-py",
        "colcon-ros",
        "ros-ament-package",
    ],
    # The checks ./run.sh test runs before the tests (configured in pyproject.toml).
    "dev": ["ruff>=0.6", "mypy>=1.10", "import-linter>=2.0", "types-PyYAML"],
}
EXTRAS["all"] = sorted({dep for deps in EXTRAS.values() for dep in deps})


def package_version() -> str:
    version = ET.parse("package.xml").getroot().findtext("version")
    if not version:
        raise SystemExit("package.xml has no <version>.")
    return version.strip()


def packages() -> list:
    found = find_packages(include=[PACKAGE, f"{PACKAGE}.*"])
    for name, folder in APPLICATIONS.items():
        found += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


def model_data_files() -> list:
    """Install every shipped bundle under share/lnn_ros/models/<name>/."""
    return [
        (f"share/{PACKAGE}/{folder}", sorted(str(p) for p in Path(folder).iterdir() if p.is_file()))
        for folder in sorted({str(p.parent) for p in Path("models").glob("*/manifest.yaml")})
    ]


setup(
    name=PACKAGE,
    version=package_version(),
    description="Liquid neural network (CfC / LTC) policies for ROS 2: train, export to ONNX, fly.",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    maintainer="lnn_ros maintainers",
    maintainer_email="maintainers@lnn-ros.dev",
    python_requires=">=3.10",
    # The onboard part (engine, node, replay) needs only these; numpy 1.21 = Ubuntu 22.04 / Humble.
    # onnx: the bundle loader checks opset, operators and external data on the ModelProto, which
    # onnxruntime cannot list (docs/bundle.md, "Trust rules"); it brings only protobuf with it.
    # pillow: CompressedImage decoding (jpeg via libjpeg-turbo, png); Ubuntu 22.04 / JetPack ship python3-pil 9.0.
    install_requires=["numpy>=1.21", "onnxruntime>=1.16", "pyyaml>=5.4", "onnx>=1.16", "pillow>=9.0"],
    extras_require=EXTRAS,
    packages=packages(),
    package_dir=APPLICATIONS,
    package_data={"lnn_ros_tools.arm": ["*.sh"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.*")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        *model_data_files(),
    ],
    entry_points={
        "console_scripts": [
            "lnn-ros = lnn_ros.cli:main",
            "lnn_node = lnn_ros.ros.node:main",
            "sim_drone_node = lnn_ros.sim.ros.node:main",
        ],
    },
    zip_safe=False,
)
