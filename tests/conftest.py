"""Shared fixtures: ROS isolation for tests that start real rclpy processes; skips on partial installs."""

from __future__ import annotations

import ast
import glob
import importlib.util
import os
import random
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

# ---------------------------------------------------------------------- partial installs
OPTIONAL_MODULES = {
    "torch": "the 'train' extra (pip install 'lnn_ros[train]')",
    "onnx": "the 'train' extra (pip install 'lnn_ros[train]')",
    "safetensors": "the 'train' extra (pip install 'lnn_ros[train]')",
    "ncps": "the 'test' extra (pip install 'lnn_ros[test]')",
    "rosbags": "the 'bag' extra (pip install 'lnn_ros[bag]')",
    "rotorpy": "the 'sim' extra (pip install 'lnn_ros[sim]')",
    "scipy": "the 'sim' extra (pip install 'lnn_ros[sim]')",
    "matplotlib": "the 'plot' extra (pip install 'lnn_ros[plot]')",
    "hypothesis": "the 'test' extra (pip install 'lnn_ros[test]')",
    "rclpy": "ROS 2 (source /opt/ros/<distro>/setup.bash, or pip install 'lnn_ros[ros]')",
}
"""Modules a test file may need that a robot install (ROS + onnxruntime, no torch) may lack, with what installs them."""


@cache
def _module_files(name: str) -> tuple[Path, ...]:
    """The files importing ``name`` runs: a test helper, or an lnn_ros module with its packages' __init__."""
    helper = TESTS / f"{name}.py"
    if "." not in name and helper.is_file():
        return (helper,)
    parts = name.split(".")
    if parts[0] != "lnn_ros":
        return ()
    files = []
    for depth in range(1, len(parts) + 1):
        base = REPO.joinpath(*parts[:depth])
        for candidate in (base / "__init__.py", base.with_suffix(".py")):
            if candidate.is_file():
                files.append(candidate)
    return tuple(files)


@cache
def _imports(path: Path) -> tuple[str, ...]:
    """Module names imported at module level by ``path`` (``from a import b`` gives ``a`` and ``a.b``)."""
    names: list[str] = []
    statements = list(ast.parse(path.read_text()).body)
    while statements:
        node = statements.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # never runs
        if isinstance(node, (ast.Try, ast.If, ast.With)):  # still run at import time
            statements += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return tuple(names)


@cache
def _imported_roots(path: Path) -> frozenset[str]:
    """Third-party top-level modules that importing ``path`` imports (module level only, through lnn_ros and test helpers)."""
    roots: set[str] = set()
    seen, todo = {path}, [path]
    while todo:
        for name in _imports(todo.pop()):
            files = _module_files(name)
            root = name.split(".")[0]
            if not files and root != "lnn_ros" and not (TESTS / f"{root}.py").is_file():
                roots.add(root)
            for file in files:
                if file not in seen:
                    seen.add(file)
                    todo.append(file)
    return frozenset(roots)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed install
        return False


class _MissingModule(pytest.Module):
    """A test file whose imports are not installed: one skip with the reason, not a collection error."""

    reason = ""

    def collect(self) -> list[pytest.Item]:
        pytest.skip(self.reason)


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Skip (with what to install) a test file that imports an optional module this install lacks.

    A robot install (``colcon test`` next to /opt/ros, no torch, no rosbags) then runs what it can.
    """
    missing = sorted(m for m in _imported_roots(Path(module_path)) & set(OPTIONAL_MODULES) if not _installed(m))
    if not missing:
        return None
    module = _MissingModule.from_parent(parent, path=Path(module_path))
    module.reason = f"needs {', '.join(missing)}: install {OPTIONAL_MODULES[missing[0]]}"
    return module

_SHM_PATTERNS = (
    "/dev/shm/fastdds_*",
    "/dev/shm/sem.fastdds_*",
    "/dev/shm/fastrtps_*",
    "/dev/shm/sem.fastrtps_*",
    "/dev/shm/fast_datasharing*",
)


def _missing_optional(exc: BaseException | None) -> str | None:
    """The optional module whose absence raised ``exc`` (or an error it caused), if any."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            root = exc.name.split(".")[0]
            if root in OPTIONAL_MODULES and not _installed(root):
                return root
        exc = exc.__cause__ or exc.__context__
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that needs an optional module this install lacks (imported lazily, in a fixture) is a skip with the reason."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    missing = _missing_optional(call.excinfo.value) if call.excinfo is not None and report.failed else None
    if missing is not None:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: needs {missing}: install {OPTIONAL_MODULES[missing]}")


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
        RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
        ROS_LOG_DIR=str(tmp_path / "ros_log"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("ROS_STATIC_PEERS", None)
    # Jazzy's rcl warns about ROS_LOCALHOST_ONLY (two WARN lines in every node's output) and, when it is
    # set at all, ignores ROS_AUTOMATIC_DISCOVERY_RANGE; Kilted ignores it. Humble would need it.
    env.pop("ROS_LOCALHOST_ONLY", None)
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
