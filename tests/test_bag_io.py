"""Bag reading and writing on real bag files: round trips in every format, topic matching,
the direct CDR codecs against rosbags and rclpy, and the committed fixture bag."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixture_paths import FIXTURE

from lnn_ros.bag import cdr, messages
from lnn_ros.bag.errors import BagError
from lnn_ros.bag.reader import BagReader, MessageOrder
from lnn_ros.bag.topics import BagTopics
from lnn_ros.bag.writer import BagStorage, BagWriter
from lnn_ros.runtime import ImageFrame, ImuSample
from lnn_ros.runtime import messages as to_record
from lnn_ros.runtime.records import Command, Stream
from lnn_ros_tools.synthetic.flight import write_flight

MS = 1_000_000
T0 = 1_000_000 * 1_000_000_000  # 1e6 s


def sample(i: int) -> ImuSample:
    rng = np.random.default_rng(i)
    q = rng.normal(size=4)
    return ImuSample(T0 + i * 5 * MS, rng.normal(size=3), rng.normal(size=3), q / np.linalg.norm(q))


def frame(i: int, encoding: str = "rgb8", pad: int = 0) -> ImageFrame:
    channels = 1 if encoding == "mono8" else 3
    step = 4 * channels + pad
    data = np.random.default_rng(100 + i).integers(0, 256, size=3 * step, dtype=np.uint8).tobytes()
    return ImageFrame(T0 + i * 33 * MS + 1, 3, 4, encoding, step, data)


def twist(i: int) -> Command:
    return Command(T0 + i * 20 * MS, np.random.default_rng(200 + i).normal(size=6))


def write_all(path: Path, storage: str) -> list[tuple[str, int, object]]:
    """Write 20 IMU, 4 frames and 5 twists with log time = stamp + 1 ms; returns (topic, log time, record)."""
    entries = [("/imu", s.stamp_ns + MS, s) for s in map(sample, range(20))]
    entries += [("/camera/image_raw", f.stamp_ns + MS, f) for f in (frame(0), frame(1, "bgr8", 3), frame(2, "mono8", 1), frame(3))]
    entries += [("/cmd_vel", t.stamp_ns + MS, t) for t in map(twist, range(5))]
    entries.sort(key=lambda e: e[1])
    with BagWriter(path, storage) as bag:
        for topic, log_time, record in entries:
            bag.write_record(topic, record, log_time)
    return entries


def assert_same_record(got: object, want: object) -> None:
    assert type(got) is type(want)
    assert got.stamp_ns == want.stamp_ns  # type: ignore[attr-defined]
    if isinstance(want, ImageFrame):
        assert got[1:5] == want[1:5]
        assert bytes(got.data) == bytes(want.data)  # type: ignore[attr-defined]
    else:
        for a, b in zip(got[1:], want[1:]):  # type: ignore[index]
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3", "ros1"])
def test_round_trip_in_every_format(tmp_path: Path, storage: str) -> None:
    path = tmp_path / ("flight.bag" if storage == "ros1" else "flight")
    entries = write_all(path, storage)
    with BagReader(path, BagTopics(imu="imu", camera="/camera/image_raw", command="cmd_vel")) as reader:
        assert reader.info.is_ros1 == (storage == "ros1")
        assert {t.name: t.count for t in reader.info.topics.values()} == {"/imu": 20, "/camera/image_raw": 4, "/cmd_vel": 5}
        got = list(reader.messages())
        assert not reader.warnings
    assert [m.log_time_ns for m in got] == [e[1] for e in entries]
    kinds = {"/imu": Stream.IMU, "/camera/image_raw": Stream.CAMERA, "/cmd_vel": Stream.COMMAND}
    assert [m.stream for m in got] == [kinds[e[0]] for e in entries]
    for message, (_, _, record) in zip(got, entries):
        assert_same_record(message.record, record)


def test_unstamped_twist_takes_the_log_time(tmp_path: Path) -> None:
    store = messages.default_typestore()
    with BagWriter(tmp_path / "bag") as bag:
        body = store.types["geometry_msgs/msg/Twist"](
            linear=store.types["geometry_msgs/msg/Vector3"](x=1.0, y=2.0, z=3.0),
            angular=store.types["geometry_msgs/msg/Vector3"](x=4.0, y=5.0, z=6.0),
        )
        bag.write_message("/cmd_vel", "geometry_msgs/msg/Twist", body, 123 * MS)
    with BagReader(tmp_path / "bag", BagTopics(command_type="geometry_msgs/Twist"), streams=[Stream.COMMAND]) as reader:
        (message,) = list(reader.messages())
    assert message.record.stamp_ns == 123 * MS
    np.testing.assert_array_equal(message.record.twist, [1, 2, 3, 4, 5, 6])


def test_stamp_order_merges_streams_by_header_stamp(tmp_path: Path) -> None:
    # Camera frames logged 40 ms after their stamp: log order and stamp order differ.
    with BagWriter(tmp_path / "bag") as bag:
        for i in range(10):
            bag.write_imu("/imu", sample(i), sample(i).stamp_ns)
        bag.write_image("/camera/image_raw", frame(0), frame(0).stamp_ns + 40 * MS)
    with BagReader(tmp_path / "bag") as reader:
        log_order = [m.record.stamp_ns for m in reader.messages(MessageOrder.LOG)]
        stamp_order = [m.record.stamp_ns for m in reader.messages(MessageOrder.STAMP, reorder_window_s=0.1)]
    assert log_order != sorted(log_order)
    assert stamp_order == sorted(log_order)


def test_reader_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "nope").open()
    with pytest.raises(BagError, match="cannot be read from messages of type 'sensor_msgs/msg/Image'"):
        BagTopics(imu_type="sensor_msgs/Image")
    with pytest.raises(BagError, match="exists already"):
        BagWriter(FIXTURE)
    with pytest.raises(BagError, match="Unknown bag storage 'zip'"):
        BagWriter(tmp_path / "x", "zip")


# ---------------------------------------------------------------------- direct CDR codecs
@pytest.mark.parametrize("frame_id", ["", "a", "abc", "imu_lin", "imu_link", "camera_optical_frame"])
def test_direct_codecs_equal_rosbags(frame_id: str) -> None:
    """Every header length (alignment case) decodes as rosbags does, and the encoder writes its bytes."""
    store = messages.default_typestore()
    imu = sample(3)
    raw = bytes(store.serialize_cdr(messages.imu_message(imu, frame_id, store), "sensor_msgs/msg/Imu"))
    assert_same_record(cdr.decode_imu(raw), imu)
    for image in (frame(1, "bgr8", 3), frame(2, "mono8", 1), frame(0)):
        raw = bytes(store.serialize_cdr(messages.image_message(image, frame_id, store), "sensor_msgs/msg/Image"))
        assert_same_record(cdr.decode_image(raw), image)
    command = twist(2)
    expected = bytes(store.serialize_cdr(
        messages.twist_stamped_message(command.stamp_ns, command.twist, frame_id, store), "geometry_msgs/msg/TwistStamped"
    ))
    assert cdr.encode_twist_stamped(command.stamp_ns, command.twist, frame_id) == expected
    assert_same_record(cdr.decode_twist_stamped(expected), command)


def test_direct_codecs_leave_big_endian_to_rosbags_and_reject_truncation() -> None:
    store = messages.default_typestore()
    msg = messages.imu_message(sample(1), "imu", store)
    big = bytes(store.serialize_cdr(msg, "sensor_msgs/msg/Imu", little_endian=False))
    assert cdr.decode_imu(big) is None
    little = bytes(store.serialize_cdr(msg, "sensor_msgs/msg/Imu"))
    with pytest.raises(ValueError):
        cdr.decode_imu(little[:100])


RCLPY_SCRIPT = r"""
import base64, json, sys
from rclpy.serialization import deserialize_message, serialize_message
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import Image, Imu

imu = Imu()
imu.header.stamp.sec, imu.header.stamp.nanosec, imu.header.frame_id = 1700000000, 123456789, "imu_link"
imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = 0.1, -0.2, 0.3
imu.linear_acceleration.x, imu.linear_acceleration.y, imu.linear_acceleration.z = 1.5, -2.5, 9.81
imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w = 0.0, 0.6, 0.0, 0.8
image = Image()
image.header.stamp.sec, image.header.stamp.nanosec, image.header.frame_id = 1700000000, 5, "cam"
image.height, image.width, image.encoding, image.step = 2, 3, "bgr8", 10
image.data = bytes(range(20))
twist = TwistStamped()
twist.header.stamp.sec, twist.header.stamp.nanosec, twist.header.frame_id = 1700000001, 7, "base_link"
twist.twist.linear.x, twist.twist.angular.z = 0.5, -0.25
ours = json.loads(sys.stdin.read())
theirs = {name: deserialize_message(base64.b64decode(raw), TwistStamped) for name, raw in ours.items()}
print(json.dumps({
    "imu": base64.b64encode(serialize_message(imu)).decode(),
    "image": base64.b64encode(serialize_message(image)).decode(),
    "twist": base64.b64encode(serialize_message(twist)).decode(),
    "decoded": {name: [m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id, m.twist.linear.x,
                       m.twist.linear.y, m.twist.linear.z, m.twist.angular.x, m.twist.angular.y, m.twist.angular.z]
                for name, m in theirs.items()},
}))
"""


def test_rclpy_serialised_messages_decode_the_same_and_vice_versa(tmp_path: Path) -> None:
    """rclpy's CDR (in a subprocess) through our bag reader, and our TwistStamped bytes through rclpy."""
    import base64

    ours = {
        "direct": cdr.encode_twist_stamped(1_700_000_002 * 10**9 + 9, (1.0, 2.0, 3.0, 4.0, 5.0, 6.0), "base_link"),
        "rosbags": bytes(messages.default_typestore().serialize_cdr(
            messages.twist_stamped_message(3 * 10**9 + 1, (-1.0, 0.0, 0.5, 0.0, 0.0, 2.0), "odom", messages.default_typestore()),
            "geometry_msgs/msg/TwistStamped",
        )),
    }
    done = subprocess.run(
        [sys.executable, "-c", RCLPY_SCRIPT],
        input=json.dumps({k: base64.b64encode(v).decode() for k, v in ours.items()}),
        capture_output=True, text=True, timeout=60, check=True,
    )
    result = json.loads(done.stdout)
    assert result["decoded"]["direct"] == [1_700_000_002, 9, "base_link", 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert result["decoded"]["rosbags"] == [3, 1, "odom", -1.0, 0.0, 0.5, 0.0, 0.0, 2.0]

    raw = {name: base64.b64decode(result[name]) for name in ("imu", "image", "twist")}
    store = messages.default_typestore()
    with BagWriter(tmp_path / "rclpy") as bag:
        bag.write_raw("/imu", "sensor_msgs/msg/Imu", raw["imu"], 1)
        bag.write_raw("/camera/image_raw", "sensor_msgs/msg/Image", raw["image"], 2)
        bag.write_raw("/cmd_vel", "geometry_msgs/msg/TwistStamped", raw["twist"], 3)
    with BagReader(tmp_path / "rclpy") as reader:
        imu, image, command = (m.record for m in reader.messages())
    assert imu.stamp_ns == 1_700_000_000_123_456_789
    np.testing.assert_array_equal(imu.angular_velocity, [0.1, -0.2, 0.3])
    np.testing.assert_array_equal(imu.linear_acceleration, [1.5, -2.5, 9.81])
    np.testing.assert_array_equal(imu.orientation, [0.0, 0.6, 0.0, 0.8])
    assert (image.stamp_ns, image.height, image.width, image.encoding, image.step) == (1_700_000_000_000_000_005, 2, 3, "bgr8", 10)
    assert bytes(image.data) == bytes(range(20))
    assert command.stamp_ns == 1_700_000_001_000_000_007
    np.testing.assert_array_equal(command.twist, [0.5, 0, 0, 0, 0, -0.25])
    # rosbags' generic decoder agrees with the direct one on rclpy's bytes.
    generic = store.deserialize_cdr(raw["imu"], "sensor_msgs/msg/Imu")
    assert_same_record(to_record.imu_sample(generic, to_record.stamp_ns(generic.header)), imu)


# ---------------------------------------------------------------------- the committed fixture
def test_fixture_bag_is_small_and_equals_its_generator(tmp_path: Path) -> None:
    size = sum(p.stat().st_size for p in FIXTURE.iterdir())
    assert size < 5_000_000
    regenerated = write_flight(tmp_path / "flight")
    with BagReader(FIXTURE) as committed, BagReader(regenerated) as fresh:
        pairs = list(zip(committed.messages(), fresh.messages(), strict=True))
        assert committed.info.topics == fresh.info.topics
    assert len(pairs) == 560
    for a, b in pairs:
        assert (a.stream, a.log_time_ns) == (b.stream, b.log_time_ns)
        assert_same_record(a.record, b.record)


def test_writer_rejects_unwritable_records(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "bag", BagStorage.SQLITE3) as bag:
        with pytest.raises(BagError, match="0 .. 2\\*\\*31 - 1 seconds"):
            bag.write_twist("/cmd_vel", Command(-1, np.zeros(6)))
        with pytest.raises(BagError, match="needs 6 values"):
            bag.write_twist("/cmd_vel", Command(1, np.zeros(4)))
        bag.write_imu("/imu", sample(0))
        with pytest.raises(BagError, match="already holds sensor_msgs/msg/Imu"):
            bag.write_twist("/imu", twist(0))
    with BagReader(tmp_path / "bag") as reader:  # what was accepted before the errors is readable
        assert [m.stream for m in reader.messages()] == [Stream.IMU]


def test_importing_the_packages_loads_no_heavy_library() -> None:
    """``lnn_ros.bag`` and ``lnn_ros.runtime`` load their names on first use (the CLI imports them on every call)."""
    heavy = ("rosbags", "onnxruntime", "rclpy", "matplotlib", "torch")
    code = (
        "import sys, lnn_ros.bag, lnn_ros.runtime, lnn_ros.runtime.records, lnn_ros.runtime.records\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
        "lnn_ros.bag.BagWriter, lnn_ros.runtime.LiveLoop\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    before, after = done.stdout.splitlines()
    assert before == "[]"
    assert after == "['onnxruntime']"  # LiveLoop's module steps the engine (BagWriter loads rosbags when opened)


def test_lazy_exports_load_by_name_and_refuse_a_name_listed_twice() -> None:
    from lnn_ros._lazy import lazy_exports

    names, getattr_ = lazy_exports("lnn_ros.bag", {"errors": ("BagError",), "topics": ("BagTopics",)})
    assert names == ["BagError", "BagTopics"] and getattr_("BagError") is BagError
    with pytest.raises(AttributeError, match="module 'lnn_ros.bag' has no attribute 'Nope'"):
        getattr_("Nope")
    with pytest.raises(ValueError, match="'BagError' is listed under both 'errors' and 'topics'"):
        lazy_exports("lnn_ros.bag", {"errors": ("BagError",), "topics": ("BagError",)})
