"""Dataset readers, selected by format name: a path in, a list of :class:`TimedSequence` out.

Built in: ``npz``. Other subsystems plug in their own reader either by calling
:func:`register_loader` or, without any registration, by naming it ``package.module:function``
(e.g. ``lnn-ros train --format lnn_ros.bag.dataset:load_sequences``). A reader takes a
:class:`~pathlib.Path` and returns ``list[TimedSequence]``. Without a format, a dataset is read
by its suffix, and bags (``.mcap`` / ``.db3`` / ``.bag`` files, rosbag2 folders, folders of them)
are recognised by their shape and go to the bag reader.

``npz`` layout (read with ``allow_pickle=False``): either one sequence as arrays ``x`` [T,F],
``dt_s`` [T], ``y`` [T,O], or several as ``x_0, dt_s_0, y_0, x_1, ...``. A directory is read as
all its ``*.npz`` files in name order.
"""

from __future__ import annotations

import importlib
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lnn_ros.training.data import TimedSequence, as_sequence, check_sequences
from lnn_ros.training.errors import DataError

SequenceLoader = Callable[[Path], list[TimedSequence]]

_LOADERS: dict[str, SequenceLoader] = {}
_SUFFIXES: dict[str, str] = {}
_INDEXED = re.compile(r"^(x|dt_s|y)_(\d+)$")


def register_loader(name: str, loader: SequenceLoader, suffixes: Sequence[str] = ()) -> None:
    """Make ``loader`` available as format ``name`` (and the default for files with ``suffixes``)."""
    _LOADERS[name] = loader
    for suffix in suffixes:
        _SUFFIXES[suffix.lower()] = name


def formats() -> list[str]:
    """Names of the registered formats."""
    return sorted(_LOADERS)


BAG_READER = "lnn_ros.bag.dataset:load_sequences"  # named, not imported: bag sits above training
BAG_TRAINING_READER = "lnn_ros.bag.dataset:training_data"
"""The bag reader ``lnn-ros train`` uses: sequences labelled by bag and described for the checkpoint."""


BAG_SUFFIXES = (".mcap", ".db3", ".bag")
"""rosbag2 storage files (mcap, sqlite3) and ROS 1 bags."""


def is_bag(path: Path) -> bool:
    """Whether ``path`` is a bag by its shape: a ``.mcap`` / ``.db3`` / ``.bag`` file or a rosbag2
    folder (one holding ``metadata.yaml``). The bag reader checks the contents."""
    if path.is_file():
        return path.suffix.lower() in BAG_SUFFIXES
    return (path / "metadata.yaml").is_file()


def format_of(path: Path) -> str | None:
    """The format of one file or shard: a registered one by suffix, the bag reader for a bag, else None."""
    name = _SUFFIXES.get(path.suffix.lower())
    if name is None and is_bag(path):
        return BAG_READER
    return name


def resolve_loader(format_name: str) -> SequenceLoader:
    """The reader of a registered format or of ``package.module:function``.

    Raises:
        DataError: unknown name, or a reader that cannot be imported.
    """
    if format_name in _LOADERS:
        return _LOADERS[format_name]
    module_name, _, attribute = format_name.partition(":")
    if not attribute:
        raise DataError(
            f"Unknown dataset format {format_name!r}; use one of {formats()} or 'package.module:function'."
        )
    try:
        loader = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise DataError(f"Cannot import the dataset reader {format_name!r} ({exc}).") from None
    if not callable(loader):
        raise DataError(f"Dataset reader {format_name!r} is not callable.")
    return loader


def load_sequences(path: str | Path, format_name: str | None = None) -> list[TimedSequence]:
    """Read a dataset with the reader for ``format_name`` (default: chosen by file suffix).

    Raises:
        DataError: unknown format, unreadable file, or malformed sequences.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"Dataset {str(path)!r} does not exist.")
    if format_name is None:
        format_name = dataset_format(path)
    sequences = list(resolve_loader(format_name)(path))
    check_sequences(sequences, where=str(path))
    return sequences


def dataset_format(path: Path) -> str:
    """A file's format by suffix; a folder's by the first file of a registered format in it, else
    the bag reader when the folder is a bag or holds bags directly (:func:`is_bag`).

    Raises:
        DataError: neither (the message says to pass ``--format``).
    """
    if path.is_file():
        found = format_of(path)
    else:
        children = sorted(path.iterdir())
        found = next((_SUFFIXES[p.suffix.lower()] for p in children if p.suffix.lower() in _SUFFIXES), None)
        if found is None and (is_bag(path) or any(is_bag(p) for p in children)):
            found = BAG_READER
    if found is None:
        raise DataError(
            f"Cannot tell the format of dataset {str(path)!r}: it is neither a registered format ({formats()}, "
            f"by suffix) nor a bag ({'/'.join(BAG_SUFFIXES)} file, rosbag2 folder, or a folder of them); pass --format."
        )
    return found


def _read_npz_file(path: Path) -> list[TimedSequence]:
    """Read only the x/dt_s/y arrays (other arrays, e.g. stamps or camera frames, are not loaded)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if {"x", "dt_s", "y"} <= names:
                return [as_sequence(archive["x"], archive["dt_s"], archive["y"], where=str(path))]
            indices = sorted({int(m.group(2)) for m in map(_INDEXED.match, names) if m})
            if not indices:
                raise DataError(f"{path}: expected arrays x, dt_s, y (or x_0, dt_s_0, y_0, ...), found {sorted(names)!r}.")
            sequences = []
            for index in indices:
                missing = [f"{key}_{index}" for key in ("x", "dt_s", "y") if f"{key}_{index}" not in names]
                if missing:
                    raise DataError(f"{path}: sequence {index} lacks array(s) {missing!r}.")
                sequences.append(
                    as_sequence(
                        archive[f"x_{index}"], archive[f"dt_s_{index}"], archive[f"y_{index}"], where=f"{path}[{index}]"
                    )
                )
            return sequences
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read it as a .npz dataset ({exc}).") from None


def load_npz_sequences(path: Path) -> list[TimedSequence]:
    """Read one ``.npz`` file or every ``*.npz`` file of a directory (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if not files:
            raise DataError(f"Directory {str(path)!r} has no .npz files.")
        return [sequence for file in files for sequence in _read_npz_file(file)]
    return _read_npz_file(path)


def save_npz_sequences(path: str | Path, sequences: Sequence[TimedSequence]) -> Path:
    """Write sequences as one ``.npz`` file (``x_0, dt_s_0, y_0, ...``) readable by ``load_npz_sequences``."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")  # what np.savez would do silently
    check_sequences(sequences, where=str(path))
    arrays: dict[str, np.ndarray] = {}
    for i, sequence in enumerate(sequences):
        checked = as_sequence(*sequence)
        arrays.update({f"x_{i}": checked.x, f"dt_s_{i}": checked.dt_s, f"y_{i}": checked.y})
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return path


register_loader("npz", load_npz_sequences, suffixes=(".npz",))
