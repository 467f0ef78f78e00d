"""Fixed-size records kept on disk while a replay runs, read back in chunks: memory that does not grow with the bag.

A replay keeps every command it publishes and every recorded command of the bag until its loop
ends (the metrics pair each prediction with the recorded command valid at its stamp, and a
recorded command can be logged after the predictions it is paired with). Held in memory, they
grew the replay's resident set by about 2.4 MB per bag-minute (``results/scaling``). A
:class:`RecordSpool` appends them to an anonymous temporary file instead (unlinked at once: it
disappears with the process, even on a crash) and hands them back in chunks of a fixed number of
rows, each read into the same preallocated array: the page cache holds the file, not this
process.

Why not ``np.memmap``: a memory-mapped file's pages count in the process's resident set once
touched, so reading an hour of commands through one would grow it again.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


class RecordSpool:
    """Append-only records of one numpy structured ``dtype`` in a temporary file in ``directory``.

    Rows are appended one at a time (:meth:`append_row`, gathered in a preallocated block of
    ``block_rows`` rows) or as arrays (:meth:`append`), and read back in order, ``chunk_rows`` at
    a time (:meth:`chunks`). ``order_key`` names an int64 field whose order is followed as rows
    come in: :attr:`ordered` tells whether it never decreased (e.g. stamps).
    """

    def __init__(self, dtype: np.dtype, directory: str | Path | None = None, order_key: str | None = None,
                 block_rows: int = 4096) -> None:
        self.dtype = np.dtype(dtype)
        self._file: io.BufferedRandom = tempfile.TemporaryFile(dir=directory, prefix=".lnn_ros_spool_")  # noqa: SIM115 (closed by close())
        self._block = np.zeros(block_rows, dtype=self.dtype)
        self._filled = 0
        self._written = 0
        self._key = order_key
        self._last_key: int | None = None
        self.ordered = True

    def __len__(self) -> int:
        return self._written + self._filled

    def __enter__(self) -> RecordSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Removes the file (it has no name: closing it frees it)."""
        self._file.close()

    def row(self) -> np.void:
        """The next row to fill (a view into the block); call :meth:`commit_row` when it is filled."""
        if self._filled == len(self._block):
            self._flush()
        return self._block[self._filled]  # type: ignore[no-any-return]

    def commit_row(self) -> None:
        """Counts the row returned by :meth:`row` as appended."""
        if self._key is not None:
            key = int(self._block[self._key][self._filled])
            self._follow(key, key, True)
        self._filled += 1

    def append(self, rows: np.ndarray) -> None:
        """Appends ``rows`` (an array of :attr:`dtype`)."""
        if rows.dtype != self.dtype:
            raise TypeError(f"RecordSpool of {self.dtype} got rows of {rows.dtype}.")
        if not len(rows):
            return
        if self._key is not None:
            keys = rows[self._key]
            self._follow(int(keys[0]), int(keys[-1]), len(keys) < 2 or bool((np.diff(keys) >= 0).all()))
        self._flush()
        self._file.write(np.ascontiguousarray(rows).view(np.uint8).data)
        self._written += len(rows)

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        """The rows in order, ``chunk_rows`` (or fewer, at the end) at a time.

        Each chunk is a view of one buffer that the next chunk overwrites: copy what must outlive
        the step. Appending while iterating is not allowed.
        """
        self._flush()
        self._file.flush()
        self._file.seek(0)
        buffer = np.empty(chunk_rows, dtype=self.dtype)
        view = buffer.view(np.uint8).data
        left = self._written
        while left:
            rows = min(chunk_rows, left)
            size = rows * self.dtype.itemsize
            got = self._file.readinto(view[:size])
            if got != size:
                raise OSError(f"The replay's spool file was cut short ({got} of {size} bytes read).")
            left -= rows
            yield buffer[:rows]
        self._file.seek(0, 2)

    def _follow(self, first: int, last: int, inside_ordered: bool) -> None:
        if not inside_ordered or (self._last_key is not None and first < self._last_key):
            self.ordered = False
        self._last_key = last

    def _flush(self) -> None:
        if self._filled:
            self._file.write(self._block[: self._filled].view(np.uint8).data)
            self._written += self._filled
            self._filled = 0
