"""Reading IMU, camera and recorded-command streams from a bag, without ROS.

Any format rosbags reads works: a rosbag2 directory (sqlite3 or mcap storage), a single
``.mcap`` / ``.db3`` file, or a ROS 1 ``.bag``. Bags without embedded message definitions
(sqlite3 bags recorded by ROS 2 Humble) are decoded with rosbags' built-in Humble types.

Message order (:class:`MessageOrder`):

* ``log`` (default): the bag's log time. ``ros2 bag record`` logs each message when it
  arrives, so this is the order the live node saw; replay then equals the live run.
* ``stamp``: header stamps merged across streams (ties broken by log time), through a
  reorder buffer of ``reorder_window_s`` of stamp time. Use it for bags whose log time is
  not the arrival time (written offline, converted, merged from several recorders).

Problems never end in a traceback or a silently short result: a bag that cannot be used
raises :class:`BagError` naming the file and topic; a problem that leaves the rest usable
(undecodable messages, a truncated or corrupt tail, stamps out of order or repeated,
fewer messages than the bag's index lists) is counted in :attr:`BagReader.warnings`, or
raises with ``strict=True``.
"""

from __future__ import annotations

import heapq
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from lnn_ros.bag import cdr, fast_mcap, messages
from lnn_ros.bag.errors import BagError
from lnn_ros.bag.records import BagMessage, Record
from lnn_ros.bag.source import BagSource
from lnn_ros.bag.topics import (
    BAG_STREAMS,
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    IMU_TYPE,
    SUPPORTED_TYPES,
    TWIST_STAMPED_TYPE,
    TWIST_TYPE,
    BagTopics,
    TopicSpec,
    topic_key,
)
from lnn_ros.runtime import messages as to_record
from lnn_ros.runtime.records import ImuSample, Stream
from lnn_ros.units import NS_PER_S

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.typesys.store import Typestore

STORAGE_SUFFIXES = (".mcap", ".db3")


class MessageOrder(Enum):
    """The order in which a bag's messages are delivered (see the module docstring)."""

    LOG = "log"
    STAMP = "stamp"


@dataclass
class BagWarnings:
    """Problems that did not stop reading, each with how often it happened."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, message: str, count: int = 1) -> None:
        self.counts[message] = self.counts.get(message, 0) + count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        """One line per kind of problem: ``'<count> x <message>'``."""
        return [f"{count} x {message}" for message, count in self.counts.items()]

    def __bool__(self) -> bool:
        return bool(self.counts)


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag: type and message count from the bag's index (None if unknown)."""

    name: str
    msgtype: str | None
    count: int | None


@dataclass(frozen=True)
class BagInfo:
    """What a bag holds, from its index (no messages read)."""

    path: Path
    is_ros1: bool
    start_ns: int
    end_ns: int
    message_count: int
    topics: dict[str, TopicInfo]

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def duration_s(self) -> float:
        return self.duration_ns / NS_PER_S


@dataclass(frozen=True)
class MessageBlock:
    """Consecutive messages of :meth:`BagReader.blocks`, as arrays: IMU samples are rows, not objects.

    Attributes:
        streams: each message's stream, in order.
        log_time_ns: [M] int64 log times.
        stamp_ns: [M] int64 header stamps (a recorded command's record stamp).
        imu: [K,10] float64, one row per IMU message in order: angular velocity, linear
            acceleration, orientation (xyzw).
        imu_row: [M] int64, the row of ``imu`` of each message (-1 if not IMU).
        records: each message's record, None for IMU samples (see :meth:`message`).
    """

    streams: list[Stream]
    log_time_ns: np.ndarray
    stamp_ns: np.ndarray
    imu: np.ndarray
    imu_row: np.ndarray
    records: list[Record | None]

    def __len__(self) -> int:
        return len(self.streams)

    def message(self, index: int) -> BagMessage:
        """Message ``index`` as :meth:`BagReader.messages` yields it."""
        record = self.records[index]
        if record is None:
            row = self.imu[self.imu_row[index]]
            record = ImuSample(int(self.stamp_ns[index]), row[0:3].copy(), row[3:6].copy(), row[6:10].copy())
        return BagMessage(self.streams[index], int(self.log_time_ns[index]), record)

    @staticmethod
    def of(messages_in: Sequence[BagMessage]) -> MessageBlock:
        """The block of ``messages_in``."""
        streams = [m.stream for m in messages_in]
        samples = [m.record for m in messages_in if m.stream is Stream.IMU]
        imu = np.zeros((len(samples), 10), dtype=np.float64)
        if samples:
            imu[:, 0:3] = [s.angular_velocity for s in samples]  # type: ignore[union-attr]
            imu[:, 3:6] = [s.linear_acceleration for s in samples]  # type: ignore[union-attr]
            imu[:, 6:10] = [s.orientation for s in samples]  # type: ignore[union-attr]
        is_imu = np.array([s is Stream.IMU for s in streams], dtype=bool)
        imu_row = np.where(is_imu, np.cumsum(is_imu) - 1, -1)
        return MessageBlock(
            streams,
            np.array([m.log_time_ns for m in messages_in], dtype=np.int64),
            np.array([m.record.stamp_ns for m in messages_in], dtype=np.int64),
            imu,
            imu_row,
            [None if m.stream is Stream.IMU else m.record for m in messages_in],
        )


class _Decoder:
    """Turns one connection's raw bytes into a record: the direct CDR codec, else rosbags."""

    def __init__(self, stream: Stream, msgtype: str, typestore: Typestore, is_ros1: bool) -> None:
        self.stream = stream
        self.msgtype = msgtype
        self._deserialize: Callable[[bytes, str], Any] = (
            typestore.deserialize_ros1 if is_ros1 else typestore.deserialize_cdr
        )
        self._unstamped = msgtype == TWIST_TYPE
        # bytes that cdr.decode_imu_block / decode_twists_block / decode_images_block may read, many messages at once
        self.bulk = not is_ros1 and msgtype in (IMU_TYPE, TWIST_STAMPED_TYPE, IMAGE_TYPE)
        self._fast: Callable[[bytes], Record | None] | None = None
        if not is_ros1 and not self._unstamped and msgtype != COMPRESSED_IMAGE_TYPE:
            self._fast = {
                Stream.IMU: cdr.decode_imu,
                Stream.CAMERA: cdr.decode_image,
                Stream.COMMAND: cdr.decode_twist_stamped,
            }[stream]
        converters: dict[Stream, Callable[[Any, int], Record]] = {
            Stream.IMU: to_record.imu_sample,
            Stream.CAMERA: to_record.image_frame,
            Stream.COMMAND: to_record.command,
        }
        self._convert = converters[stream]

    def __call__(self, raw: bytes, log_time_ns: int) -> Record:
        if self._fast is not None:
            record = self._fast(raw)
            if record is not None:
                return record
        msg = self._deserialize(raw, self.msgtype)
        stamp = log_time_ns if self._unstamped else to_record.stamp_ns(msg.header)
        return self._convert(msg, stamp)


def resolve_bag_path(path: str | Path, warnings: BagWarnings) -> Path:
    """The path to hand to rosbags: the bag itself, or its one storage file if metadata.yaml is gone.

    Raises:
        BagError: the path does not exist or is a folder without a bag in it.
    """
    bag = Path(path)
    if not bag.exists():
        raise BagError(f"Bag {str(bag)!r} does not exist; pass a rosbag2 folder, an .mcap/.db3 file or a ROS 1 .bag file.")
    if bag.is_file() or (bag / "metadata.yaml").is_file():
        return bag
    files = sorted(p for p in bag.iterdir() if p.suffix in STORAGE_SUFFIXES)
    if len(files) != 1:
        raise BagError(
            f"Folder {str(bag)!r} is not a rosbag2 bag: it has no metadata.yaml and "
            f"{'no' if not files else len(files)} .mcap/.db3 files{'' if not files else f' ({[f.name for f in files]})'}; "
            "pass a bag folder or one storage file."
        )
    warnings.add(
        f"Bag {str(bag)!r} has no metadata.yaml (was the recording interrupted?); read {files[0].name!r} directly."
    )
    return files[0]


def open_any_reader(path: str | Path, warnings: BagWarnings) -> tuple[BagSource, Path]:
    """An open :class:`BagSource` on ``path``: indexed, no message definition parsed yet.

    Returns the source and the path it reads (the storage file when metadata.yaml is gone).

    Raises:
        BagError: the bag does not exist or cannot be opened, with rosbags' reason.
    """
    source = resolve_bag_path(path, warnings)
    try:
        reader = BagSource(source).open()
    except Exception as exc:  # rosbags raises its own errors, OSError and sqlite/apsw errors
        raise BagError(
            f"Cannot open bag {str(path)!r}: {describe_error(exc)}. The file is damaged or truncated (a recording "
            "that was cut off or is still running)."
        ) from None
    return reader, source


class BagReader:
    """Reads the IMU / camera / command streams of one bag as lnn_ros records.

    Args:
        path: rosbag2 folder, ``.mcap``/``.db3`` file or ROS 1 ``.bag`` file.
        topics: topic names and types of the streams.
        streams: the streams to read (others are ignored).
        required: streams that must be present (a missing one raises :class:`BagError`).
        strict: raise :class:`BagError` instead of counting a warning.
        detect_types: take every stream's message type from the bag when it is one the stream
            supports (``topics``' types are then only defaults); the camera's type is always
            detected.

    Use as a context manager; :meth:`messages` yields :class:`BagMessage` records.
    """

    def __init__(
        self,
        path: str | Path,
        topics: BagTopics = BagTopics(),
        *,
        streams: Iterable[Stream] = BAG_STREAMS,
        required: Iterable[Stream] = (),
        strict: bool = False,
        detect_types: bool = False,
    ) -> None:
        self.path = Path(path)
        self.detect_types = detect_types
        self.topics = topics
        self.required = tuple(required)
        self.streams = tuple(dict.fromkeys((*streams, *self.required)))
        unreadable = [s.value for s in self.streams if s not in BAG_STREAMS]
        if unreadable:
            raise BagError(
                f"A bag holds no {unreadable} stream; choose among {[s.value for s in BAG_STREAMS]}."
            )
        self.strict = strict
        self.warnings = BagWarnings()
        self.read_counts: dict[Stream, int] = {}
        self._reader: BagSource | None = None
        self._connections: dict[Stream, list[Connection]] = {}
        self._decoders: dict[int, _Decoder] = {}
        self._info: BagInfo | None = None

    # ------------------------------------------------------------------ opening
    def open(self) -> BagReader:
        """Open the bag, find the streams' topics and check their types.

        Raises:
            BagError: the bag cannot be opened, a required topic is missing, a topic has the
                wrong type or its type has no definition.
        """
        reader, source = open_any_reader(self.path, self.warnings)
        self._reader = reader
        try:
            self._info = self._read_info(reader, source)
            self._find_streams(reader)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.close()
            except Exception:  # closing a corrupt bag must not hide the error that led here
                pass

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def info(self) -> BagInfo:
        if self._info is None:
            raise BagError(f"Bag {str(self.path)!r} is not open; use BagReader as a context manager.")
        return self._info

    def has(self, stream: Stream) -> bool:
        """Whether the bag holds ``stream``'s topic (with a usable type)."""
        return bool(self._connections.get(stream))

    def topic(self, stream: Stream) -> str:
        """The bag's name of ``stream``'s topic (configured name if the bag lacks it)."""
        connections = self._connections.get(stream)
        return connections[0].topic if connections else self.topics.spec(stream).topic

    def msgtype(self, stream: Stream) -> str | None:
        """The message type ``stream`` is read as (detected or configured), None if the bag lacks it."""
        connections = self._connections.get(stream)
        return self._decoders[id(connections[0])].msgtype if connections else None

    def expected_count(self, streams: Iterable[Stream] | None = None) -> int:
        """Messages the bag's index lists for ``streams`` (default: the streams read)."""
        chosen = self.streams if streams is None else tuple(streams)
        return sum(c.msgcount for s in chosen for c in self._connections.get(s, []))

    def _read_info(self, reader: BagSource, source: Path) -> BagInfo:
        topics = {
            name: TopicInfo(name, info.msgtype, info.msgcount) for name, info in sorted(reader.topics.items())
        }
        count = reader.message_count
        return BagInfo(
            path=source,
            is_ros1=not reader.is2,
            start_ns=reader.start_time if count else 0,
            end_ns=reader.end_time if count else 0,
            message_count=count,
            topics=topics,
        )

    def _available(self) -> str:
        listed = ", ".join(f"{t.name} ({t.msgtype})" for t in self.info.topics.values())
        return listed or "no topics"

    def _find_streams(self, reader: BagSource) -> None:
        by_key: dict[str, list[Connection]] = {}
        for connection in reader.connections:
            by_key.setdefault(topic_key(connection.topic), []).append(connection)
        for stream in self.streams:
            spec = self.topics.spec(stream)
            connections = by_key.get(topic_key(spec.topic), [])
            if not connections:
                if stream in self.required:
                    raise BagError(
                        f"Bag {str(self.path)!r} has no {stream.value} topic {spec.topic!r}; it has {self._available()}. "
                        f"Pass the right name with --{stream.value}-topic."
                    )
                continue
            detect = stream is Stream.CAMERA or self.detect_types  # e.g. Image or CompressedImage, Twist or TwistStamped
            if detect and connections[0].msgtype in SUPPORTED_TYPES[stream]:
                spec = TopicSpec(stream, spec.topic, connections[0].msgtype)
            wrong = sorted({c.msgtype for c in connections if c.msgtype != spec.msgtype})
            if wrong:
                problem = (
                    f"Topic {connections[0].topic!r} in bag {str(self.path)!r} has type {wrong[0]!r} but the "
                    f"{stream.value} stream needs {spec.msgtype!r}"
                )
                hint = f"pick another topic with --{stream.value}-topic or set the type with --{stream.value}-type"
                if stream in self.required:
                    raise BagError(f"{problem}; {hint}. The bag has {self._available()}.")
                self.warn(f"{problem}, so it is not read ({hint})")
                continue
            typestore = self._typestore_for(reader, connections, spec.msgtype, connections[0].topic)
            for connection in connections:
                self._decoders[id(connection)] = _Decoder(stream, spec.msgtype, typestore, not reader.is2)
            self._connections[stream] = connections
            if stream in self.required and not sum(c.msgcount for c in connections):
                self.warn(
                    f"EMPTY TOPIC: the {stream.value} topic {connections[0].topic!r} in bag {str(self.path)!r} has no "
                    f"messages (its index lists 0), so nothing can be read from the {stream.value} stream; "
                    "was the sensor publishing while the bag was recorded?"
                )

    def _typestore_for(self, reader: BagSource, connections: list[Connection], msgtype: str, topic: str) -> Typestore:
        """The types to decode ``connections`` with: their stored definitions (parsed now, only for
        the topics read), else rosbags' built-in Humble definitions."""
        standard = messages.default_typestore()
        stored = reader.types_for(connections)
        if msgtype in stored.fielddefs:
            if reader.is2 and _rihs01(stored, msgtype) != _rihs01(standard, msgtype):
                raise BagError(
                    f"Topic {topic!r} in bag {str(self.path)!r}: the bag's stored definition of {msgtype!r} differs from "
                    "the standard ROS 2 one, so its messages cannot be read as such; record the standard message type."
                )
            return stored
        if not reader.is2:
            raise BagError(
                f"Bag {str(self.path)!r} has no message definition for type {msgtype!r} of topic {topic!r}; "
                "the ROS 1 bag is damaged (its connection records lack the definition)."
            )
        if any(c.msgdef.data for c in reader.connections):  # Humble bags store none: no news there
            self.warnings.add(
                f"Bag {str(self.path)!r} embeds no message definition for {msgtype!r} (topic {topic!r}); "
                "decoded it with the built-in ROS 2 Humble definition."
            )
        return standard

    # ------------------------------------------------------------------ reading
    def warn(self, message: str, count: int = 1) -> None:
        """Count a problem, or raise it as a :class:`BagError` when reading strictly."""
        if self.strict:
            raise BagError(f"{message.rstrip('.')}. Stopped there (strict mode).")
        self.warnings.add(message, count)

    def messages(self, order: MessageOrder = MessageOrder.LOG, reorder_window_s: float = 1.0) -> Iterator[BagMessage]:
        """Decoded messages of the selected streams, in ``order``.

        After the last message, the number read per stream is compared with the bag's index;
        a shortfall is counted as a warning (or raised with ``strict``).
        """
        if self._reader is None:
            raise BagError(f"Bag {str(self.path)!r} is not open; use BagReader as a context manager.")
        if reorder_window_s < 0:
            raise BagError(f"The reorder window must be >= 0 s, got {reorder_window_s!r}.")
        decoded = self._decoded()
        if order is MessageOrder.STAMP:
            decoded = _stamp_ordered(decoded, round(reorder_window_s * NS_PER_S))
        yield from self._checked(decoded, order, reorder_window_s)

    def blocks(
        self, order: MessageOrder = MessageOrder.LOG, reorder_window_s: float = 1.0, size: int = 512,
        max_bytes: int = 1 << 24,
    ) -> Iterator[MessageBlock]:
        """:meth:`messages` in blocks of up to ``size`` messages (the same messages, warnings and
        counts); in log order a block is also cut once it holds ``max_bytes`` of messages, so
        large images keep memory bounded.

        In log order, runs of IMU (and TwistStamped) messages of one layout are decoded together
        (one numpy view over their bytes, :func:`~lnn_ros.bag.cdr.decode_imu_block`) and IMU
        samples never become :class:`ImuSample` objects; anything else is decoded one by one as
        in :meth:`messages`; mcap chunks are read by :mod:`lnn_ros.bag.fast_mcap`.
        """
        if order is MessageOrder.STAMP or self._reader is None:
            block: list[BagMessage] = []
            for message in self.messages(order, reorder_window_s):
                block.append(message)
                if len(block) >= size:
                    yield MessageBlock.of(block)
                    block = []
            if block:
                yield MessageBlock.of(block)
            return
        failures: dict[str, tuple[int, str]] = {}
        checks = _StampChecks()
        raw: list[tuple[Connection, int, bytes]] = []
        held = 0  # bytes in raw
        for items in self._raw_lists():
            raw += items
            held += sum(map(len, map(_THIRD, items)))
            while len(raw) >= size or (raw and held >= max_bytes):
                cut = size if len(raw) >= size else len(raw)
                block_or_none = self._decode_block(raw[:cut], failures, checks)
                held -= sum(map(len, map(_THIRD, raw[:cut])))
                raw = raw[cut:]
                if block_or_none is not None:
                    yield block_or_none
        if raw:
            block_or_none = self._decode_block(raw, failures, checks)
            if block_or_none is not None:
                yield block_or_none
        self._warn_failures(failures)
        self._warn_stamps(checks.older, checks.repeated, order, reorder_window_s)

    def _decode_block(
        self, raw: list[tuple[Connection, int, bytes]], failures: dict[str, tuple[int, str]], checks: _StampChecks
    ) -> MessageBlock | None:
        count = len(raw)
        decoders = list(map(self._decoders.__getitem__, map(id, map(_FIRST, raw))))
        streams = list(map(_STREAM, decoders))
        codes = np.fromiter(map(_STREAM_CODE.__getitem__, streams), dtype=np.int8, count=count)
        is_imu = codes == _STREAM_CODE[Stream.IMU]
        imu_at = np.flatnonzero(is_imu)
        bulk = None
        if len(imu_at) and all(decoders[i].bulk for i in imu_at.tolist()):
            bulk = cdr.decode_imu_block([raw[i][2] for i in imu_at.tolist()])
        log_ns = np.fromiter(map(_SECOND, raw), dtype=np.int64, count=count)
        stamps = np.zeros(len(raw), dtype=np.int64)
        records: list[Record | None] = [None] * len(raw)
        keep = np.ones(len(raw), dtype=bool)
        if bulk is not None:
            stamps[imu_at] = bulk[0]
            imu = bulk[1]
            one_by_one = np.flatnonzero(~is_imu).tolist()
        else:
            imu = np.zeros((len(imu_at), 10), dtype=np.float64)
            one_by_one = list(range(len(raw)))
        decoded: set[int] = set()
        for stream, block_decoder in ((Stream.COMMAND, cdr.decode_twists_block), (Stream.CAMERA, cdr.decode_images_block)):
            at = np.flatnonzero(codes == _STREAM_CODE[stream]).tolist()
            if at and all(decoders[i].bulk for i in at):
                decoded_records: Sequence[Record] | None = block_decoder([raw[i][2] for i in at])
                if decoded_records is not None:
                    for i, record in zip(at, decoded_records):
                        records[i] = record
                        stamps[i] = record.stamp_ns
                    decoded.update(at)
        if decoded:
            one_by_one = [i for i in one_by_one if i not in decoded]
        row = 0
        for index in one_by_one:
            connection, log_time_ns, data = raw[index]
            try:
                record = decoders[index](data, log_time_ns)
            except Exception as exc:  # rosbags SerdeError, struct/index errors on damaged bytes
                count, first = failures.get(connection.topic, (0, describe_error(exc)))
                failures[connection.topic] = (count + 1, first)
                if self.strict:
                    self.warn(f"A message on {connection.topic!r} in bag {str(self.path)!r} could not be decoded: {first}")
                keep[index] = False
                continue
            stamps[index] = record.stamp_ns
            if isinstance(record, ImuSample):
                imu[row] = np.concatenate([record.angular_velocity, record.linear_acceleration, record.orientation])
                row += 1
            else:
                records[index] = record
        if not keep.all():  # undecodable messages are skipped
            if bulk is None:
                imu = imu[: int(np.count_nonzero(is_imu & keep))]
            chosen = np.flatnonzero(keep)
            streams = [streams[i] for i in chosen.tolist()]
            records = [records[i] for i in chosen.tolist()]
            log_ns, stamps, is_imu, codes = log_ns[chosen], stamps[chosen], is_imu[chosen], codes[chosen]
        if not streams:
            return None
        checks.count(codes, stamps)
        imu_row = np.where(is_imu, np.cumsum(is_imu) - 1, -1)
        return MessageBlock(streams, log_ns, stamps, imu, imu_row, records)

    def _raw(self, fast: bool = False) -> Iterator[tuple[Connection, int, bytes]]:
        """The raw messages; ``fast``: mcap chunks parsed by :mod:`lnn_ros.bag.fast_mcap` (the same messages)."""
        assert self._reader is not None
        connections = [c for s in self.streams for c in self._connections.get(s, [])]
        self.read_counts = {s: 0 for s in self._connections}
        if not connections:
            return
        iterator = fast_mcap.raw_messages(self._reader.reader, connections) if fast else None
        if iterator is None:
            iterator = self._reader.messages(connections=connections)
        count, last_ns = 0, None
        while True:
            try:
                connection, log_time_ns, raw = next(iterator)
            except StopIteration:
                break
            except Exception as exc:  # truncated / corrupt storage: rosbags, apsw, zstd, lz4 errors
                self._warn_unreadable(exc, count, last_ns)
                break
            count += 1
            last_ns = log_time_ns
            yield connection, log_time_ns, raw
        self._check_counts()

    def _raw_lists(self) -> Iterator[list[tuple[Connection, int, bytes]]]:
        """:meth:`_raw` (fast) a chunk of an mcap file at a time where :mod:`lnn_ros.bag.fast_mcap` can,
        else lists of one message; the same messages, read counts kept, and the same warnings."""
        assert self._reader is not None
        connections = [c for s in self.streams for c in self._connections.get(s, [])]
        lists = fast_mcap.raw_message_lists(self._reader.reader, connections) if connections else None
        if lists is None:
            for item in self._raw(fast=True):
                self.read_counts[self._decoders[id(item[0])].stream] += 1  # before _raw checks them at its end
                yield [item]
            return
        self.read_counts = {s: 0 for s in self._connections}
        streams = {id(c): self._decoders[id(c)].stream for c in connections}
        count, last_ns = 0, None
        while True:
            try:
                items = next(lists)
            except StopIteration:
                break
            except Exception as exc:  # as _raw: the same point, the same words
                self._warn_unreadable(exc, count, last_ns)
                break
            for stream, number in Counter(map(streams.__getitem__, map(id, map(_FIRST, items)))).items():
                self.read_counts[stream] += number
            if items:
                count += len(items)
                last_ns = items[-1][1]
                yield items
        self._check_counts()

    def _warn_unreadable(self, exc: Exception, count: int, last_ns: int | None) -> None:
        where = "before the first message" if last_ns is None else (
            f"after {count} messages (log time {(last_ns - self.info.start_ns) / NS_PER_S:.3f} s)"
        )
        self.warn(
            f"Bag {str(self.path)!r} could not be read past a point {where}: {describe_error(exc)}. "
            "The file is truncated or corrupt; results cover only the part before that point."
        )

    def _decoded(self) -> Iterator[BagMessage]:
        failures: dict[str, tuple[int, str]] = {}
        for connection, log_time_ns, raw in self._raw():
            decoder = self._decoders[id(connection)]
            self.read_counts[decoder.stream] += 1
            try:
                record = decoder(raw, log_time_ns)
            except Exception as exc:  # rosbags SerdeError, struct/index errors on damaged bytes
                count, first = failures.get(connection.topic, (0, describe_error(exc)))
                failures[connection.topic] = (count + 1, first)
                if self.strict:
                    self.warn(f"A message on {connection.topic!r} in bag {str(self.path)!r} could not be decoded: {first}")
                continue
            yield BagMessage(decoder.stream, log_time_ns, record)
        self._warn_failures(failures)

    def _warn_failures(self, failures: dict[str, tuple[int, str]]) -> None:
        for topic, (count, first) in failures.items():
            self.warn(
                f"messages on {topic!r} in bag {str(self.path)!r} could not be decoded and were skipped "
                f"(first error: {first})",
                count,
            )

    def _check_counts(self) -> None:
        for stream, connections in self._connections.items():
            listed = sum(c.msgcount for c in connections)
            read = self.read_counts.get(stream, 0)
            if read < listed:
                self.warn(
                    f"Topic {connections[0].topic!r} in bag {str(self.path)!r}: read {read} of the {listed} messages "
                    "its index lists; the file is truncated or corrupt."
                )

    def _checked(self, decoded: Iterator[BagMessage], order: MessageOrder, window_s: float) -> Iterator[BagMessage]:
        last: dict[Stream, int] = {}
        older: dict[Stream, int] = {}
        repeated: dict[Stream, int] = {}
        for message in decoded:
            if message.stream is Stream.COMMAND:  # recorded commands are paired by stamp, in any order
                yield message
                continue
            stamp = message.record.stamp_ns
            previous = last.get(message.stream)
            if previous is not None and stamp <= previous:
                target = older if stamp < previous else repeated
                target[message.stream] = target.get(message.stream, 0) + 1
            else:
                last[message.stream] = stamp
            yield message
        self._warn_stamps(older, repeated, order, window_s)

    def _warn_stamps(self, older: dict[Stream, int], repeated: dict[Stream, int], order: MessageOrder, window_s: float) -> None:
        for stream, count in older.items():
            hint = (
                "if this bag was not recorded from live topics, try --order stamp"
                if order is MessageOrder.LOG
                else f"they came more than the reorder window ({window_s:g} s) late; raise --reorder-window"
            )
            self.warn(
                f"messages on {self.topic(stream)!r} have a header stamp older than an earlier one; the engine drops "
                f"them as out of order ({hint})",
                count,
            )
        for stream, count in repeated.items():
            self.warn(
                f"messages on {self.topic(stream)!r} repeat an earlier header stamp; the engine drops them as "
                "duplicates (a publisher that leaves header.stamp at zero causes this)",
                count,
            )


class _StampChecks:
    """:meth:`BagReader._checked`'s counts of stamps older than or equal to their stream's newest, block by block."""

    def __init__(self) -> None:
        self.last: dict[Stream, int] = {}
        self.older: dict[Stream, int] = {}
        self.repeated: dict[Stream, int] = {}

    def count(self, kinds: np.ndarray, stamps_ns: np.ndarray) -> None:
        """Count the stamps ``stamps_ns`` of streams ``kinds`` (``_STREAM_CODE``), the next messages in order."""
        firsts: list[tuple[int, dict[Stream, int], Stream, int]] = []
        for stream in (Stream.IMU, Stream.CAMERA):
            at = np.flatnonzero(kinds == _STREAM_CODE[stream])
            if not len(at):
                continue
            stamps = stamps_ns[at]
            previous = np.maximum.accumulate(stamps)
            before = np.concatenate([[np.iinfo(np.int64).min], previous[:-1]])
            if stream in self.last:
                before = np.maximum(before, self.last[stream])
            self.last[stream] = int(max(previous[-1], before[-1]))
            for target, mask in ((self.older, stamps < before), (self.repeated, stamps == before)):
                hits = np.flatnonzero(mask)
                if len(hits):
                    firsts.append((int(at[hits[0]]), target, stream, len(hits)))
        for _, target, stream, number in sorted(firsts, key=lambda f: f[0]):  # dict order: first occurrence
            target[stream] = target.get(stream, 0) + number


_STREAM_CODE = {Stream.IMU: 0, Stream.CAMERA: 1, Stream.COMMAND: 2, Stream.VECTOR: 3}
_FIRST, _SECOND, _THIRD = operator.itemgetter(0), operator.itemgetter(1), operator.itemgetter(2)
_STREAM = operator.attrgetter("stream")


def _stamp_ordered(messages_in: Iterator[BagMessage], window_ns: int) -> Iterator[BagMessage]:
    """Reorder by header stamp (ties: log time, then bag order), holding ``window_ns`` of stamps."""
    heap: list[tuple[int, int, int, BagMessage]] = []
    newest: int | None = None
    for index, message in enumerate(messages_in):
        stamp = message.record.stamp_ns
        heapq.heappush(heap, (stamp, message.log_time_ns, index, message))
        newest = stamp if newest is None else max(newest, stamp)
        while heap and heap[0][0] <= newest - window_ns:
            yield heapq.heappop(heap)[3]
    while heap:
        yield heapq.heappop(heap)[3]


def _rihs01(typestore: Typestore, msgtype: str) -> str | None:
    try:
        return typestore.hash_rihs01(msgtype)
    except Exception:  # an incomplete definition (a sub-type is missing) has no hash
        return None


def describe_error(exc: BaseException) -> str:
    """``'TypeName: message'`` of an exception, for one-line error texts."""
    text = str(exc).strip().rstrip(".") or "no details"
    return f"{type(exc).__name__}: {text}"
