"""Build glue for pip and colcon (ament_python); the metadata lives in pyproject.toml.

What pyproject cannot say for a ROS 2 package is said here: the version (package.xml's, the one
version number), the data files ROS finds through the ament index (package.xml, launch/,
config/, every shipped bundle in models/), and the applications that live beside the library
and install as their own top-level packages: examples/ -> ``lnn_ros_examples``, benchmarks/ ->
``lnn_ros_benchmarks``, tools/ -> ``lnn_ros_tools`` (the library never imports them).
"""

import xml.etree.ElementTree as ET
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "lnn_ros"
APPLICATIONS = {"lnn_ros_examples": "examples", "lnn_ros_benchmarks": "benchmarks", "lnn_ros_tools": "tools"}


def package_version() -> str:
    version = ET.parse("package.xml").getroot().findtext("version")
    if not version:
        raise SystemExit("package.xml has no <version>.")
    return version.strip()


def packages() -> list[str]:
    found = find_packages(include=[PACKAGE, f"{PACKAGE}.*"])
    for name, folder in APPLICATIONS.items():
        found += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


def model_data_files() -> list[tuple[str, list[str]]]:
    """Install every shipped bundle under share/lnn_ros/models/<name>/."""
    return [
        (f"share/{PACKAGE}/{folder}", sorted(str(p) for p in Path(folder).iterdir() if p.is_file()))
        for folder in sorted({str(p.parent) for p in Path("models").glob("*/manifest.yaml")})
    ]


setup(
    version=package_version(),
    python_requires=">=3.10",
    packages=packages(),
    package_dir=APPLICATIONS,
    package_data={"lnn_ros_tools.arm": ["*.sh"]},
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
    zip_safe=False,
)
