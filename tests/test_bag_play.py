"""``lnn-ros play``: the scheduling with a fake clock and sink, and real playback to a real
subscriber process over DDS (bytes, order, remapping, topic selection, /clock)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fixture_paths import FIXTURE

from lnn_ros.bag.errors import BagError
from lnn_ros.bag.play import Item, PlayConfig, play_bag, play_messages
from lnn_ros.bag.reader import BagReader
from lnn_ros_tools.synthetic.flight import START_NS, write_flight

FIXTURES = Path(__file__).resolve().parent / "fixtures"

MS = 1_000_000


class FakeTime:
    """A monotonic clock that only ``sleep`` (and slow publishers) advance."""

    def __init__(self) -> None:
        self.now = 1_000 * MS

    def now_ns(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)


class FakeSink:
    def __init__(self, clock: FakeTime, publish_cost_ns: int = 0, refuse: str = "") -> None:
        self.clock_time = clock
        self.cost = publish_cost_ns
        self.refuse = refuse
        self.sent: list[tuple[str, int, bytes]] = []
        self.ticks: list[tuple[int, int]] = []

    def publisher(self, topic: str, msgtype: str) -> Callable[[bytes], None]:
        if msgtype == self.refuse:
            raise BagError(f"no Python class for {msgtype!r}")

        def publish(cdr: bytes) -> None:
            self.sent.append((topic, self.clock_time.now, cdr))
            self.clock_time.now += self.cost

        return publish

    def clock(self, stamp_ns: int) -> None:
        self.ticks.append((self.clock_time.now, stamp_ns))

    def wait_for_subscribers(self, timeout_s: float) -> None:
        pass


def items(log_ms: list[int], topic: str = "/imu", msgtype: str = "sensor_msgs/msg/Imu") -> list[Item]:
    return [Item(topic, msgtype, START_NS + t * MS, bytes([i])) for i, t in enumerate(log_ms)]


def test_messages_go_out_at_their_due_time_scaled_by_the_rate() -> None:
    clock = FakeTime()
    sink = FakeSink(clock)
    start = clock.now
    report = play_messages(items([0, 10, 30, 100]), sink, PlayConfig(rate=2.0), START_NS, now_ns=clock.now_ns, sleep=clock.sleep)
    assert [(t - start) // MS for _, t, _ in sink.sent] == [0, 5, 15, 50]
    assert report.sent == {"/imu": 4} and report.late == 0 and report.bag_s == pytest.approx(0.1)


def test_a_publisher_that_cannot_keep_up_is_reported_late() -> None:
    clock = FakeTime()
    sink = FakeSink(clock, publish_cost_ns=30 * MS)
    report = play_messages(items([0, 10, 20, 200]), sink, PlayConfig(late_threshold_s=0.015), START_NS,
                           now_ns=clock.now_ns, sleep=clock.sleep)
    # Each publish takes 30 ms: published at 0, 30, 60 (due 0, 10, 20: 20 and 40 ms late), then 200 on time.
    assert report.late == 2 and report.max_late_s == pytest.approx(0.040)
    assert report.total_sent == 4


def test_clock_ticks_carry_bag_time_and_remap_and_refused_types_are_reported() -> None:
    clock = FakeTime()
    sink = FakeSink(clock, refuse="my_msgs/msg/Foo")
    start = clock.now
    stream = items([0, 50]) + [Item("/custom", "my_msgs/msg/Foo", START_NS + 60 * MS, b"x")]
    stream.sort(key=lambda i: i.log_time_ns)
    config = PlayConfig(clock_hz=100.0, remap=(("imu", "/drone/imu"),))
    report = play_messages(stream, sink, config, START_NS, now_ns=clock.now_ns, sleep=clock.sleep)
    assert [t for _, t, _ in sink.sent] == [start, start + 50 * MS]
    assert report.sent == {"/drone/imu": 2}
    assert report.failed == {"/custom": "no Python class for 'my_msgs/msg/Foo'"}
    assert [((w - start) // MS, (b - START_NS) // MS) for w, b in sink.ticks] == [(k * 10, k * 10) for k in range(6)]


def test_play_bag_selects_topics_offset_and_duration_and_converts_ros1_to_the_same_cdr(tmp_path: Path) -> None:
    clock = FakeTime()
    config = PlayConfig(topics=("cmd_vel",), start_offset_s=0.5, duration_s=1.0, delay_s=0.0, rate=1000.0)
    sink = FakeSink(clock)
    report = play_bag(FIXTURE, config, sink)
    with BagReader(FIXTURE) as reader:
        expected = [m.record.stamp_ns for m in reader.messages() if m.stream.value == "command"]
    sent = [int.from_bytes(cdr[4:8], "little") * 10**9 + int.from_bytes(cdr[8:12], "little") for _, _, cdr in sink.sent]
    # cmd_vel is logged 2 ms after its stamp; the window is log time [0.5 s, 1.5 s) after the bag's start
    bag_start = START_NS + 1 * MS
    window = [s for s in expected if bag_start + 500 * MS <= s + 2 * MS < bag_start + 1500 * MS]
    assert sent == window and report.sent == {"/cmd_vel": 50}

    ros1 = write_flight(tmp_path / "flight.bag", seconds=0.1, storage="ros1")
    ros2 = write_flight(tmp_path / "flight2", seconds=0.1)
    ros1_sink, ros2_sink = FakeSink(FakeTime()), FakeSink(FakeTime())
    play_bag(ros1, PlayConfig(delay_s=0.0, rate=1000.0), ros1_sink)
    play_bag(ros2, PlayConfig(delay_s=0.0, rate=1000.0), ros2_sink)
    assert len(ros1_sink.sent) == 28
    assert [(t, c) for t, _, c in ros1_sink.sent] == [(t, c) for t, _, c in ros2_sink.sent]
    with pytest.raises(BagError, match=r"Bag has no topic\(s\) \['nope'\]"):
        play_bag(FIXTURE, PlayConfig(topics=("/nope",), delay_s=0.0), FakeSink(FakeTime()))


def test_play_publishes_the_bags_bytes_on_live_topics(tmp_path: Path, ros_env: dict[str, str]) -> None:
    """Player and recorder are separate processes talking over DDS (this test's domain id)."""
    recorder = subprocess.Popen(
        [sys.executable, str(FIXTURES / "record_topics.py"), str(tmp_path / "recorded"),
         "--topic", "/drone/imu", "sensor_msgs/msg/Imu", "--topic", "/camera/image_raw", "sensor_msgs/msg/Image",
         "--topic", "/cmd_vel", "geometry_msgs/msg/TwistStamped", "--topic", "/clock", "rosgraph_msgs/msg/Clock",
         "--count", "100000", "--timeout", "8"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert recorder.stdout is not None and recorder.stdout.readline().strip() == "ready"
        player = subprocess.run(
            [sys.executable, "-m", "lnn_ros.cli", "play", str(FIXTURE), "--rate", "4", "--clock", "50",
             "--topics", "imu", "/camera/image_raw", "--remap", "/imu:=/drone/imu", "--wait-for-subscribers", "10"],
            env=ros_env, capture_output=True, text=True, timeout=60,
        )
        assert player.returncode == 0, player.stdout + player.stderr
        assert "sent 460 messages" in player.stdout and "/drone/imu: 400" in player.stdout
        recorder_out, _ = recorder.communicate(timeout=30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    counts = json.loads(recorder_out.strip().splitlines()[-1])
    assert counts.get("/drone/imu") == 400 and counts.get("/camera/image_raw") == 60 and "/cmd_vel" not in counts
    assert counts.get("/clock", 0) > 5

    def raw_by_topic(path: Path) -> dict[str, list[bytes]]:
        from rosbags.highlevel import AnyReader

        out: dict[str, list[bytes]] = {}
        with AnyReader([path]) as reader:
            for connection, _, raw in reader.messages():
                out.setdefault(connection.topic, []).append(bytes(raw))
        return out

    original, recorded = raw_by_topic(FIXTURE), raw_by_topic(tmp_path / "recorded")
    assert recorded["/drone/imu"] == original["/imu"]
    assert recorded["/camera/image_raw"] == original["/camera/image_raw"]
    clock_ns = [int.from_bytes(r[4:8], "little") * 10**9 + int.from_bytes(r[8:12], "little") for r in recorded["/clock"]]
    assert np.all(np.diff(clock_ns) > 0) and clock_ns[0] >= START_NS and clock_ns[-1] <= START_NS + 2 * 10**9
