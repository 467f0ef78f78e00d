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

from lnn_ros._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "errors": ("BagError",),
        "topics": ("BAG_STREAMS", "BagTopics"),
        "records": ("BagMessage", "Record"),
        "reader": ("BagInfo", "BagReader", "BagWarnings", "MessageOrder"),
        "writer": ("BagStorage", "BagWriter"),
        "replay": ("ReplayConfig", "ReplayResult", "replay_bag"),
        "play": ("PlayConfig", "PlayReport", "play_bag"),
        "dataset": (
            "BagDataset",
            "BagSequence",
            "DatasetConfig",
            "bags_to_dataset",
            "load_sequences",
            "save_dataset_npz",
        ),
        "metrics": ("AxisMetrics", "CommandMetrics"),
    },
)
