"""``lnn-ros play``: publish a bag's messages on live ROS 2 topics with their original timing.

Like ``ros2 bag play`` (which a pip-only install does not have): messages are published at
``t0 + (log_time - start - offset) / rate`` of wall time, in log-time order, each with the
raw CDR bytes from the bag (``Publisher.publish(bytes)``, in rclpy since Galactic; a
publisher that refuses bytes gets the message deserialised by rclpy first). ROS 1 bags are
converted to CDR on the fly. Options: rate factor, start offset, duration, topic selection
and remapping, ``/clock`` at a fixed rate for nodes with ``use_sim_time``, a start delay
and waiting for subscribers. There is no looping: a node's stamps must not jump back.

A message published more than ``late_threshold_s`` after its due time is counted as late
(the machine or the rate factor could not keep up); the report lists messages sent per
topic, late ones, the worst lateness and the topics that could not be played.

rclpy is imported only inside :func:`play_bag`; the scheduling (:func:`play_messages`) is
plain Python with an injected clock and publisher sink.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from lnn_ros.bag.errors import BagError
from lnn_ros.bag.reader import BagWarnings, describe_error, open_any_reader
from lnn_ros.bag.topics import CLOCK_TYPE, absolute_topic, topic_key
from lnn_ros.units import NS_PER_S

if TYPE_CHECKING:
    from rosbags.interfaces import Connection

    from lnn_ros.bag.source import BagSource

RELIABILITIES = ("reliable", "best_effort")


@dataclass(frozen=True)
class PlayConfig:
    """Playback settings.

    Attributes:
        rate: playback speed factor (2.0 = twice as fast).
        start_offset_s: skip this much of the bag's beginning.
        duration_s: play at most this much bag time (None: to the end).
        topics: topics to play (with or without leading slash); empty = all.
        remap: ``(bag topic, published topic)`` pairs.
        clock_hz: publish ``/clock`` at this rate of wall time (0: no clock).
        delay_s: wait this long after creating the publishers (discovery) before playing.
        wait_for_subscribers_s: additionally wait up to this long until every topic has a subscriber.
        late_threshold_s: a message published later than this after its due time is late.
        reliability: QoS reliability of the publishers (``reliable`` or ``best_effort``).
        depth: QoS history depth (keep last).
    """

    rate: float = 1.0
    start_offset_s: float = 0.0
    duration_s: float | None = None
    topics: tuple[str, ...] = ()
    remap: tuple[tuple[str, str], ...] = ()
    clock_hz: float = 0.0
    delay_s: float = 0.5
    wait_for_subscribers_s: float = 0.0
    late_threshold_s: float = 0.01
    reliability: str = "reliable"
    depth: int = 100

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise BagError(f"The playback rate must be > 0, got {self.rate!r}.")
        for name in ("start_offset_s", "clock_hz", "delay_s", "wait_for_subscribers_s", "late_threshold_s"):
            if not getattr(self, name) >= 0:
                raise BagError(f"PlayConfig.{name} must be >= 0, got {getattr(self, name)!r}.")
        if self.duration_s is not None and not self.duration_s > 0:
            raise BagError(f"The playback duration must be > 0 s, got {self.duration_s!r}.")
        if self.reliability not in RELIABILITIES:
            raise BagError(f"QoS reliability must be one of {list(RELIABILITIES)}, got {self.reliability!r}.")
        if self.depth < 1:
            raise BagError(f"QoS depth must be >= 1, got {self.depth!r}.")

    def published_name(self, topic: str) -> str:
        """The topic a bag topic is published on (after remapping)."""
        for source, target in self.remap:
            if topic_key(source) == topic_key(topic):
                return absolute_topic(target)
        return absolute_topic(topic)


@dataclass
class PlayReport:
    """What a playback did."""

    sent: dict[str, int] = field(default_factory=dict)
    late: int = 0
    max_late_s: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)  # topic -> reason it was not played
    publish_errors: int = 0
    clock_messages: int = 0
    bag_s: float = 0.0
    wall_s: float = 0.0
    interrupted: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    def lines(self) -> list[str]:
        """A human-readable report."""
        lines = [
            f"sent {self.total_sent} messages covering {self.bag_s:.2f} s of bag time in {self.wall_s:.2f} s"
            + (" (interrupted)" if self.interrupted else "")
        ]
        lines += [f"  {topic}: {count}" for topic, count in sorted(self.sent.items())]
        if self.clock_messages:
            lines.append(f"  /clock: {self.clock_messages}")
        lines.append(f"late (published > threshold after due time): {self.late}, worst {self.max_late_s * 1e3:.1f} ms")
        if self.publish_errors:
            lines.append(f"publish errors: {self.publish_errors}")
        lines += [f"not played: {topic}: {reason}" for topic, reason in sorted(self.failed.items())]
        lines += [f"warning: {w}" for w in self.warnings]
        return lines


class Sink(Protocol):
    """Where playback goes: ROS publishers (or a test double)."""

    def publisher(self, topic: str, msgtype: str) -> Callable[[bytes], None]:
        """A function publishing CDR bytes on ``topic``; raises BagError if the type is unavailable."""
        ...

    def clock(self, stamp_ns: int) -> None:
        """Publish ``/clock``."""
        ...

    def wait_for_subscribers(self, timeout_s: float) -> None:
        """Return when every publisher has a subscriber, or after ``timeout_s``."""
        ...


class Item(NamedTuple):
    """One message to publish: bag topic, type, log time and CDR bytes."""

    topic: str
    msgtype: str
    log_time_ns: int
    cdr: bytes


def play_messages(
    items: Iterable[Item],
    sink: Sink,
    config: PlayConfig,
    origin_ns: int,
    *,
    now_ns: Callable[[], int] = time.monotonic_ns,
    sleep: Callable[[float], None] = time.sleep,
) -> PlayReport:
    """Publish ``items`` (in log-time order) at their due wall times; bag time ``origin_ns`` is t = 0."""
    report = PlayReport()
    publishers: dict[str, Callable[[bytes], None] | None] = {}
    names: dict[str, str] = {}
    threshold_ns = int(config.late_threshold_s * NS_PER_S)
    clock_period_ns = round(NS_PER_S / config.clock_hz) if config.clock_hz > 0 else 0
    start_wall = now_ns()
    next_clock = start_wall
    last_log = origin_ns

    def wait_until(due: int) -> None:
        nonlocal next_clock
        while True:
            now = now_ns()
            if clock_period_ns and next_clock <= min(now, due):
                sink.clock(origin_ns + int((next_clock - start_wall) * config.rate))
                report.clock_messages += 1
                next_clock += clock_period_ns
                continue
            target = min(due, next_clock) if clock_period_ns else due
            if now >= due:
                return
            sleep(max(0.0, (target - now) / NS_PER_S))

    try:
        for item in items:
            if item.topic not in publishers:
                names[item.topic] = config.published_name(item.topic)
                try:
                    publishers[item.topic] = sink.publisher(names[item.topic], item.msgtype)
                except BagError as exc:
                    publishers[item.topic] = None
                    report.failed[item.topic] = str(exc)
            publish = publishers[item.topic]
            if publish is None:
                continue
            due = start_wall + int((item.log_time_ns - origin_ns) / config.rate)
            wait_until(due)
            late = now_ns() - due
            try:
                publish(item.cdr)
            except Exception as exc:  # rclpy raises several types for a message it cannot take
                report.publish_errors += 1
                report.failed.setdefault(item.topic, f"publishing failed: {describe_error(exc)}")
                continue
            if late > threshold_ns:
                report.late += 1
            report.max_late_s = max(report.max_late_s, late / NS_PER_S)
            name = names[item.topic]
            report.sent[name] = report.sent.get(name, 0) + 1
            last_log = item.log_time_ns
    except KeyboardInterrupt:
        report.interrupted = True
    report.wall_s = (now_ns() - start_wall) / NS_PER_S
    report.bag_s = max(0, last_log - origin_ns) / NS_PER_S
    return report


def _message_class(msgtype: str) -> Any:
    package, kind, name = (msgtype.split("/") + ["", ""])[:3]
    if kind != "msg" or not name:
        raise BagError(f"Type {msgtype!r} is not a ROS 2 message type (package/msg/Name).")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        raise BagError(
            f"The Python message package for {msgtype!r} is not installed (import {package}.msg failed); "
            f"install ros-<distro>-{package.replace('_', '-')} or leave the topic out with --topics."
        ) from None


class _RosSink:
    """Publishers on one rclpy node, in its own context."""

    def __init__(self, config: PlayConfig) -> None:
        import rclpy
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

        self._rclpy = rclpy
        self.context = rclpy.Context()
        self.context.init(args=[])  # not sys.argv: the CLI arguments are not ROS arguments
        self.node = rclpy.create_node("lnn_bag_player", context=self.context)
        reliability = ReliabilityPolicy.RELIABLE if config.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        self.qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=config.depth, reliability=reliability)
        self._publishers: list[Any] = []
        self._clock_pub: Any = None
        self._clock_msg: Any = None
        if config.clock_hz > 0:
            clock_class = _message_class(CLOCK_TYPE)
            self._clock_pub = self.node.create_publisher(clock_class, "/clock", 10)
            self._clock_msg = clock_class()

    def publisher(self, topic: str, msgtype: str) -> Callable[[bytes], None]:
        from rclpy.serialization import deserialize_message

        message_class = _message_class(msgtype)
        publisher = self.node.create_publisher(message_class, topic, self.qos)
        self._publishers.append(publisher)
        raw_ok = True

        def publish(cdr: bytes) -> None:
            nonlocal raw_ok
            if raw_ok:
                try:
                    publisher.publish(cdr)
                    return
                except TypeError:  # an rclpy without Publisher.publish(bytes)
                    raw_ok = False
            publisher.publish(deserialize_message(cdr, message_class))

        return publish

    def clock(self, stamp_ns: int) -> None:
        stamp = self._clock_msg.clock
        stamp.sec, stamp.nanosec = divmod(max(stamp_ns, 0), NS_PER_S)
        self._clock_pub.publish(self._clock_msg)

    def wait_for_subscribers(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(p.get_subscription_count() > 0 for p in self._publishers):
            time.sleep(0.01)

    def close(self) -> None:
        # Reliable publishers: let subscribers acknowledge the last messages before the
        # participant goes away, or the tail of the bag can be lost (seen: 399 of 400).
        from rclpy.duration import Duration

        for publisher in self._publishers:
            publisher.wait_for_all_acked(Duration(seconds=2.0))
        self.node.destroy_node()
        self.context.try_shutdown()


def _selected(reader: BagSource, config: PlayConfig) -> list[Connection]:
    wanted = {topic_key(t) for t in config.topics}
    connections = [c for c in reader.connections if not wanted or topic_key(c.topic) in wanted]
    missing = sorted(wanted - {topic_key(c.topic) for c in reader.connections})
    if missing:
        available = sorted({c.topic for c in reader.connections})
        raise BagError(f"Bag has no topic(s) {missing}; it has {available}.")
    return connections


def _cdr_converter(reader: BagSource) -> Callable[[bytes, str], bytes]:
    """Raw bag bytes -> CDR: identity for rosbag2, rosbags' conversion (Header without seq) for ROS 1."""
    if reader.is2:
        return lambda raw, _msgtype: raw if isinstance(raw, bytes) else bytes(raw)
    from rosbags.typesys import Stores, get_typestore

    from lnn_ros.bag.messages import default_typestore

    store = get_typestore(Stores.EMPTY)
    store.register({**reader.typestore.fielddefs, "std_msgs/msg/Header": default_typestore().fielddefs["std_msgs/msg/Header"]})
    return lambda raw, msgtype: bytes(store.ros1_to_cdr(raw, msgtype))


def _items(reader: BagSource, connections: list[Connection], start_ns: int, stop_ns: int | None,
           convert: Callable[[bytes, str], bytes], warnings: BagWarnings) -> Iterator[Item]:
    iterator = reader.messages(connections=connections, start=start_ns, stop=stop_ns)
    while True:
        try:
            connection, log_time_ns, raw = next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # truncated / corrupt storage
            warnings.add(f"The bag could not be read further ({describe_error(exc)}); playback stopped early.")
            return
        try:
            cdr = convert(raw, connection.msgtype)
        except Exception as exc:
            warnings.add(f"messages on {connection.topic!r} could not be converted to CDR ({describe_error(exc)})")
            continue
        yield Item(connection.topic, connection.msgtype, log_time_ns, cdr)


def play_bag(path: str | Path, config: PlayConfig = PlayConfig(), sink: Sink | None = None) -> PlayReport:
    """Play the bag at ``path`` on live ROS 2 topics (or into ``sink``); returns the report.

    Raises:
        BagError: the bag cannot be opened or a selected topic is not in it.
    """
    warnings = BagWarnings()
    reader, _ = open_any_reader(path, warnings)
    own_sink: _RosSink | None = None
    try:
        connections = _selected(reader, config)
        start_ns = reader.start_time if reader.message_count else 0
        origin_ns = start_ns + round(config.start_offset_s * NS_PER_S)
        stop_ns = None if config.duration_s is None else origin_ns + round(config.duration_s * NS_PER_S)
        if sink is None:
            own_sink = _RosSink(config)
            sink = own_sink
        cached = _Cached(sink)
        for connection in connections:  # create publishers up front so discovery runs during the delay
            try:
                cached.publisher(config.published_name(connection.topic), connection.msgtype)
            except BagError:
                pass  # reported per topic by play_messages
        if config.delay_s:
            time.sleep(config.delay_s)
        if config.wait_for_subscribers_s:
            cached.wait_for_subscribers(config.wait_for_subscribers_s)
        items = _items(reader, connections, origin_ns, stop_ns, _cdr_converter(reader), warnings)
        report = play_messages(items, cached, config, origin_ns)
    finally:
        if own_sink is not None:
            own_sink.close()
        reader.close()
    report.warnings = tuple(warnings.lines())
    return report


class _Cached:
    """A sink wrapper handing out each topic's publisher created up front."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._publishers: dict[tuple[str, str], Callable[[bytes], None]] = {}

    def publisher(self, topic: str, msgtype: str) -> Callable[[bytes], None]:
        key = (topic, msgtype)
        if key not in self._publishers:
            self._publishers[key] = self._sink.publisher(topic, msgtype)
        return self._publishers[key]

    def clock(self, stamp_ns: int) -> None:
        self._sink.clock(stamp_ns)

    def wait_for_subscribers(self, timeout_s: float) -> None:
        self._sink.wait_for_subscribers(timeout_s)
