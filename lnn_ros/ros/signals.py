"""Quiet SIGINT / SIGTERM for the node processes, installed before anything heavy is imported.

Python's own SIGINT handler raises ``KeyboardInterrupt`` wherever the main thread happens to
be: in an import, in rclpy's start-up, in a node's destructor, or (``ros2 launch`` sends a
second SIGINT after the terminal's) while the simulator writes its summary. Instead,
:func:`install` makes both signals only *note* that they arrived; the process checks the note
(:func:`received`) between its steps. The handler does nothing else: it runs between two
bytecodes of whatever the main thread is doing, possibly inside rclpy with a lock held, so
calling into rclpy from it can deadlock. rclpy installs its own (C) handler on top at
``rclpy.init``, which shuts the context down and wakes the executor, and then calls the one it
replaced, so the note is taken in every phase. This module imports nothing but the C
``_signal`` module (the ``signal`` module builds enums first, tens of ms on a busy machine).
"""

from __future__ import annotations

import _signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType

SIGNALS = (_signal.SIGINT, _signal.SIGTERM)

_received: list[int] = []


def _note(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)


def install() -> None:
    """Note SIGINT and SIGTERM instead of raising (idempotent)."""
    for sig in SIGNALS:
        if _signal.getsignal(sig) is not _note:
            _signal.signal(sig, _note)


def ignore() -> None:
    """Ignore SIGINT and SIGTERM for the rest of the process (call when ``main`` has returned).

    Python puts the default handlers back while the interpreter shuts down (DDS threads keep
    it busy for a while); a late signal (the second of ``ros2 launch``'s two SIGINTs, its
    SIGTERM) would then kill the process by the signal after it had ended cleanly. Python
    leaves an ignored signal ignored.
    """
    for sig in SIGNALS:
        _signal.signal(sig, _signal.SIG_IGN)


def received() -> bool:
    """Whether SIGINT or SIGTERM arrived since :func:`install`."""
    return bool(_received)
