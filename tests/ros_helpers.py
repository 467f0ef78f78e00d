"""Helpers shared by the tests that run ``lnn_node`` as a real process."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest


def stop_process(process: subprocess.Popen[bytes], log: Path, sig: signal.Signals, timeout_s: float) -> None:
    """Stop ``process`` with ``sig``; if it is still running after ``timeout_s``, kill it and fail the test.

    Nothing is sent to a process that has exited already. The failure shows ``log`` (the
    process's output).
    """
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"lnn_node ignored {sig.name} for {timeout_s:g} s; log:\n{log.read_text()}")


def wait_until_handling_sigterm(pid: int, timeout_s: float = 30.0) -> None:
    """Until process ``pid`` catches SIGTERM (/proc's SigCgt): lnn_ros's handlers are installed.

    Before that moment the process is the Python interpreter starting up (site, .pth files),
    where no lnn_ros code runs yet; tests that signal "during start-up" start counting here.
    """
    bit = 1 << (signal.SIGTERM - 1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            pytest.fail(f"process {pid} exited before it installed its signal handlers")
        caught = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
        if caught & bit:
            return
        time.sleep(0.002)
    pytest.fail(f"process {pid} did not install a SIGTERM handler within {timeout_s} s")
