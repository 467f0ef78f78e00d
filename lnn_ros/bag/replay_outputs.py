"""What ``lnn-ros replay`` keeps of its commands while it runs, and the files it writes from them after its loop.

:class:`PublishedLog` (the commands the node would have published) and :class:`RecordedLog`
(the bag's recorded commands) append to :class:`~lnn_ros.bag.spool.RecordSpool` files as the
loop runs; :func:`write_outputs` then reads them back in chunks of :data:`CHUNK_ROWS` and, in
one pass, pairs each prediction with the recorded command valid at its stamp
(:class:`~lnn_ros.bag.metrics.StampPairer`), adds the pairs to the metrics
(:class:`~lnn_ros.bag.metrics.MetricsAccumulator`), writes the chunk's CSV rows and picks the
plot's points (:class:`~lnn_ros.bag.plot.Envelope`). Nothing here grows with the bag, except in
one case: recorded commands whose stamps go back in reading order (or predictions whose stamps
do) are paired in memory, as :func:`~lnn_ros.bag.metrics.command_metrics` pairs them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from lnn_ros.bag.metrics import CommandMetrics, MetricsAccumulator, StampPairer
from lnn_ros.bag.plot import Envelope
from lnn_ros.bag.spool import RecordSpool
from lnn_ros.runtime import Command

COMMANDS_CSV = "commands.csv"
METRICS_JSON = "metrics.json"
PLOT_PNG = "commands.png"
CHUNK_ROWS = 8192
"""Rows read back per step: a chunk's CSV text and arrays are a few MB."""

RECORDED_DTYPE = np.dtype([("stamp_ns", "<i8"), ("twist", "<f8", (6,))])

Axis = tuple[str, str, int]
"""``(output name, Twist field, Twist index)`` of an output compared with the recorded commands."""


def published_dtype(outputs: int) -> np.dtype:
    """A published command's record: its stamp, its log time and the model's ``outputs`` values."""
    return np.dtype([("stamp_ns", "<i8"), ("log_time_ns", "<i8"), ("values", "<f4", (outputs,))])


class PublishedLog:
    """The commands returned for publishing, in order, with their log times (8 + 8 + 4 O bytes each, on disk)."""

    def __init__(self, outputs: int, directory: Path) -> None:
        self.spool = RecordSpool(published_dtype(outputs), directory, order_key="stamp_ns")

    def __len__(self) -> int:
        return len(self.spool)

    def add(self, command: Command, log_time_ns: int) -> None:
        row = self.spool.row()
        row["stamp_ns"] = command.stamp_ns
        row["log_time_ns"] = log_time_ns
        row["values"] = command.values
        self.spool.commit_row()

    def add_batch(self, stamps_ns: np.ndarray, log_times_ns: np.ndarray, values: np.ndarray) -> None:
        rows = np.empty(len(stamps_ns), dtype=self.spool.dtype)
        rows["stamp_ns"], rows["log_time_ns"], rows["values"] = stamps_ns, log_times_ns, values
        self.spool.append(rows)

    def close(self) -> None:
        self.spool.close()


class RecordedLog:
    """The bag's recorded commands, in reading order (8 + 48 bytes each, on disk)."""

    def __init__(self, directory: Path) -> None:
        self.spool = RecordSpool(RECORDED_DTYPE, directory, order_key="stamp_ns")

    def __len__(self) -> int:
        return len(self.spool)

    def add(self, command: Command) -> None:
        row = self.spool.row()
        row["stamp_ns"] = command.stamp_ns
        row["twist"] = command.twist
        self.spool.commit_row()

    def extend(self, commands: Iterable[Command]) -> None:
        for command in commands:
            self.add(command)

    def in_stamp_order(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Chunks of (stamps [m], twists [m, 6]) in stamp order, stable (new arrays, kept by the caller).

        Read as stored when the stamps never went back; otherwise all of them are read and sorted.
        """
        if self.spool.ordered:
            for chunk in self.spool.chunks(CHUNK_ROWS):
                yield chunk["stamp_ns"].copy(), chunk["twist"].copy()
            return
        parts = [(c["stamp_ns"].copy(), c["twist"].copy()) for c in self.spool.chunks(CHUNK_ROWS)]
        stamps, twists = (np.concatenate(column) for column in zip(*parts))
        order = np.argsort(stamps, kind="stable")
        yield stamps[order], twists[order]

    def close(self) -> None:
        self.spool.close()


def write_outputs(
    out_dir: Path,
    published: PublishedLog,
    recorded: RecordedLog,
    twists: Callable[[np.ndarray], np.ndarray],
    output_names: Sequence[str],
    axes: Sequence[Axis],
    max_age_s: float | None,
    plot_title: str | None,
) -> tuple[CommandMetrics | None, dict[str, Path]]:
    """``commands.csv`` always; ``metrics.json`` and (unless ``plot_title`` is None) ``commands.png``
    when there are predictions, recorded commands and compared ``axes``.

    ``twists`` derives the Twist fields [n, 6] from output values [n, O]
    (:meth:`~lnn_ros.runtime.PolicyRunner.twists`). Returns the metrics (or None) and the files written.
    """
    files = {"commands_csv": out_dir / COMMANDS_CSV}
    compare = bool(len(recorded) and len(published) and axes)
    columns = [index for _, _, index in axes]
    pairer = StampPairer(recorded.in_stamp_order(), max_age_s, ordered=published.spool.ordered) if compare else None
    accumulator = MetricsAccumulator(axes, max_age_s)
    drawn = Envelope(len(published), len(columns)) if compare and plot_title is not None else None
    header = ["stamp_ns", "log_time_ns", *output_names]
    if compare:
        header += [f"recorded_{name}" for name, _, _ in axes]
    with files["commands_csv"].open("w", newline="") as stream:
        csv.writer(stream).writerow(header)
        for chunk in published.spool.chunks(CHUNK_ROWS):
            stamps_ns, values = chunk["stamp_ns"], chunk["values"]
            cells: list[list[str]] = [list(map(str, stamps_ns.tolist())), list(map(str, chunk["log_time_ns"].tolist()))]
            cells += [list(map(repr, column)) for column in values.T.astype(np.float64).tolist()]
            if pairer is not None:
                predicted = twists(values)
                valid, paired = pairer.pair(stamps_ns)
                accumulator.add(predicted, paired, valid)
                if drawn is not None:
                    drawn.add(stamps_ns, predicted[:, columns])
                ok = valid.tolist()
                for column in paired[:, columns].T.tolist():
                    cells.append([repr(value) if keep else "" for value, keep in zip(column, ok)])
            stream.write("".join(",".join(row) + "\r\n" for row in zip(*cells)))
    if not compare:
        return None, files
    metrics = accumulator.result()
    files["metrics_json"] = out_dir / METRICS_JSON
    files["metrics_json"].write_text(json.dumps(metrics.to_dict(), indent=2) + "\n")
    if drawn is not None and plot_title is not None:
        from lnn_ros.bag.plot import plot_commands

        recorded_drawn = Envelope(len(recorded), len(columns))
        for stamps_ns, recorded_twists in recorded.in_stamp_order():
            recorded_drawn.add(stamps_ns, recorded_twists[:, columns])
        files["plot_png"] = plot_commands(out_dir / PLOT_PNG, drawn, recorded_drawn, axes, title=plot_title)
    return metrics, files
