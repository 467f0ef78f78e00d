"""The node's name, topics and service (relative, so namespaces and remaps apply), without rclpy.

Also which of a bundle's input streams the node can feed: replay (:mod:`lnn_ros.bag.replay`)
runs the node's handling on a bag, so both refuse the same bundles with
:func:`check_streams_fed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from lnn_ros.node_spec.errors import NodeConfigError
from lnn_ros.runtime.records import Stream

NODE_NAME = "lnn_node"

IMU_TOPIC = "imu"
CAMERA_TOPIC = "camera/image_raw"
COMPRESSED_SUFFIX = "/compressed"  # image_transport's compressed transport: <base topic>/compressed
CAMERA_TRANSPORTS = ("raw", "compressed")
EXECUTORS = ("single_threaded", "events")
"""The rclpy executors a node process can spin (parameter ``executor``)."""
COMMAND_TOPIC = "cmd_vel"
DIAGNOSTICS_TOPIC = "/diagnostics"
RESET_SERVICE = "~/reset"

REMAPPABLE = (IMU_TOPIC, CAMERA_TOPIC, COMMAND_TOPIC)
"""Topic names a launch file may remap on an ``lnn_node``."""

STREAM_TOPICS: Mapping[Stream, str] = {Stream.IMU: IMU_TOPIC, Stream.CAMERA: CAMERA_TOPIC}
"""The input streams the node subscribes, with their topics (a ``vector`` has no topic)."""


def check_streams_fed(streams: Iterable[Stream], bundle: str | Path) -> None:
    """Refuse a bundle that reads a stream the node does not subscribe (``vector`` features).

    Args:
        streams: the streams the bundle reads (``PolicyRunner.streams``).
        bundle: the bundle folder, for the message.

    Raises:
        NodeConfigError: naming the streams neither the node nor replay can feed.
    """
    unfed = [stream for stream in streams if stream not in STREAM_TOPICS]
    if unfed:
        names = " and ".join(repr(stream.value) for stream in unfed)
        topics = " and ".join(STREAM_TOPICS.values())
        raise NodeConfigError(
            f"Bundle {str(bundle)!r} reads {names} features, which {NODE_NAME} cannot feed (it subscribes only "
            f"{topics}), nor can replay (it feeds a bundle what {NODE_NAME} would); use a bundle whose features "
            "come from the imu and camera."
        )
