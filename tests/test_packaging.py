"""The package installs as a ROS 2 ament_python package: package.xml, setup.py, colcon."""

from __future__ import annotations

import os
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
    assert 'dynamic = ["version"' in (REPO / "pyproject.toml").read_text()
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
    for exe in ("lnn_node", "lnn_lifecycle_node", "sim_drone_node"):  # where ros2 run / ros2 launch look
        assert os.access(prefix / "lib" / "lnn_ros" / exe, os.X_OK), exe
    assert (prefix / "bin" / "lnn-ros").is_file()
    share = prefix / "share" / "lnn_ros"
    assert (share / "package.xml").is_file()
    assert (share / "config" / "lnn_node.yaml").is_file()
    assert list((share / "launch").glob("*.launch.xml"))
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "lnn_ros").is_file()
    # ament_python (not plain python): colcon wrote the package's environment hooks.
    assert (share / "package.dsv").is_file()
