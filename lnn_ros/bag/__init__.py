"""Rosbags without ROS: read sensor bags, replay a policy on them, play them to live topics, train on them.

* :mod:`~lnn_ros.bag.reader`: IMU / camera / recorded-command streams of a bag as records,
  with every bag problem turned into :class:`BagError` or a counted warning.
* :mod:`~lnn_ros.bag.writer`: :class:`BagWriter`, bags (mcap, sqlite3, ROS 1) from records.
* :mod:`~lnn_ros.bag.replay`: ``lnn-ros replay``, the live node's handling on a bag's log time.
* :mod:`~lnn_ros.bag.play`: ``lnn-ros play``, a bag on live ROS 2 topics (rclpy inside only).
* :mod:`~lnn_ros.bag.dataset`: bags -> training sequences with Δt from stamps.

The ``lnn-ros`` CLI imports this package on every call, so the names below are loaded on
first use (rosbags, onnxruntime, rclpy and matplotlib stay unloaded until needed).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BagError": "lnn_ros.bag.errors",
    "BagStream": "lnn_ros.bag.topics",
    "BagTopics": "lnn_ros.bag.topics",
    "BagMessage": "lnn_ros.bag.records",
    "TwistSample": "lnn_ros.bag.records",
    "BagInfo": "lnn_ros.bag.reader",
    "BagReader": "lnn_ros.bag.reader",
    "BagWarnings": "lnn_ros.bag.reader",
    "MessageOrder": "lnn_ros.bag.reader",
    "BagStorage": "lnn_ros.bag.writer",
    "BagWriter": "lnn_ros.bag.writer",
    "ReplayConfig": "lnn_ros.bag.replay",
    "ReplayResult": "lnn_ros.bag.replay",
    "replay_bag": "lnn_ros.bag.replay",
    "PlayConfig": "lnn_ros.bag.play",
    "PlayReport": "lnn_ros.bag.play",
    "play_bag": "lnn_ros.bag.play",
    "BagDataset": "lnn_ros.bag.dataset",
    "BagSequence": "lnn_ros.bag.dataset",
    "DatasetConfig": "lnn_ros.bag.dataset",
    "bags_to_dataset": "lnn_ros.bag.dataset",
    "load_sequences": "lnn_ros.bag.dataset",
    "save_dataset_npz": "lnn_ros.bag.dataset",
    "AxisMetrics": "lnn_ros.bag.metrics",
    "CommandMetrics": "lnn_ros.bag.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'lnn_ros.bag' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
