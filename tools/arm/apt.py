"""Debian packages for the emulation, fetched with apt without installing anything on the host.

Only ``apt-get download`` and ``dpkg-deb`` touch package files; the one host change is
``dpkg --add-architecture arm64`` (plus ``apt-get update``) so that apt knows arm64 packages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from lnn_ros_tools.arm.errors import ArmSetupError

ARCH = "arm64"
_DEPENDS_FLAGS = (
    "--no-recommends",
    "--no-suggests",
    "--no-conflicts",
    "--no-breaks",
    "--no-replaces",
    "--no-enhances",
)
_DEPENDS_LINE = re.compile(r"^ ([| ])(PreDepends|Depends): (\S+)")
# Apt runs downloads as user _apt, which cannot write into a root-owned temporary folder.
_APT_OPTIONS = ("-o", "APT::Sandbox::User=root")
# The closure of python3.X-minimal + libpython3.X-stdlib + libstdc++6 has ~28 packages.
MAX_PACKAGES = 80


class Closure(NamedTuple):
    """Packages to unpack (``name:arm64``) and dependency groups left out (no arm64 member)."""

    packages: tuple[str, ...]
    skipped: tuple[str, ...]


def require_tools(*names: str) -> None:
    """Check that every command in ``names`` is on PATH.

    Raises:
        ArmSetupError: naming the missing commands.
    """
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise ArmSetupError(
            f"The aarch64 emulation set-up needs the Debian tools {missing} on PATH, and they are not "
            f"there (PATH={os.environ.get('PATH', '')!r}). It runs on a Debian/Ubuntu x86_64 machine "
            "with apt; install 'apt' and 'dpkg' or run it on such a machine."
        )


def run_tool(command: Sequence[str], *, what: str, fix: str, cwd: Path | None = None) -> str:
    """Run ``command`` and return its stdout.

    Raises:
        ArmSetupError: saying what failed (``what``), the command's exit code and error output,
            and how to fix it (``fix``).
    """
    env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
    try:
        done = subprocess.run(
            list(command), cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=900
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ArmSetupError(f"Could not {what}: {' '.join(command)!r} did not run ({exc}). {fix}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise ArmSetupError(
            f"Could not {what}: {' '.join(command)!r} exited with code {done.returncode}:\n{tail}\n{fix}"
        )
    return done.stdout


def _need_root(action: str) -> None:
    if os.geteuid() != 0:
        raise ArmSetupError(
            f"The aarch64 emulation set-up must {action}, which needs root, and this process runs as "
            f"uid {os.geteuid()}. Run 'sudo tools/arm/setup_emulation.sh' once (it fills the cache; "
            "later runs need no root), or run as root."
        )


def candidate_version(package: str) -> str | None:
    """The version apt would fetch for ``package`` (``'python3-minimal:arm64'``), or None."""
    out = run_tool(
        ["apt-cache", "policy", package],
        what=f"ask apt for {package!r}",
        fix="Check that apt works on this machine ('apt-cache policy bash').",
    )
    match = re.search(r"^\s*Candidate:\s*(\S+)", out, re.MULTILINE)
    if match is None or match.group(1) == "(none)":
        return None
    return match.group(1)


def ensure_arm64_lists(probe: str) -> None:
    """Make apt know arm64 packages: add the architecture and update the lists if needed.

    Args:
        probe: an arm64 package that must then have a candidate (``'python3-minimal:arm64'``).

    Raises:
        ArmSetupError: when root is needed and missing, or apt cannot find ``probe`` afterwards.
    """
    foreign = run_tool(
        ["dpkg", "--print-foreign-architectures"],
        what="read dpkg's foreign architectures",
        fix="Check that dpkg works on this machine.",
    ).split()
    if ARCH not in foreign:
        _need_root(f"run 'dpkg --add-architecture {ARCH}' so that apt can download arm64 packages")
        run_tool(
            ["dpkg", "--add-architecture", ARCH],
            what=f"add the {ARCH} architecture",
            fix=f"Run 'dpkg --add-architecture {ARCH}' by hand to see why.",
        )
    if candidate_version(probe) is not None:
        return
    _need_root(f"run 'apt-get update' to fetch the {ARCH} package lists")
    run_tool(
        ["apt-get", "update", "-q"],
        what=f"update the apt package lists (needed for {ARCH})",
        fix="Check the network access to the Debian mirrors and run 'apt-get update' by hand.",
    )
    if candidate_version(probe) is None:
        raise ArmSetupError(
            f"apt has no candidate for {probe!r} even after 'apt-get update'. The emulation needs a "
            "Debian or Ubuntu release whose mirrors carry arm64 packages (Debian 12 'bookworm' is "
            "tested); check /etc/apt/sources.list*."
        )


def _parse_depends(text: str) -> dict[str, list[list[tuple[str, list[str]]]]]:
    """``apt-cache depends`` output -> {package: [dependency group: [(name, providers)]]}."""
    result: dict[str, list[list[tuple[str, list[str]]]]] = {}
    current: str | None = None
    group: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if not line.startswith(" "):
            current = line.strip()
            result[current] = []
            group = []
            continue
        match = _DEPENDS_LINE.match(line)
        if match and current is not None:
            alternative, _, name = match.groups()
            group.append((name, []))
            if alternative == " ":  # '|' chains the next line as an alternative
                result[current].append(group)
                group = []
        elif line.startswith("    ") and group:
            group[-1][1].append(line.strip())
        elif line.startswith("    ") and result.get(current):
            result[current][-1][-1][1].append(line.strip())
    return result


def _arm64_choice(group: list[tuple[str, list[str]]]) -> str | None:
    """The first alternative of a dependency group that is a real arm64 package."""
    suffix = f":{ARCH}"
    for name, providers in group:
        if name.startswith("<"):  # virtual package: take an arm64 provider
            real = [provider for provider in providers if provider.endswith(suffix)]
            if real:
                return real[0]
        elif name.endswith(suffix):
            return name
    return None


def dependency_closure(roots: Sequence[str]) -> Closure:
    """The arm64 packages needed to run ``roots``: Depends + PreDepends, recursively.

    Only dependencies on arm64 packages are followed. Groups satisfied by architecture-``all``
    or foreign packages (``media-types``, ``readline-common``: data files; ``dpkg``: install
    time only) are left out and listed in ``skipped``, which keeps the sysroot small.

    Raises:
        ArmSetupError: when apt fails or the closure grows beyond :data:`MAX_PACKAGES`.
    """
    seen = list(roots)
    frontier = list(roots)
    skipped: set[str] = set()
    while frontier:
        text = run_tool(
            ["apt-cache", "depends", *_DEPENDS_FLAGS, *frontier],
            what=f"resolve the dependencies of {frontier}",
            fix="Run 'apt-get update' and check that these arm64 packages exist.",
        )
        frontier = []
        for groups in _parse_depends(text).values():
            for group in groups:
                choice = _arm64_choice(group)
                if choice is None:
                    skipped.add(" | ".join(name for name, _ in group))
                elif choice not in seen:
                    seen.append(choice)
                    frontier.append(choice)
        if len(seen) > MAX_PACKAGES:
            raise ArmSetupError(
                f"The arm64 dependency closure of {list(roots)} grew past {MAX_PACKAGES} packages "
                f"({len(seen)}); refusing to fetch that much. Check the apt sources for this release."
            )
    return Closure(packages=tuple(sorted(seen)), skipped=tuple(sorted(skipped)))


def download(packages: Sequence[str], folder: Path) -> list[Path]:
    """``apt-get download`` ``packages`` into ``folder``; returns the .deb files.

    Raises:
        ArmSetupError: when apt cannot fetch them.
    """
    run_tool(
        ["apt-get", "download", "-q", *_APT_OPTIONS, *packages],
        cwd=folder,
        what=f"download {list(packages)}",
        fix="Check the network access to the Debian mirrors, then run 'apt-get update' and retry.",
    )
    debs = sorted(folder.glob("*.deb"))
    if len(debs) < len(packages):
        raise ArmSetupError(
            f"apt-get download left {len(debs)} .deb files in {str(folder)!r} for {len(packages)} "
            f"packages {list(packages)}; run the command by hand to see which failed."
        )
    return debs


def deb_version(deb: Path) -> str:
    """``name=version`` of a .deb file, read by dpkg-deb."""
    out = run_tool(
        ["dpkg-deb", "--show", "--showformat=${Package}=${Version}", str(deb)],
        what=f"read {deb.name!r}",
        fix="The file may be corrupt; delete the cache folder and retry.",
    )
    return out.strip()


def unpack(deb: Path, root: Path) -> None:
    """Extract every file of ``deb`` under ``root`` (``dpkg-deb -x``; runs no maintainer script)."""
    run_tool(
        ["dpkg-deb", "-x", str(deb), str(root)],
        what=f"unpack {deb.name!r}",
        fix="The file may be corrupt; delete the cache folder and retry.",
    )


def extract_member(deb: Path, member: str, target: Path) -> None:
    """Copy one file (``'./usr/bin/qemu-aarch64-static'``) out of ``deb`` to ``target``.

    Raises:
        ArmSetupError: when the package does not contain ``member``.
    """
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        found = False
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            for info in archive:
                if info.name == member and info.isfile():
                    source = archive.extractfile(info)
                    assert source is not None
                    with target.open("wb") as sink:
                        shutil.copyfileobj(source, sink)
                    target.chmod(0o755)
                    found = True
                    break
        proc.stdout.read()  # drain so that dpkg-deb ends cleanly
    if not found:
        raise ArmSetupError(f"Package {deb.name!r} has no file {member!r}; is it the right package?")
