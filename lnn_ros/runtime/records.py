"""The records of lnn_ros: one per idea, shared by the node, the bag tools and the simulator.

``ImuSample`` mirrors ``sensor_msgs/Imu``, ``ImageFrame`` mirrors ``sensor_msgs/Image`` and
``Command`` is a ``geometry_msgs/TwistStamped``: what a policy outputs, what a bag records as a
pilot's or an expert's ``cmd_vel``, and what the simulator flies (through its heading-frame
view). ``Stream`` names the streams those records travel on.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

import numpy as np

from lnn_ros.bundle.manifest import IMAGE_ENCODINGS

Twist = tuple[float, float, float, float, float, float]
"""linear x, y, z then angular x, y, z (the order of ``lnn_ros.bundle.manifest.TWIST_FIELDS``)."""

ZERO_TWIST: Twist = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


class Stream(Enum):
    """A stream of records: a policy's inputs, and the commands that come out (or were recorded).

    The values are the names used in counters, diagnostics and :class:`~lnn_ros.bag.BagTopics`.
    """

    IMU = "imu"
    CAMERA = "camera"
    VECTOR = "vector"  # a caller-supplied feature vector (no ROS message type)
    COMMAND = "command"  # commands: the policy's output, or a pilot's / expert's recorded cmd_vel

    # Members are singletons: hash by identity in C, not Enum's Python-level hash of the name,
    # because (stream, outcome) keys are counted on every message.
    __hash__ = object.__hash__


class ImuSample(NamedTuple):
    """One IMU message.

    Attributes:
        stamp_ns: header stamp, integer nanoseconds.
        angular_velocity: rad/s, shape (3,).
        linear_acceleration: m/s^2, shape (3,).
        orientation: quaternion x, y, z, w, shape (4,).
    """

    stamp_ns: int
    angular_velocity: np.ndarray
    linear_acceleration: np.ndarray
    orientation: np.ndarray


class ImageFrame(NamedTuple):
    """One camera image as ``sensor_msgs/Image`` carries it.

    Attributes:
        stamp_ns: header stamp (capture time), integer nanoseconds.
        height: rows.
        width: columns.
        encoding: ``rgb8``, ``bgr8``, ``mono8``, ``rgba8``, ``bgra8``, ``mono16`` (what a bundle
            accepts is its manifest's; anything else is counted ``wrong_encoding``), or ``jpeg`` /
            ``png`` for a ``sensor_msgs/CompressedImage`` (then height, width and step are 0 and
            ``data`` is the compressed stream; see :mod:`lnn_ros.runtime.image`).
        step: bytes per row, ``>= width * channels`` (rows may be padded).
        data: ``height * step`` bytes, row-major; any buffer (``bytes``, ``memoryview``,
            ``array.array``) is read without copying.
        is_bigendian: byte order of 16-bit encodings (``mono16``).
    """

    stamp_ns: int
    height: int
    width: int
    encoding: str
    step: int
    data: bytes | memoryview
    is_bigendian: bool = False

    def to_array(self) -> np.ndarray:
        """The pixels as a uint8 array of shape (height, width, channels), row padding skipped.

        A view of ``data`` (read-only when ``data`` is ``bytes``), not a copy.

        Raises:
            ValueError: the encoding is not ``rgb8``, ``bgr8`` or ``mono8``, or ``data`` is not
                ``height * step`` bytes of rows at least ``width * channels`` long.
        """
        channels = IMAGE_ENCODINGS.get(self.encoding)
        if channels is None:
            raise ValueError(f"Image encoding {self.encoding!r} is not one of {sorted(IMAGE_ENCODINGS)}.")
        flat = np.frombuffer(self.data, dtype=np.uint8)
        row_bytes = self.width * channels
        if self.step < row_bytes or flat.size != self.step * self.height:
            raise ValueError(
                f"A {self.width}x{self.height} {self.encoding} frame needs step >= {row_bytes} and "
                f"step * height bytes; got step {self.step} and {flat.size} bytes."
            )
        return flat.reshape(self.height, self.step)[:, :row_bytes].reshape(self.height, self.width, channels)


class Command(NamedTuple):
    """One velocity command: a ``geometry_msgs/TwistStamped`` as plain data.

    Attributes:
        stamp_ns: header stamp, integer nanoseconds. A policy's command carries the stamp of the
            sensor message whose step produced it; a recorded one its message's header stamp
            (log time for an unstamped ``Twist``).
        twist: linear x, y, z (m/s) then angular x, y, z (rad/s), in the command frame.
        values: the clamped model outputs in manifest order (shape (O,), a copy) when a policy
            produced the command; ``None`` for recorded, expert or hand-made commands.

    The simulator flies commands in the heading frame (x forward along the current yaw, y left,
    z up): :meth:`heading` builds one from the four set-points a flight controller's offboard
    mode takes, and :attr:`vx_mps` ... :attr:`yaw_rate_rps` read them back.
    """

    stamp_ns: int
    twist: Twist
    values: np.ndarray | None = None

    @classmethod
    def heading(cls, stamp_ns: int, vx_mps: float, vy_mps: float, vz_mps: float, yaw_rate_rps: float) -> Command:
        """A heading-frame set-point: linear x, y, z and angular z; angular x, y are 0."""
        return cls(stamp_ns, (float(vx_mps), float(vy_mps), float(vz_mps), 0.0, 0.0, float(yaw_rate_rps)))

    @property
    def vx_mps(self) -> float:
        """Forward speed (linear x), m/s."""
        return self.twist[0]

    @property
    def vy_mps(self) -> float:
        """Leftward speed (linear y), m/s."""
        return self.twist[1]

    @property
    def vz_mps(self) -> float:
        """Upward speed (linear z), m/s."""
        return self.twist[2]

    @property
    def yaw_rate_rps(self) -> float:
        """Yaw rate (angular z, counter-clockwise seen from above), rad/s."""
        return self.twist[5]

    def heading_array(self) -> np.ndarray:
        """``[vx, vy, vz, yaw_rate]`` as float64, shape (4,)."""
        twist = self.twist
        return np.array((twist[0], twist[1], twist[2], twist[5]), dtype=np.float64)


SensorRecord = ImuSample | ImageFrame
"""A sensor message: what the simulator emits and a bag's sensor topics hold."""
