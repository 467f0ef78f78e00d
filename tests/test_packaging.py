"""The package installs as a ROS 2 ament_python package: package.xml, setup.py, colcon."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lnn_ros import __version__

REPO = Path(__file__).resolve().parent.parent
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def test_versions_agree_and_maintainer_email_is_valid() -> None:
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "lnn_ros"
    assert root.findtext("export/build_type") == "ament_python"
    assert root.findtext("version") == __version__  # the installed version is package.xml's
    assert not re.search(r"^\[project\]", (REPO / "pyproject.toml").read_text(), re.MULTILINE)  # setup.py is the one metadata source
    for maintainer in root.findall("maintainer"):
        assert EMAIL.match(maintainer.get("email", "")), maintainer.get("email")


def test_top_level_folders_have_their_roles_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for folder in ("lnn_ros/", "models/", "examples/", "benchmarks/", "tools/", "tests/", "results/", "docs/"):
        assert (REPO / folder).is_dir(), folder
        assert f"`{folder}`" in readme, f"README does not explain {folder}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "./run.sh test" in readme and "./run.sh demo" in readme
    assert re.search(r"^\./run\.sh test$", ci, re.MULTILINE)


def test_colcon_build_installs_executables_where_ros2_run_finds_them(tmp_path: Path) -> None:
    colcon = shutil.which("colcon") or str(Path(__import__("sys").executable).parent / "colcon")
    if not Path(colcon).exists():
        pytest.fail("colcon is not installed; it comes with the 'test' extra (pip install -e '.[test]').")
    src = tmp_path / "src" / "lnn_ros"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "*.egg-info", "__pycache__", "results"))
    out = subprocess.run([colcon, "build", "--base-paths", "src"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    prefix = tmp_path / "install" / "lnn_ros"
    for exe in ("lnn_node", "lnn-ros", "sim_drone_node"):
        assert (prefix / "lib" / "lnn_ros" / exe).is_file(), exe
    share = prefix / "share" / "lnn_ros"
    assert (share / "package.xml").is_file()
    assert (share / "config" / "lnn_node.yaml").is_file()
    assert list((share / "launch").glob("*.launch.xml"))
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "lnn_ros").is_file()
    # ament_python (not plain python): colcon wrote the package's environment hooks.
    assert (share / "package.dsv").is_file()


def test_metadata_builds_with_humbles_setuptools(tmp_path: Path) -> None:
    """Ubuntu 22.04 (ROS 2 Humble) ships setuptools 59, which ignores pyproject's [project]:
    colcon there must still get the package's name, requirements and executables."""
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "setuptools==59.6.0"], capture_output=True, text=True, timeout=300
    )
    if install.returncode != 0:
        pytest.skip(f"setuptools 59.6.0 could not be installed (no package index?): {install.stderr.strip()[-200:]}")
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "*.egg-info", "__pycache__", "results", "runs", "models"))
    (src / "models").mkdir()
    out = subprocess.run([str(python), "setup.py", "-q", "egg_info", "-e", str(tmp_path)], cwd=src, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    (info,) = tmp_path.glob("*.egg-info")
    pkg_info = (info / "PKG-INFO").read_text()
    assert "Name: lnn-ros" in pkg_info or "Name: lnn_ros" in pkg_info, pkg_info[:300]
    scripts = (info / "entry_points.txt").read_text()
    for exe in ("lnn-ros = lnn_ros.cli:main", "lnn_node = lnn_ros.ros.node:main", "sim_drone_node = lnn_ros.sim.ros.node:main"):
        assert exe in scripts
    assert "onnxruntime>=1.16" in (info / "requires.txt").read_text()


@pytest.mark.parametrize(
    "module", ["lnn_ros_examples.sine", "lnn_ros_examples.drone_policy.recipe", "lnn_ros_benchmarks.engine", "lnn_ros_tools.arm"]
)
def test_applications_run_as_modules_from_any_folder(module: str, tmp_path: Path) -> None:
    """The applications beside the library are installed packages: ``python -m`` works outside the checkout."""
    import sys

    out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
