"""Shared fixtures: ROS isolation for tests that start real rclpy processes."""

from __future__ import annotations

import glob
import os
import random
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


@pytest.fixture
def ros_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for ROS processes of one test: a domain id of its own, localhost only.

    The id is drawn from 1..100 mixed with the pid so that two test runs on one machine
    (CI and a developer) do not see each other's topics. After the test it checks that
    no Fast DDS shared-memory file created during the test was left behind.
    """
    before = _shm_files()
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
    leaked = sorted(_shm_files() - before)
    assert not leaked, f"Fast DDS shared-memory files left behind: {leaked}"
