"""Which bag topics hold which stream, and the message types each stream may have.

Topic names match with or without their leading slash (``imu`` finds ``/imu`` and the other
way round): ``ros2 bag record`` stores absolute names, hand-written configs often omit the
slash. Type names are ROS 2 style (``sensor_msgs/msg/Imu``); the ROS 1 form
``sensor_msgs/Imu`` is accepted and normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

from lnn_ros.bag.errors import BagError
from lnn_ros.runtime.records import Stream

IMU_TYPE = "sensor_msgs/msg/Imu"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
TWIST_STAMPED_TYPE = "geometry_msgs/msg/TwistStamped"
TWIST_TYPE = "geometry_msgs/msg/Twist"
DIAGNOSTIC_ARRAY_TYPE = "diagnostic_msgs/msg/DiagnosticArray"
CLOCK_TYPE = "rosgraph_msgs/msg/Clock"


BAG_STREAMS = (Stream.IMU, Stream.CAMERA, Stream.COMMAND)
"""The streams a bag can hold for lnn_ros (their values are :class:`BagTopics` field names);
``command`` holds recorded commands of a pilot or an expert (the training target)."""


SUPPORTED_TYPES: dict[Stream, tuple[str, ...]] = {
    Stream.IMU: (IMU_TYPE,),
    Stream.CAMERA: (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE),  # the bag's own camera type is taken (detected)
    # An unstamped Twist takes its log time (arrival time) as its stamp.
    Stream.COMMAND: (TWIST_STAMPED_TYPE, TWIST_TYPE),
}


def normalize_msgtype(name: str) -> str:
    """``pkg/Type`` -> ``pkg/msg/Type``; ROS 2 names are returned unchanged."""
    parts = name.strip().split("/")
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/msg/{parts[1]}"
    return name.strip()


def topic_key(name: str) -> str:
    """The name used to match topics: without leading slashes."""
    return name.strip().lstrip("/")


def absolute_topic(name: str) -> str:
    """``imu`` -> ``/imu`` (the form ROS 2 reports and records)."""
    return "/" + topic_key(name)


@dataclass(frozen=True)
class TopicSpec:
    """One stream's topic name and expected message type."""

    stream: Stream
    topic: str
    msgtype: str


@dataclass(frozen=True)
class BagTopics:
    """Topic names and message types of the streams to read from a bag.

    Attributes:
        imu: IMU topic (``sensor_msgs/msg/Imu``).
        camera: camera topic (``sensor_msgs/msg/Image`` or ``CompressedImage``, e.g.
            ``camera/image_raw/compressed``; the type is read from the bag).
        command: recorded commands of a pilot or an expert (``TwistStamped`` or ``Twist``).
        imu_type: expected type of ``imu``.
        camera_type: expected type of ``camera``.
        command_type: expected type of ``command``.
    """

    imu: str = "imu"
    camera: str = "camera/image_raw"
    command: str = "cmd_vel"
    imu_type: str = IMU_TYPE
    camera_type: str = IMAGE_TYPE
    command_type: str = TWIST_STAMPED_TYPE

    def __post_init__(self) -> None:
        for stream in BAG_STREAMS:
            topic = getattr(self, stream.value)
            if not isinstance(topic, str) or not topic_key(topic):
                raise BagError(f"The {stream.value} topic must be a non-empty name such as '/imu', got {topic!r}.")
            attr = f"{stream.value}_type"
            msgtype = normalize_msgtype(getattr(self, attr))
            if msgtype not in SUPPORTED_TYPES[stream]:
                raise BagError(
                    f"The {stream.value} stream cannot be read from messages of type {msgtype!r}; "
                    f"supported types are {list(SUPPORTED_TYPES[stream])}."
                )
            object.__setattr__(self, attr, msgtype)

    def spec(self, stream: Stream) -> TopicSpec:
        """Topic name and type of ``stream``."""
        return TopicSpec(stream, getattr(self, stream.value), getattr(self, f"{stream.value}_type"))
