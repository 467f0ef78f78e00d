"""Helpers shared by the tests that run ``lnn_node`` as a real process."""

from __future__ import annotations

import signal
import subprocess
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
