"""Shared fixtures: ROS isolation for tests that start real rclpy processes."""

from __future__ import annotations

import glob
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_SHM_PATTERNS = (
    "/dev/shm/fastdds_*",
    "/dev/shm/sem.fastdds_*",
    "/dev/shm/fastrtps_*",
    "/dev/shm/sem.fastrtps_*",
    "/dev/shm/fast_datasharing*",
)


def _shm_files() -> set[str]:
    return {path for pattern in _SHM_PATTERNS for path in glob.glob(pattern)}


def _shm_files_in_use() -> set[str]:
    """Fast DDS files some live process has mapped (and their ``_el`` lock files), from /proc.

    A file created during a test but still mapped by a live process belongs to a process
    that is still running (another test run on this machine, a developer's node): not a leak.
    """
    in_use: set[str] = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):
        try:
            text = Path(maps).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/dev/shm/"):
                in_use.add(parts[5].strip())
    return in_use | {f"{path}_el" for path in in_use}


def _live_children() -> set[int]:
    """Pids of this process's children that are still running (not zombies)."""
    me = os.getpid()
    children: set[int] = set()
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            children.add(int(Path(stat).parent.name))
    return children


_PORT = re.compile(r"port(\d+)")


def _may_be_ours(path: str, domain: int) -> bool:
    """Whether a Fast DDS file can belong to this test's domain.

    Files named after a port (``sem.fastdds_port<N>_mutex``) belong to the domain whose port range
    (RTPS well-known ports: 7400 + 250 * domain .. + 249) holds N; another test run on this machine
    (another domain) creates and leaves its own, which are not this test's leak. Other files
    (segments with random names) cannot be attributed and always count.
    """
    match = _PORT.search(path)
    if match is None:
        return True
    base = 7400 + 250 * domain
    return base <= int(match.group(1)) < base + 250


@pytest.fixture
def ros_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for ROS processes of one test: a domain id of its own, localhost only.

    The id is drawn from 1..100 mixed with the pid so that two test runs on one machine
    (CI and a developer) do not see each other's topics. After the test it checks that no
    Fast DDS shared-memory file created during the test was left behind by a process that
    has exited (files still mapped by a live process belong to someone still running).
    """
    before = _shm_files()
    children_before = _live_children()
    env = dict(os.environ)
    domain = 1 + (os.getpid() * 7 + random.randrange(1 << 16)) % 100
    env.update(
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOCALHOST_ONLY="1",
        RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
        ROS_LOG_DIR=str(tmp_path / "ros_log"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("ROS_STATIC_PEERS", None)
    yield env
    stray = sorted(_live_children() - children_before)
    assert not stray, f"processes started by the test are still running: {stray}"
    new = {path for path in _shm_files() - before if _may_be_ours(path, domain)}
    leaked = sorted(new - _shm_files_in_use()) if new else []
    assert not leaked, f"Fast DDS shared-memory files left behind by processes that have exited: {leaked}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark by what a test uses, so ``-m "not ros and not arm"`` selects the fast suite without a list to keep.

    ``ros``: the test starts rclpy processes (it takes the ``ros_env`` fixture); ``arm``: it runs under
    aarch64 emulation (``test_arm_*.py``). ``slow`` is set by hand on the few long tests.
    """
    for item in items:
        if "ros_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ros)
        if item.path.name.startswith("test_arm_"):
            item.add_marker(pytest.mark.arm)
