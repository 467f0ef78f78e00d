"""Set-up of the aarch64 emulation: idempotent, partial rebuild, clear errors, real emulated CPU.

Needs root, apt and PyPI the first time on a machine (cached in ~/.cache/lnn_ros/arm64).
If the emulation cannot be set up the tests FAIL, unless LNN_ROS_SKIP_ARM=1 is set.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lnn_ros_tools.arm import ArmCpu, ArmSetupError, Emulation, apt, ensure_emulation
from lnn_ros_tools.arm import emulation as emulation_module

pytestmark = pytest.mark.timeout(900)  # the first run on a machine sets the emulation up (~35 s)

REPO = Path(__file__).resolve().parent.parent
AT_HWCAP = 16
HWCAP_ASIMD = 1 << 1
HWCAP_ASIMDDP = 1 << 20
HWCAP_SVE = 1 << 22


@pytest.fixture(scope="module")
def emulation() -> Emulation:
    if os.environ.get("LNN_ROS_SKIP_ARM") == "1":
        pytest.skip("LNN_ROS_SKIP_ARM=1: aarch64 emulation tests skipped on request")
    try:
        return ensure_emulation()
    except ArmSetupError as exc:
        pytest.fail(f"aarch64 emulation unavailable (set LNN_ROS_SKIP_ARM=1 to skip): {exc}")


def _forbid_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a complete cache must not start processes, got {args!r}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_second_setup_does_nothing(emulation: Emulation, monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = emulation.cache_dir / "stamp.json"
    before = stamp.stat().st_mtime_ns
    _forbid_processes(monkeypatch)
    monkeypatch.setenv("PATH", "/nonexistent")  # no apt, no dpkg: nothing may be needed
    again = ensure_emulation(emulation.cache_dir)
    assert again == emulation
    assert stamp.stat().st_mtime_ns == before
    host = {name: importlib.metadata.version(name) for name in ("onnxruntime", "numpy")}
    assert again.wheels == host
    assert again.stamp["aarch64"]["machine"] == "aarch64"
    assert again.qemu.is_file() and again.python.is_file()
    packages = again.stamp["base"]["packages"]
    assert any(p.startswith(f"python{again.python_version}-minimal=") for p in packages)
    assert len(packages) < apt.MAX_PACKAGES


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def test_changed_host_versions_rebuild_only_the_wheels(emulation: Emulation, tmp_path: Path) -> None:
    copy = tmp_path / "cache"
    copy.mkdir()
    shutil.copy2(emulation.qemu, copy / emulation.qemu.name)
    shutil.copytree(emulation.sysroot, copy / "sysroot", copy_function=_link_or_copy, symlinks=True,
                    ignore=shutil.ignore_patterns("proc"))
    stamp = json.loads((emulation.cache_dir / "stamp.json").read_text())
    stamp["site"]["wheels"]["numpy"] = "0.0.0"  # as if the host's numpy had changed since
    (copy / "stamp.json").write_text(json.dumps(stamp))
    sysroot_inode = (copy / "sysroot").stat().st_ino
    lines: list[str] = []
    rebuilt = ensure_emulation(copy, log=lines.append)
    assert (copy / "sysroot").stat().st_ino == sysroot_inode, "the sysroot must not be rebuilt"
    assert not any("sysroot" in line for line in lines), lines
    assert any(line.startswith("aarch64 wheels:") for line in lines), lines
    assert rebuilt.wheels == emulation.wheels
    assert (copy / "site" / "numpy" / "__init__.py").is_file()
    assert json.loads((copy / "stamp.json").read_text())["site"]["verified"] is True


def _hwcap(emulation: Emulation, cpu: ArmCpu, tmp_path: Path) -> tuple[int, str]:
    code = (
        "import struct, platform; data = open('/proc/self/auxv', 'rb').read(); "
        "pairs = struct.iter_unpack('<QQ', data); "
        "print(dict(pairs)[16]); print(platform.machine()); "
        "print([l for l in open('/proc/cpuinfo') if l.startswith('CPU part')][0].split(':')[1].strip())"
    )
    done = emulation.run(["-c", code], cpu=cpu, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    hwcap, machine, part = done.stdout.split()
    assert machine == "aarch64"
    return int(hwcap), part


@pytest.mark.parametrize(("cpu", "part", "dotprod"), [(ArmCpu.CORTEX_A76, "0xd0b", True),
                                                       (ArmCpu.CORTEX_A72, "0xd08", False)])
def test_emulated_cpu_is_the_chosen_core_without_sve(emulation: Emulation, tmp_path: Path, cpu: ArmCpu,
                                                     part: str, dotprod: bool) -> None:
    hwcap, seen_part = _hwcap(emulation, cpu, tmp_path)
    assert seen_part == part
    assert hwcap & HWCAP_ASIMD
    assert not hwcap & HWCAP_SVE  # qemu's default 'max' CPU would have SVE
    assert bool(hwcap & HWCAP_ASIMDDP) is dotprod


def test_setup_without_apt_says_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without apt-get or dpkg
    with pytest.raises(ArmSetupError, match=r"needs the Debian tools \['apt-get', 'apt-cache', 'dpkg', 'dpkg-deb'\]"):
        ensure_emulation(tmp_path / "cache")
    assert not (tmp_path / "cache" / "stamp.json").exists()


def test_setup_not_as_root_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulation_module.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(apt, "run_tool", lambda command, **kwargs: "i386\n")  # arm64 not yet added
    with pytest.raises(ArmSetupError, match=r"needs root.*uid 1000.*sudo tools/arm/setup_emulation.sh"):
        apt.ensure_arm64_lists("python3-minimal:arm64")


# What `apt-cache depends` prints for each package (Debian 12), the last one made up.
_DEPENDS_BLOCKS = {
    "libpython3.11-stdlib:arm64": """libpython3.11-stdlib:arm64
  Depends: libpython3.11-minimal:arm64
 |Depends: <media-types:arm64>
    media-types
  Depends: <mime-support:arm64>
    mime-support
  Depends: libreadline8:arm64
  Depends: libc6:arm64
""",
    "libpython3.11-minimal:arm64": """libpython3.11-minimal:arm64
  PreDepends: libc6:arm64
""",
    "libreadline8:arm64": """libreadline8:arm64
  Depends: <readline-common:arm64>
    readline-common
  Depends: libc6:arm64
 |Depends: <libfoo:arm64>
    libfoo
    libfoo:arm64
  Depends: zlib1g:arm64
""",
    "libc6:arm64": "libc6:arm64\n  Depends: libgcc-s1:arm64\n",
    "libgcc-s1:arm64": "libgcc-s1:arm64\n  Depends: libc6:arm64\n",
    "libfoo:arm64": "libfoo:arm64\n",
}


def test_dependency_closure_follows_only_arm64_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    queried: list[list[str]] = []

    def fake_apt(command: list[str], **kwargs: object) -> str:
        packages = [arg for arg in command if arg.endswith(":arm64")]
        queried.append(packages)
        return "".join(_DEPENDS_BLOCKS[name] for name in packages)

    monkeypatch.setattr(apt, "run_tool", fake_apt)
    closure = apt.dependency_closure(["libpython3.11-stdlib:arm64"])
    # A '|' group takes its first arm64 member (here the arm64 provider of a virtual package);
    # groups with only arch-all members (data files) are left out.
    assert closure.packages == ("libc6:arm64", "libfoo:arm64", "libgcc-s1:arm64", "libpython3.11-minimal:arm64",
                                "libpython3.11-stdlib:arm64", "libreadline8:arm64")
    assert closure.skipped == ("<media-types:arm64> | <mime-support:arm64>", "<readline-common:arm64>")
    assert len(queried) == 3 and sum(map(len, queried)) == 6  # one apt call per level, each package once


def test_real_sysroot_holds_only_arm64_runtime_packages(emulation: Emulation) -> None:
    base = emulation.stamp["base"]
    names = [entry.partition("=")[0] for entry in base["packages"]]
    assert {f"python{emulation.python_version}-minimal", "libc6", "libstdc++6", "libffi8"} <= set(names)
    assert not any(name.startswith(("perl", "dpkg", "tar")) for name in names), names
    assert any("media-types" in group for group in base["left_out"])
    assert base["download_bytes"] < 200e6


def test_setup_script_is_a_thin_idempotent_wrapper(emulation: Emulation) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(["bash", str(REPO / "tools" / "arm" / "setup_emulation.sh"), "--cache-dir",
                           str(emulation.cache_dir)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"aarch64 emulation in {emulation.cache_dir}:" in done.stdout
    assert "setting up" not in done.stdout


def test_unusable_cache_folder_is_a_clear_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    with pytest.raises(ArmSetupError, match=r"cache folder .*/cache' is not writable.*set LNN_ROS_ARM_CACHE"):
        ensure_emulation(not_a_folder)
