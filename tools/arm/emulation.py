"""Set up and run an aarch64 Python with numpy + onnxruntime under qemu user-mode emulation.

The cache folder (``$LNN_ROS_ARM_CACHE`` or ``~/.cache/lnn_ros/arm64``) holds::

    qemu-aarch64-static   taken out of Debian's qemu-user-static package (no binfmt, no chroot)
    sysroot/              arm64 python3.X-minimal + libpython3.X-stdlib + libstdc++6, dpkg -x'ed
    site/                 aarch64 wheels of the host's exact onnxruntime and numpy versions
    stamp.json            what was set up; a complete, matching stamp makes set-up a no-op

A process is run as ``qemu-aarch64-static -L sysroot sysroot/usr/bin/python3.X ...``.
Run ``python -m lnn_ros_tools.arm`` (or ``tools/arm/setup_emulation.sh``) to set it up.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lnn_ros_tools.arm import apt
from lnn_ros_tools.arm.cpus import ArmCpu
from lnn_ros_tools.arm.errors import ArmSetupError

CACHE_ENV = "LNN_ROS_ARM_CACHE"
DEFAULT_CACHE = Path("~/.cache/lnn_ros/arm64")
STAMP_NAME = "stamp.json"
STAMP_SCHEMA = 1
QEMU_PACKAGE = "qemu-user-static"
QEMU_MEMBER = "./usr/bin/qemu-aarch64-static"
PINNED_WHEELS = ("onnxruntime", "numpy")
# protobuf's aarch64 wheel is manylinux2014 only, onnxruntime's manylinux_2_27/2_28.
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64")
_SMOKE = (
    "import json, platform, numpy, onnxruntime; "
    "print(json.dumps({'machine': platform.machine(), 'python': platform.python_version(), "
    "'numpy': numpy.__version__, 'onnxruntime': onnxruntime.__version__}))"
)

Log = Callable[[str], None]


def default_cache_dir() -> Path:
    """``$LNN_ROS_ARM_CACHE`` if set, else ``~/.cache/lnn_ros/arm64``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def host_wheel_versions() -> dict[str, str]:
    """Versions of onnxruntime and numpy in this (x86) environment: the aarch64 side must match.

    Raises:
        ArmSetupError: when one of them is not installed here.
    """
    versions = {}
    for name in PINNED_WHEELS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise ArmSetupError(
                f"{name!r} is not installed in this Python ({sys.executable!r}); the aarch64 side is "
                f"pinned to the host's version. Install lnn_ros (pip install -e .) first."
            ) from None
    return versions


@dataclass(frozen=True)
class Emulation:
    """A complete emulation cache: run aarch64 Python processes with :meth:`run`."""

    cache_dir: Path
    python_version: str
    stamp: Mapping[str, Any]

    @property
    def qemu(self) -> Path:
        return self.cache_dir / "qemu-aarch64-static"

    @property
    def sysroot(self) -> Path:
        return self.cache_dir / "sysroot"

    @property
    def python(self) -> Path:
        return self.sysroot / "usr" / "bin" / f"python{self.python_version}"

    @property
    def site(self) -> Path:
        return self.cache_dir / "site"

    @property
    def wheels(self) -> dict[str, str]:
        """Pinned aarch64 wheel versions (``{'onnxruntime': '1.32.0', 'numpy': '2.4.6'}``)."""
        return dict(self.stamp["site"]["wheels"])

    def command(self, args: Sequence[str]) -> list[str]:
        """The command line that runs ``python3.X args...`` under qemu."""
        return [str(self.qemu), "-L", str(self.sysroot), str(self.python), *args]

    def environment(self, cpu: ArmCpu) -> dict[str, str]:
        """A clean environment: nothing of the host's (OPENBLAS_CORETYPE=Haswell, ...) leaks in."""
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.cache_dir / "home"),  # onnxruntime keeps a telemetry id under ~/.cache
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(self.site),
            "PYTHONNOUSERSITE": "1",
            "PYTHONUNBUFFERED": "1",
            "QEMU_CPU": cpu.value,
        }

    def run(
        self, args: Sequence[str], *, cpu: ArmCpu, cwd: Path, timeout_s: float = 900.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python3.X args...`` emulated on ``cpu`` and wait for it.

        ``sysroot/proc/cpuinfo`` is written for ``cpu`` first; a lock on the cache keeps a
        concurrent run or set-up from changing it meanwhile.

        Raises:
            ArmSetupError: when the process cannot be started or times out.
        """
        with _locked(self.cache_dir):
            cpuinfo = self.sysroot / "proc" / "cpuinfo"
            try:
                cpuinfo.parent.mkdir(exist_ok=True)
                cpuinfo.write_text(cpu.cpuinfo(os.cpu_count() or 1))
            except OSError as exc:
                raise _not_writable(self.cache_dir, exc) from None
            try:
                return subprocess.run(
                    self.command(args),
                    cwd=cwd,
                    env=self.environment(cpu),
                    capture_output=True,
                    text=True,
                    timeout=timeout_s,
                    check=False,
                    preexec_fn=_no_core_dumps,
                )
            except subprocess.TimeoutExpired:
                raise ArmSetupError(
                    f"The emulated aarch64 process {' '.join(args)!r} ran longer than {timeout_s:.0f} s "
                    "and was stopped."
                ) from None
            except OSError as exc:
                raise ArmSetupError(
                    f"Could not start {str(self.qemu)!r} ({exc}); delete {str(self.cache_dir)!r} and "
                    "set the emulation up again."
                ) from None


def _no_core_dumps() -> None:
    # qemu writes qemu_*.core files into the working folder when the guest crashes.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _not_writable(cache_dir: Path, exc: OSError) -> ArmSetupError:
    return ArmSetupError(
        f"The emulation cache folder {str(cache_dir)!r} is not writable ({exc}); set {CACHE_ENV} to a "
        "folder of your own (setting it up needs root only while arm64 is not yet a dpkg architecture)."
    )


@contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle = (cache_dir / ".lock").open("w")
    except OSError as exc:
        raise _not_writable(cache_dir, exc) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_stamp(cache_dir: Path) -> dict[str, Any]:
    try:
        stamp = json.loads((cache_dir / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) and stamp.get("schema") == STAMP_SCHEMA else {}


def _write_stamp(cache_dir: Path, stamp: Mapping[str, Any]) -> None:
    tmp = cache_dir / f".{STAMP_NAME}.tmp"
    tmp.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, cache_dir / STAMP_NAME)


def _base_complete(cache_dir: Path, stamp: Mapping[str, Any]) -> bool:
    base = stamp.get("base")
    if not isinstance(base, dict) or "python_version" not in base:
        return False
    python = cache_dir / "sysroot" / "usr" / "bin" / f"python{base['python_version']}"
    return (cache_dir / "qemu-aarch64-static").is_file() and python.is_file()


def _site_complete(cache_dir: Path, stamp: Mapping[str, Any], wheels: Mapping[str, str]) -> bool:
    site = stamp.get("site")
    if not isinstance(site, dict) or site.get("wheels") != dict(wheels) or not site.get("verified"):
        return False
    return all((cache_dir / "site" / name / "__init__.py").is_file() for name in wheels)


def _replace_dir(staging: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)


def _dir_bytes(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def _distro_python_version() -> str:
    """``'3.11'``: the Python of the distribution's arm64 ``python3-minimal``."""
    version = apt.candidate_version(f"python3-minimal:{apt.ARCH}")
    match = re.match(r"(?:\d+:)?(3\.\d+)", version or "")
    if match is None:
        raise ArmSetupError(
            f"Could not tell the Python version of python3-minimal:{apt.ARCH} (apt candidate "
            f"{version!r}); the emulation needs a Debian/Ubuntu release with arm64 Python 3."
        )
    return match.group(1)


def _set_up_base(cache_dir: Path, log: Log) -> dict[str, Any]:
    """qemu-aarch64-static + the arm64 sysroot; returns the stamp's ``base`` section."""
    if platform.machine() != "x86_64":
        raise ArmSetupError(
            f"The aarch64 emulation runs on x86_64 hosts; this one is {platform.machine()!r}."
        )
    apt.require_tools("apt-get", "apt-cache", "dpkg", "dpkg-deb")
    apt.ensure_arm64_lists(f"python3-minimal:{apt.ARCH}")
    python_version = _distro_python_version()
    roots = [f"python{python_version}-minimal", f"libpython{python_version}-stdlib", "libstdc++6"]
    closure = apt.dependency_closure([f"{name}:{apt.ARCH}" for name in roots])
    log(f"arm64 sysroot: {len(closure.packages)} packages (left out: {', '.join(closure.skipped)})")
    with tempfile.TemporaryDirectory(prefix="download-", dir=cache_dir) as tmp:
        downloads = Path(tmp) / "debs"
        qemu_dir = Path(tmp) / "qemu"
        downloads.mkdir()
        qemu_dir.mkdir()
        debs = apt.download(closure.packages, downloads)
        qemu_debs = apt.download([QEMU_PACKAGE], qemu_dir)
        staging = Path(tmp) / "sysroot"
        staging.mkdir()
        versions = []
        for deb in debs:
            apt.unpack(deb, staging)
            versions.append(apt.deb_version(deb))
        deb_bytes = sum(deb.stat().st_size for deb in debs)
        qemu_staging = Path(tmp) / "qemu-aarch64-static"
        apt.extract_member(qemu_debs[0], QEMU_MEMBER, qemu_staging)
        if not (staging / "usr" / "bin" / f"python{python_version}").is_file():
            raise ArmSetupError(
                f"The unpacked arm64 packages hold no usr/bin/python{python_version}; "
                f"packages were {versions}."
            )
        _replace_dir(staging, cache_dir / "sysroot")
        os.replace(qemu_staging, cache_dir / "qemu-aarch64-static")
        return {
            "python_version": python_version,
            "qemu": apt.deb_version(qemu_debs[0]),
            "packages": sorted(versions),
            "left_out": list(closure.skipped),
            "download_bytes": deb_bytes + qemu_debs[0].stat().st_size,
        }


def _set_up_site(cache_dir: Path, python_version: str, wheels: Mapping[str, str], log: Log) -> dict[str, Any]:
    """aarch64 wheels of ``wheels`` (and their dependencies) into ``site/``."""
    with tempfile.TemporaryDirectory(prefix="site-", dir=cache_dir) as tmp:
        staging = Path(tmp) / "site"
        platforms = [arg for tag in WHEEL_PLATFORMS for arg in ("--platform", tag)]
        pins = [f"{name}=={version}" for name, version in wheels.items()]
        log(f"aarch64 wheels: {' '.join(pins)}")
        apt.run_tool(
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--no-compile", "--target", str(staging), "--only-binary=:all:",
                "--python-version", python_version, "--implementation", "cp", *platforms, *pins,
            ],
            what=f"download the aarch64 wheels {pins} for Python {python_version}",
            fix=(
                "Check the network access to PyPI, and that these exact versions have "
                f"manylinux aarch64 wheels for cp{python_version.replace('.', '')}."
            ),
        )
        installed = {
            dist.metadata["Name"]: dist.version
            for dist in importlib.metadata.distributions(path=[str(staging)])
        }
        _replace_dir(staging, cache_dir / "site")
    return {"wheels": dict(wheels), "installed": installed, "verified": False}


def _smoke_test(emulation: Emulation, wheels: Mapping[str, str]) -> dict[str, str]:
    """Import numpy + onnxruntime emulated; checks machine and versions, warms the .pyc caches."""
    done = emulation.run(["-c", _SMOKE], cpu=ArmCpu.CORTEX_A76, cwd=emulation.cache_dir)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise ArmSetupError(
            f"The emulated aarch64 Python could not import numpy + onnxruntime (exit code "
            f"{done.returncode}):\n{done.stderr.strip()[-2000:]}\nDelete {str(emulation.cache_dir)!r} "
            "and set the emulation up again."
        )
    seen = json.loads(lines[-1])
    expected = {"machine": "aarch64", **wheels}
    wrong = {key: seen.get(key) for key, value in expected.items() if seen.get(key) != value}
    if wrong:
        raise ArmSetupError(
            f"The emulated Python reports {wrong}, expected {expected}; delete "
            f"{str(emulation.cache_dir)!r} and set the emulation up again."
        )
    return seen


def ensure_emulation(cache_dir: Path | str | None = None, *, log: Log | None = None) -> Emulation:
    """Set the emulation up in ``cache_dir`` if needed and return it.

    A second call finds a complete stamp whose wheel versions match the host's and returns
    at once, without running apt, pip or qemu. When the host's onnxruntime or numpy version
    changes, only ``site/`` is rebuilt.

    Args:
        cache_dir: defaults to :func:`default_cache_dir`.
        log: receives one line per set-up stage (nothing when the cache is complete).

    Raises:
        ArmSetupError: saying what is missing (root, apt, network, wheels) and how to fix it.
    """
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    say = log or (lambda line: None)
    wheels = host_wheel_versions()
    with _locked(folder):
        stamp = _read_stamp(folder)
        if _base_complete(folder, stamp) and _site_complete(folder, stamp, wheels):
            return Emulation(folder, stamp["base"]["python_version"], stamp)
        started = time.monotonic()
        if not _base_complete(folder, stamp):
            say(f"setting up qemu + arm64 sysroot in {folder}")
            stamp = {"schema": STAMP_SCHEMA, "base": _set_up_base(folder, say)}
            _write_stamp(folder, stamp)
        python_version = stamp["base"]["python_version"]
        if not _site_complete(folder, stamp, wheels):
            stamp["site"] = _set_up_site(folder, python_version, wheels, say)
            _write_stamp(folder, stamp)
    emulation = Emulation(folder, python_version, stamp)
    say("checking the emulated import of numpy + onnxruntime")
    seen = _smoke_test(emulation, wheels)
    with _locked(folder):
        stamp["site"]["verified"] = True
        stamp["aarch64"] = seen
        stamp["setup_s"] = round(time.monotonic() - started, 1)
        stamp["size_bytes"] = _dir_bytes(folder)
        _write_stamp(folder, stamp)
    say(f"ready: {stamp['size_bytes'] / 1e6:.0f} MB in {folder}, set up in {stamp['setup_s']} s")
    return Emulation(folder, python_version, stamp)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lnn_ros_tools.arm [--cache-dir DIR]``: set up and print a summary."""
    parser = argparse.ArgumentParser(
        prog="setup_arm_emulation",
        description="Set up qemu + an arm64 Python with the host's onnxruntime/numpy versions.",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"default: ${CACHE_ENV} or {DEFAULT_CACHE}")
    args = parser.parse_args(argv)
    try:
        emulation = ensure_emulation(args.cache_dir, log=lambda line: print(line, flush=True))
    except ArmSetupError as exc:
        print(f"setup_arm_emulation: error: {exc}", file=sys.stderr)
        return 1
    stamp = emulation.stamp
    print(
        f"aarch64 emulation in {emulation.cache_dir}: {stamp['base']['qemu']}, "
        f"python {stamp['aarch64']['python']}, onnxruntime {emulation.wheels['onnxruntime']}, "
        f"numpy {emulation.wheels['numpy']}, {stamp.get('size_bytes', 0) / 1e6:.0f} MB"
    )
    return 0
