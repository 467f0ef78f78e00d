"""Bad bags: each problem ends in a BagError naming the file and topic, or a counted warning;
never a traceback and never a silently short result. Every case is a real bag file."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import imu_bundle  # noqa: F401 (module-scoped fixture)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from lnn_ros.bag import messages
from lnn_ros.bag.errors import BagError
from lnn_ros.bag.reader import BagReader, MessageOrder
from lnn_ros.bag.topics import BagTopics
from lnn_ros.bag.writer import BagWriter
from lnn_ros.cli import main
from lnn_ros.runtime import ImuSample
from lnn_ros.runtime.records import Command, Stream

MS = 1_000_000
T0 = 5_000 * 1_000_000_000
IMU_ONLY = [Stream.IMU]


def imu(stamp_ns: int) -> ImuSample:
    return ImuSample(stamp_ns, np.array([0.1, 0.2, 0.3]), np.array([0.0, 0.0, 9.81]), np.array([0.0, 0.0, 0.0, 1.0]))


def imu_bag(path: Path, count: int = 2000, storage: str = "mcap", stamps: list[int] | None = None) -> Path:
    with BagWriter(path, storage) as bag:
        for i, stamp in enumerate(stamps if stamps is not None else [T0 + k * 5 * MS for k in range(count)]):
            bag.write_imu("/imu", imu(stamp), T0 + i * 5 * MS)
    return path


def read_all(path: Path, strict: bool = False, order: MessageOrder = MessageOrder.LOG) -> tuple[list, list[str]]:
    with BagReader(path, streams=IMU_ONLY, required=IMU_ONLY, strict=strict) as reader:
        got = list(reader.messages(order, reorder_window_s=0.05))
        return got, reader.warnings.lines()


def test_missing_topic_names_the_topic_the_file_and_what_is_there(tmp_path: Path) -> None:
    bag = imu_bag(tmp_path / "bag", 10)
    with pytest.raises(BagError) as error:
        BagReader(bag, BagTopics(imu="/drone/imu"), required=IMU_ONLY).open()
    text = str(error.value)
    assert "'/drone/imu'" in text and str(bag) in text and "/imu (sensor_msgs/msg/Imu)" in text and "--imu-topic" in text


def test_wrong_type_is_an_error_for_a_required_stream_and_a_warning_for_an_optional_one(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "bag") as bag:
        bag.write_twist("/imu", Command(T0, np.zeros(6)))
        bag.write_imu("/cmd_vel", imu(T0))
    with pytest.raises(BagError, match="has type 'geometry_msgs/msg/TwistStamped' but the imu stream needs 'sensor_msgs/msg/Imu'"):
        BagReader(tmp_path / "bag", required=IMU_ONLY).open()
    topics = BagTopics(imu="/cmd_vel", command="/cmd_vel")  # an IMU topic, also named as the optional command stream
    with BagReader(tmp_path / "bag", topics, required=IMU_ONLY) as reader:
        assert [m.stream for m in reader.messages()] == [Stream.IMU]
        (warning,) = reader.warnings.lines()
    assert "Topic '/cmd_vel'" in warning and "the command stream needs 'geometry_msgs/msg/TwistStamped', so it is not read" in warning


def test_truncated_mcap_is_a_clear_error(tmp_path: Path) -> None:
    bag = imu_bag(tmp_path / "bag", 500)
    (storage,) = bag.glob("*.mcap")
    storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 2])
    with pytest.raises(BagError, match="Cannot open bag .*truncated"):
        BagReader(bag, required=IMU_ONLY).open()


def test_truncated_sqlite3_tail_is_counted_or_raised_in_strict_mode(tmp_path: Path) -> None:
    bag = imu_bag(tmp_path / "bag", 3000, storage="sqlite3")
    (storage,) = bag.glob("*.db3")
    storage.write_bytes(storage.read_bytes()[: int(storage.stat().st_size * 0.999)])
    got, warnings = read_all(bag)
    assert 0 < len(got) < 3000 or warnings
    assert any("truncated or corrupt" in w for w in warnings), warnings
    with pytest.raises(BagError, match="truncated or corrupt"):
        read_all(bag, strict=True)


def test_corrupt_mcap_chunk_that_rosbags_skips_silently_is_counted(tmp_path: Path) -> None:
    bag = imu_bag(tmp_path / "bag", 5000)
    (storage,) = bag.glob("*.mcap")
    data = bytearray(storage.read_bytes())
    data[100_000:200_000] = b"\x17" * 100_000
    storage.write_bytes(bytes(data))
    got, warnings = read_all(bag)
    assert len(got) < 5000
    assert f"1 x Topic '/imu' in bag {str(bag)!r}: read {len(got)} of the 5000 messages its index lists; the file is truncated or corrupt." in warnings


def test_undecodable_message_is_skipped_and_counted(tmp_path: Path) -> None:
    store = messages.default_typestore()
    good = bytes(store.serialize_cdr(messages.imu_message(imu(T0), "imu", store), "sensor_msgs/msg/Imu"))
    with BagWriter(tmp_path / "bag") as bag:
        bag.write_raw("/imu", "sensor_msgs/msg/Imu", good, 1)
        bag.write_raw("/imu", "sensor_msgs/msg/Imu", good[:60], 2)
        bag.write_raw("/imu", "sensor_msgs/msg/Imu", good, 3)
    got, warnings = read_all(tmp_path / "bag")
    assert [m.log_time_ns for m in got] == [1, 3]
    assert len(warnings) == 2 and warnings[0].startswith("1 x messages on '/imu'") and "could not be decoded" in warnings[0]
    assert "read 2 of the 3" not in warnings[1] and "repeat an earlier header stamp" in warnings[1]
    with pytest.raises(BagError, match="could not be decoded"):
        read_all(tmp_path / "bag", strict=True)


def test_unsorted_and_repeated_stamps_are_counted(tmp_path: Path) -> None:
    stamps = [T0 + k * 5 * MS for k in range(10)]
    stamps[4], stamps[5] = stamps[5], stamps[4]  # one swap: one stamp older than an earlier one
    stamps.insert(8, stamps[7])  # one repeat
    bag = imu_bag(tmp_path / "bag", stamps=stamps)
    got, warnings = read_all(bag)
    assert len(got) == 11
    assert any(w.startswith("1 x messages on '/imu' have a header stamp older") and "--order stamp" in w for w in warnings)
    assert any(w.startswith("1 x messages on '/imu' repeat an earlier header stamp") for w in warnings)
    # stamp order repairs the swap; the repeat stays a repeat
    got, warnings = read_all(bag, order=MessageOrder.STAMP)
    assert [m.record.stamp_ns for m in got] == sorted(stamps)
    assert len(warnings) == 1 and "repeat an earlier header stamp" in warnings[0]


def test_non_standard_definition_of_a_needed_type_is_an_error(tmp_path: Path) -> None:
    custom = get_typestore(Stores.EMPTY)
    custom.register(get_types_from_msg("float64 x\n", "sensor_msgs/msg/Imu"))
    with Writer(tmp_path / "bag", version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection(
            "/imu", "sensor_msgs/msg/Imu", msgdef="float64 x\n", rihs01=custom.hash_rihs01("sensor_msgs/msg/Imu")
        )
        writer.write(connection, 1, bytes(custom.serialize_cdr(custom.types["sensor_msgs/msg/Imu"](x=1.0), "sensor_msgs/msg/Imu")))
    with pytest.raises(BagError, match="stored definition of 'sensor_msgs/msg/Imu' differs from the standard ROS 2 one"):
        BagReader(tmp_path / "bag", required=IMU_ONLY).open()


def test_unparsable_definition_of_a_topic_we_do_not_read_does_not_stop_the_bag(tmp_path: Path) -> None:
    with Writer(tmp_path / "bag", version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/custom", "my_msgs/msg/Foo", msgdef="int32 x\nthis is not a field\n", rihs01="RIHS01_0")
        writer.write(connection, 1, b"\x00\x01\x00\x00\x01\x00\x00\x00")
        store = messages.default_typestore()
        imu_connection = writer.add_connection("/imu", "sensor_msgs/msg/Imu", typestore=store)
        writer.write(imu_connection, 2, bytes(store.serialize_cdr(messages.imu_message(imu(T0), "imu", store), "sensor_msgs/msg/Imu")))
    got, warnings = read_all(tmp_path / "bag")
    assert len(got) == 1 and not warnings
    # a broken definition on a topic we read is a clear error naming the topic
    with Writer(tmp_path / "bad", version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/imu", "sensor_msgs/msg/Imu", msgdef="float64 x\n---\n%%% 3\n", rihs01="RIHS01_0")
        writer.write(connection, 1, b"\x00\x01\x00\x00\x01\x00\x00\x00")
    with pytest.raises(BagError, match=r"Topic '/imu' in bag .*: the stored definition of its type 'sensor_msgs/msg/Imu' cannot be parsed"):
        BagReader(tmp_path / "bad", required=IMU_ONLY).open()


def test_bag_without_definitions_decodes_known_types_and_ignores_unknown_ones(tmp_path: Path) -> None:
    """A Humble-style sqlite3 bag: no stored definitions, plus a topic of a custom type."""
    bag = imu_bag(tmp_path / "bag", 20, storage="sqlite3")
    (storage,) = bag.glob("*.db3")
    with sqlite3.connect(storage) as db:
        db.execute("DELETE FROM message_definitions")
        db.execute("UPDATE topics SET type_description_hash = ''")
        db.execute(
            "INSERT INTO topics (id, name, type, serialization_format, offered_qos_profiles, type_description_hash) "
            "VALUES (99, '/px4/status', 'px4_msgs/msg/VehicleStatus', 'cdr', '', '')"
        )
        db.execute("INSERT INTO messages (topic_id, timestamp, data) VALUES (99, 5, x'00010000')")
    metadata = bag / "metadata.yaml"
    metadata.write_text(metadata.read_text().replace("type_description_hash", "hash_unused"))
    got, warnings = read_all(bag)
    assert len(got) == 20 and not warnings


def test_missing_metadata_falls_back_to_the_storage_file_with_a_warning(tmp_path: Path) -> None:
    bag = imu_bag(tmp_path / "bag", 30)
    (bag / "metadata.yaml").unlink()
    got, warnings = read_all(bag)
    assert len(got) == 30
    assert warnings == [f"1 x Bag {str(bag)!r} has no metadata.yaml (was the recording interrupted?); read 'bag.mcap' directly."]
    shutil.rmtree(bag)
    bag.mkdir()
    with pytest.raises(BagError, match="is not a rosbag2 bag: it has no metadata.yaml and no .mcap/.db3 files"):
        read_all(bag)


def test_not_a_bag_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(BagError, match="Cannot open bag .*notes.txt"):
        BagReader(path).open()


@pytest.mark.parametrize("args, expected", [
    (["bag-info", "{tmp}/nope"], "does not exist"),
    (["bag-info", "{tmp}/half", "--imu-type", "sensor_msgs/msg/Temperature"], "cannot be read from messages of type"),
    (["replay", "{tmp}/half", "--model", "{tmp}/no_bundle", "--out", "{tmp}/out"], "Bundle folder"),
    (["replay", "{tmp}/half", "-m", "{tmp}/b", "--params", "{tmp}/half/metadata.yaml"], "has no '/**' or 'lnn_node' section"),
    (["play", "{tmp}/half", "--rate", "0"], "rate must be > 0"),
    (["bag-to-dataset", "{tmp}/half", "--out", "{tmp}/d.npz"], "has no command topic 'cmd_vel'"),
])
def test_cli_reports_errors_in_one_line_and_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    imu_bag(tmp_path / "half", 20)
    code = main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err and expected in err and err.count("\n") == 1


# ---------------------------------------------------------------------- bags from other recorders
# rosbag2 (Jazzy and later) records service introspection as topics '<service>/_service_event'
# whose stored definition is the raw .srv text (ros2/rosbag2#2365), which rosbags cannot parse.
# These bags stand in for rosbag2's test resources only_services.mcap and topics_and_services.mcap.
SERVICE_EVENT_DEFINITION = "=" * 80 + "\nSRV: example_interfaces/srv/AddTwoInts\nint64 a\nint64 b\n---\nint64 sum\n"


def services_bag(path: Path, storage: StoragePlugin, with_imu: bool, imu_count: int = 50) -> Path:
    store = messages.default_typestore()
    with Writer(path, version=8, storage_plugin=storage) as writer:
        for service in ("/add_two_ints", "/set_mode"):
            connection = writer.add_connection(
                f"{service}/_service_event", "example_interfaces/srv/AddTwoInts_Event",
                msgdef=SERVICE_EVENT_DEFINITION, rihs01="RIHS01_" + "1" * 64,
            )
            for k in range(3):
                writer.write(connection, T0 + k * 7 * MS, b"\x00\x01\x00\x00" + bytes(60))
        if with_imu:
            connection = writer.add_connection("/imu", "sensor_msgs/msg/Imu", typestore=store)
            for k in range(imu_count):
                raw = store.serialize_cdr(messages.imu_message(imu(T0 + k * 5 * MS), "imu", store), "sensor_msgs/msg/Imu")
                writer.write(connection, T0 + k * 5 * MS, bytes(raw))
    return path


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_bag_with_only_service_events_opens_and_says_what_is_missing(
    tmp_path: Path, storage: StoragePlugin, capsys: pytest.CaptureFixture[str]
) -> None:
    bag = services_bag(tmp_path / "only_services", storage, with_imu=False)
    assert main(["bag-info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "topic    /add_two_ints/_service_event  example_interfaces/srv/AddTwoInts_Event  3" in out
    assert "stream   imu: not found" in out
    with pytest.raises(BagError, match=r"has no imu topic 'imu'; it has /add_two_ints/_service_event \(example_interfaces"):
        BagReader(bag, required=IMU_ONLY).open()


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_bag_with_topics_and_service_events_reads_the_topics(tmp_path: Path, storage: StoragePlugin) -> None:
    bag = services_bag(tmp_path / "topics_and_services", storage, with_imu=True)
    got, warnings = read_all(bag)
    assert len(got) == 50 and not warnings
    assert [m.record.stamp_ns for m in got] == [T0 + k * 5 * MS for k in range(50)]


def test_replay_and_play_source_of_a_bag_with_service_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lnn_ros.bag.reader import BagWarnings, open_any_reader

    bag = services_bag(tmp_path / "topics_and_services", StoragePlugin.MCAP, with_imu=True)
    source, _ = open_any_reader(bag, BagWarnings())  # what `lnn-ros play` opens
    try:
        assert sorted(source.topics) == ["/add_two_ints/_service_event", "/imu", "/set_mode/_service_event"]
        assert sum(1 for _ in source.messages()) == 56
    finally:
        source.close()


# ---------------------------------------------------------------------- a required topic without messages
def empty_imu_bag(path: Path) -> Path:
    """/imu is recorded (a connection) but holds no message; another topic has some."""
    store = messages.default_typestore()
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection("/imu", "sensor_msgs/msg/Imu", typestore=store)
        connection = writer.add_connection("/cmd_vel", "geometry_msgs/msg/TwistStamped", typestore=store)
        for k in range(5):
            message = messages.twist_stamped_message(T0 + k * MS, [0.0] * 6, "base", store)
            raw = store.serialize_cdr(message, "geometry_msgs/msg/TwistStamped")
            writer.write(connection, T0 + k * MS, bytes(raw))
    return path


def test_required_topic_with_zero_messages_is_an_error_when_strict_and_a_loud_warning_otherwise(tmp_path: Path) -> None:
    bag = empty_imu_bag(tmp_path / "bag")
    with pytest.raises(BagError, match=r"EMPTY TOPIC: the imu topic '/imu' in bag .* has no messages .*Stopped there \(strict mode\)"):
        read_all(bag, strict=True)
    got, warnings = read_all(bag)
    assert got == [] and len(warnings) == 1 and warnings[0].startswith("1 x EMPTY TOPIC: the imu topic '/imu'")
    with BagReader(bag) as reader:  # an optional stream may be empty without a word
        assert list(reader.messages()) != [] and not reader.warnings


def test_replay_of_a_bag_whose_imu_topic_is_empty(tmp_path: Path, imu_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bag = empty_imu_bag(tmp_path / "bag")
    args = ["replay", str(bag), "--model", str(imu_bundle), "--no-plot", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "strict"), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "EMPTY TOPIC: the imu topic '/imu'" in err and "Traceback" not in err and err.count("\n") == 1
    assert main([*args, "--out", str(tmp_path / "lenient")]) == 0
    out = capsys.readouterr().out
    assert "warning  1 x EMPTY TOPIC: the imu topic '/imu'" in out and "The policy produced no command" in out
