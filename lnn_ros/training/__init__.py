"""Training API: irregularly sampled sequences -> a fitted recurrent model -> a checkpoint.

* :mod:`~lnn_ros.training.data`: :class:`TimedSequence` records, normalisation statistics,
  fixed-length windows, train/validation split.
* :mod:`~lnn_ros.training.loaders`: pluggable dataset readers by format name (``npz`` built in).
* :mod:`~lnn_ros.training.models`: default cell configs by kind and size.
* :mod:`~lnn_ros.training.trainer`: :func:`fit` (truncated BPTT, Adam, clipping, early stopping).
* :mod:`~lnn_ros.training.checkpoint`: safetensors weights + YAML sidecar; never unpickles.
* :mod:`~lnn_ros.training.example`: the sine example (``lnn-ros example``).

Importing this package does not import torch (the ``lnn-ros`` CLI imports
:mod:`lnn_ros.training.cli` on every call, also on torch-free onboard machines); the names
below are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Checkpoint": "lnn_ros.training.checkpoint",
    "load_checkpoint": "lnn_ros.training.checkpoint",
    "save_checkpoint": "lnn_ros.training.checkpoint",
    "FeatureStats": "lnn_ros.training.data",
    "TimedSequence": "lnn_ros.training.data",
    "WindowBatch": "lnn_ros.training.data",
    "check_sequences": "lnn_ros.training.data",
    "make_windows": "lnn_ros.training.data",
    "split_sequences": "lnn_ros.training.data",
    "CheckpointError": "lnn_ros.training.errors",
    "DataError": "lnn_ros.training.errors",
    "TrainingError": "lnn_ros.training.errors",
    "load_sequences": "lnn_ros.training.loaders",
    "register_loader": "lnn_ros.training.loaders",
    "save_npz_sequences": "lnn_ros.training.loaders",
    "default_cell_config": "lnn_ros.training.models",
    "LRSchedule": "lnn_ros.training.trainer",
    "TrainConfig": "lnn_ros.training.trainer",
    "TrainResult": "lnn_ros.training.trainer",
    "evaluate": "lnn_ros.training.trainer",
    "fit": "lnn_ros.training.trainer",
    "SineExampleConfig": "lnn_ros.training.example",
    "SineExampleResult": "lnn_ros.training.example",
    "run_sine_example": "lnn_ros.training.example",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'lnn_ros.training' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
