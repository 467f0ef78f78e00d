"""Training API: irregularly sampled sequences -> a fitted recurrent model -> a checkpoint.

* :mod:`~lnn_ros.training.data`: :class:`TimedSequence` records, normalisation statistics,
  fixed-length windows, train/validation split.
* :mod:`~lnn_ros.training.loaders`: pluggable dataset readers by format name (``npz`` built in).
* :mod:`~lnn_ros.training.models`: default cell configs by kind and size.
* :mod:`~lnn_ros.training.trainer`: :func:`fit` (truncated BPTT, Adam, clipping, early stopping)
  and :func:`fit_stream` (the same over shards read one at a time).
* :mod:`~lnn_ros.training.stream`: shards (``.npz`` files, bags) streamed as windows, sharded
  over ranks and data-loader workers.
* :mod:`~lnn_ros.training.distributed`: the process group under torchrun (DDP).
* :mod:`~lnn_ros.training.camera`: camera + IMU policies (a CNN encoder in front of any cell),
  trained on frame-indexed rows and exported with the encoder graph.
* :mod:`~lnn_ros.training.checkpoint`: safetensors weights + YAML sidecar; never unpickles.
* :mod:`~lnn_ros_examples.sine`: the sine example (``lnn-ros example``).

Importing this package does not import torch (the ``lnn-ros`` CLI imports
:mod:`lnn_ros.training.cli` on every call, also on torch-free onboard machines); the names
below are loaded on first use.
"""

from __future__ import annotations

from lnn_ros._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "camera": ("CameraArch", "CameraPolicy", "export_camera_policy", "fit_camera_policy", "new_camera_policy"),
        "checkpoint": ("Checkpoint", "load_checkpoint", "save_checkpoint"),
        "data": ("FeatureStats", "TimedSequence", "WindowBatch", "check_sequences", "make_windows", "split_sequences"),
        "errors": ("CheckpointError", "DataError", "TrainingError"),
        "loaders": ("load_sequences", "register_loader", "save_npz_sequences"),
        "stream": ("ShardSet", "WindowStream", "list_shards"),
        "distributed": ("DistContext",),
        "models": ("default_cell_config",),
        "trainer": ("LRSchedule", "TrainConfig", "TrainResult", "evaluate", "fit", "fit_stream"),
    },
)
