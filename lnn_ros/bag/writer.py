"""Writing bags of sensors and commands from plain records (rosbag2 mcap / sqlite3, or ROS 1).

The simulator records flights with it, replay writes its predictions with it and the tests
build their bags with it::

    with BagWriter(tmp_path / "flight") as bag:
        bag.write_imu("/imu", sample)
        bag.write_image("/camera/image_raw", frame)
        bag.write_twist("/cmd_vel", command)   # a Command

Messages are serialised with rosbags' ROS 2 Humble type store, i.e. byte for byte what rclpy
publishes. The log time defaults to the header stamp (a recorder with zero latency).
rosbag2 bags are written in metadata version 8 (the QoS layout ROS 2 Humble reads).
"""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from lnn_ros.bag import cdr, messages
from lnn_ros.bag.errors import BagError
from lnn_ros.bag.topics import (
    DIAGNOSTIC_ARRAY_TYPE,
    IMAGE_TYPE,
    IMU_TYPE,
    TWIST_STAMPED_TYPE,
    absolute_topic,
)
from lnn_ros.runtime.records import Command, ImageFrame, ImuSample

if TYPE_CHECKING:

    from rosbags.interfaces import Connection
    from rosbags.typesys.store import Typestore


class BagStorage(Enum):
    """On-disk format of a written bag."""

    MCAP = "mcap"  # rosbag2 directory with one .mcap file (embeds message definitions)
    SQLITE3 = "sqlite3"  # rosbag2 directory with one .db3 file (the Humble default)
    ROS1 = "ros1"  # a single ROS 1 ``.bag`` file


class BagWriter:
    """Writes one new bag; use it as a context manager (the bag is complete after ``close``).

    Args:
        path: rosbag2 directory to create (it must not exist) or, for ``ros1``, a ``.bag`` file.
        storage: ``mcap`` (default), ``sqlite3`` or ``ros1``.

    Raises:
        BagError: the path exists already or the storage is unknown.
    """

    def __init__(self, path: str | Path, storage: BagStorage | str = BagStorage.MCAP) -> None:
        try:
            self.storage = BagStorage(storage)
        except ValueError:
            raise BagError(
                f"Unknown bag storage {storage!r}; use one of {[s.value for s in BagStorage]}."
            ) from None
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"Bag {str(self.path)!r} exists already; choose a new path (bags are never overwritten).")
        if self.storage is BagStorage.ROS1 and self.path.suffix != ".bag":
            raise BagError(f"A ROS 1 bag must be a file ending in '.bag', got {str(self.path)!r}.")
        self.typestore: Typestore = messages.default_typestore()
        self._ros1_typestore: Typestore | None = None
        self._writer: Any = None
        self._connections: dict[str, tuple[str, Connection]] = {}
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ life cycle
    def open(self) -> BagWriter:
        """Create the bag on disk."""
        if self._writer is not None:
            raise BagError(f"Bag {str(self.path)!r} is already open.")
        if self.storage is BagStorage.ROS1:
            from rosbags.rosbag1 import Writer as Writer1
            from rosbags.typesys import Stores, get_typestore

            self._ros1_typestore = get_typestore(Stores.ROS1_NOETIC)
            writer: Any = Writer1(self.path)
        else:
            from rosbags.rosbag2 import StoragePlugin
            from rosbags.rosbag2 import Writer as Writer2

            plugin = StoragePlugin.MCAP if self.storage is BagStorage.MCAP else StoragePlugin.SQLITE3
            writer = Writer2(self.path, version=8, storage_plugin=plugin)
        try:
            writer.open()
        except Exception as exc:  # rosbags raises WriterError and OSError
            raise BagError(f"Cannot create bag {str(self.path)!r}: {exc}") from None
        self._writer = writer
        return self

    def close(self) -> None:
        """Finish the bag (index, metadata). Safe to call twice."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception as exc:
                raise BagError(f"Cannot finish bag {str(self.path)!r}: {exc}") from None

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # keep what was written readable: a partial bag is better than a broken one
            with contextlib.suppress(BagError):
                self.close()

    # ------------------------------------------------------------------ writing
    def _connection(self, topic: str, msgtype: str) -> Connection:
        if self._writer is None:
            raise BagError(f"Bag {str(self.path)!r} is not open; use BagWriter as a context manager.")
        name = absolute_topic(topic)
        known = self._connections.get(name)
        if known is not None:
            if known[0] != msgtype:
                raise BagError(
                    f"Topic {name!r} in bag {str(self.path)!r} already holds {known[0]}; cannot write {msgtype} to it."
                )
            return known[1]
        if self._ros1_typestore is not None:
            connection = self._writer.add_connection(name, msgtype, typestore=self._ros1_typestore)
        else:
            connection = self._writer.add_connection(name, msgtype, typestore=self.typestore)
        self._connections[name] = (msgtype, connection)
        self.counts[name] = 0
        return connection

    def write_raw(self, topic: str, msgtype: str, cdr: bytes | memoryview, log_time_ns: int) -> None:
        """Write one CDR-serialised ROS 2 message (e.g. from ``rclpy.serialization``)."""
        connection = self._connection(topic, msgtype)
        data = cdr if self._ros1_typestore is None else self.typestore.cdr_to_ros1(cdr, msgtype)
        self._writer.write(connection, int(log_time_ns), data)
        self.counts[absolute_topic(topic)] += 1

    def write_message(self, topic: str, msgtype: str, message: Any, log_time_ns: int) -> None:
        """Write one rosbags message object of the Humble type store."""
        self.write_raw(topic, msgtype, self.typestore.serialize_cdr(message, msgtype), log_time_ns)

    def write_imu(self, topic: str, sample: ImuSample, log_time_ns: int | None = None, frame_id: str = "imu_link") -> None:
        """Write an :class:`ImuSample` as ``sensor_msgs/Imu``; log time defaults to its stamp."""
        message = messages.imu_message(sample, frame_id, self.typestore)
        self.write_message(topic, IMU_TYPE, message, sample.stamp_ns if log_time_ns is None else log_time_ns)

    def write_image(
        self, topic: str, frame: ImageFrame, log_time_ns: int | None = None, frame_id: str = "camera_optical_frame"
    ) -> None:
        """Write an :class:`ImageFrame` as ``sensor_msgs/Image``; log time defaults to its stamp."""
        message = messages.image_message(frame, frame_id, self.typestore)
        self.write_message(topic, IMAGE_TYPE, message, frame.stamp_ns if log_time_ns is None else log_time_ns)

    def write_twist(
        self, topic: str, record: Command, log_time_ns: int | None = None, frame_id: str = "base_link"
    ) -> None:
        """Write a :class:`Command` as ``geometry_msgs/TwistStamped``."""
        if len(record.twist) != 6:
            raise BagError(f"A twist needs 6 values (linear xyz, angular xyz), got {len(record.twist)}: {record.twist!r}.")
        messages.check_stamp(record.stamp_ns)
        raw = cdr.encode_twist_stamped(record.stamp_ns, record.twist, frame_id)
        self.write_raw(topic, TWIST_STAMPED_TYPE, raw, record.stamp_ns if log_time_ns is None else log_time_ns)

    def write_record(self, topic: str, record: ImuSample | ImageFrame | Command, log_time_ns: int | None = None) -> None:
        """:meth:`write_imu`, :meth:`write_image` or :meth:`write_twist`, by the record's type (default frame ids)."""
        if isinstance(record, ImuSample):
            self.write_imu(topic, record, log_time_ns)
        elif isinstance(record, ImageFrame):
            self.write_image(topic, record, log_time_ns)
        else:
            self.write_twist(topic, record, log_time_ns)

    def write_twists(
        self,
        topic: str,
        stamps_ns: np.ndarray,
        twists: np.ndarray,
        log_times_ns: np.ndarray,
        frame_id: str = "base_link",
    ) -> None:
        """:meth:`write_twist` of N commands at once: stamps [N] int64, twists [N,6], log times [N] int64.

        The bag holds the same bytes as N :meth:`write_twist` calls. The messages are serialised
        together (:func:`~lnn_ros.bag.cdr.encode_twists_stamped`) and, into an uncompressed mcap
        bag, appended as one block of mcap message records (rosbags' own chunking and index kept);
        other storages write them one by one.
        """
        count = len(stamps_ns)
        if not count:
            return
        if twists.shape != (count, 6):
            raise BagError(f"Twists must be [N, 6] (linear xyz, angular xyz), got shape {twists.shape}.")
        for stamp in (int(stamps_ns.min()), int(stamps_ns.max())):
            messages.check_stamp(stamp)
        data = cdr.encode_twists_stamped(stamps_ns, twists, frame_id)
        connection = self._connection(topic, TWIST_STAMPED_TYPE)
        if self._ros1_typestore is None and _append_mcap(self._writer, connection, log_times_ns, data):
            self.counts[absolute_topic(topic)] += count
            return
        for row, log_time in zip(data, log_times_ns.tolist()):
            self.write_raw(topic, TWIST_STAMPED_TYPE, row.tobytes(), log_time)

    def write_diagnostics(
        self,
        topic: str,
        stamp_ns: int,
        values: dict[str, str],
        *,
        name: str = "lnn_ros",
        hardware_id: str = "",
        level: int = 0,
        message: str = "",
        log_time_ns: int | None = None,
    ) -> None:
        """Write one ``diagnostic_msgs/DiagnosticArray`` with a single status."""
        messages.check_stamp(stamp_ns)
        raw = cdr.encode_diagnostic_array(stamp_ns, level, name, message, hardware_id, list(values.items()))
        self.write_raw(topic, DIAGNOSTIC_ARRAY_TYPE, raw, stamp_ns if log_time_ns is None else log_time_ns)


_MCAP_CHUNK_BYTES = 2**20  # rosbags closes a chunk once it has grown past this
_MCAP_MESSAGE = 0x05


def _append_mcap(writer: Any, connection: Connection, log_times_ns: np.ndarray, data: np.ndarray) -> bool:
    """Append messages ``data`` [N, D] (uint8) to rosbags' mcap writer as its ``write`` would, one
    block per chunk; False (nothing written) when ``writer`` is not an uncompressed-message mcap
    writer of the layout this was written against (rosbags 0.11; the tests compare the files
    byte for byte with ``write`` calls)."""
    from rosbags.rosbag2.enums import CompressionMode

    storage: Any = getattr(writer, "storage", None)
    chunk = getattr(storage, "chunk", None)
    if (
        type(storage).__name__ != "McapWriter"
        or getattr(writer, "compression_mode", None) != CompressionMode.NONE
        or not all(hasattr(chunk, name) for name in ("bio", "msgs", "message_start_time", "message_end_time"))
        or not all(hasattr(storage, name) for name in ("channel_stats", "message_start_time", "message_end_time", "close_chunk"))
        or connection.id not in getattr(writer, "counts", {})
    ):
        return False
    count, size = data.shape
    record = np.dtype([("op", "u1"), ("length", "<u8"), ("channel", "<u2"), ("sequence", "<u4"),
                       ("log_time", "<u8"), ("publish_time", "<u8"), ("data", "u1", (size,))])
    records = np.zeros(count, dtype=record)
    records["op"] = _MCAP_MESSAGE
    records["length"] = 2 + 4 + 8 + 8 + size
    records["channel"] = connection.id
    records["log_time"] = log_times_ns
    records["publish_time"] = log_times_ns
    records["data"] = data
    stride = record.itemsize
    times = log_times_ns.tolist()
    done = 0
    while done < count:
        chunk = storage.chunk
        position = chunk.bio.tell()
        # rosbags closes the chunk after the first message that takes it past the limit
        fits = max(1, -(-(_MCAP_CHUNK_BYTES + 1 - position) // stride))
        end = min(count, done + fits)
        block = times[done:end]
        chunk.msgs[connection.id].extend(zip(block, range(position, position + stride * (end - done), stride)))
        chunk.message_start_time = min(chunk.message_start_time, min(block))
        chunk.message_end_time = max(chunk.message_end_time, max(block))
        chunk.bio.write(records[done:end].tobytes())
        if chunk.bio.tell() > _MCAP_CHUNK_BYTES:
            storage.close_chunk()
        done = end
    storage.message_start_time = min(storage.message_start_time, min(times))
    storage.message_end_time = max(storage.message_end_time, max(times))
    storage.channel_stats[connection.id] += count
    writer.counts[connection.id] += count
    if hasattr(writer, "min_timestamp") and hasattr(writer, "max_timestamp"):  # metadata.yaml's start and duration
        writer.min_timestamp = min(writer.min_timestamp, min(times))
        writer.max_timestamp = max(writer.max_timestamp, max(times))
    return True
