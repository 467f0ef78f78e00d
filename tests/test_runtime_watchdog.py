"""The watchdog's states and transitions, on a hand-driven clock."""

from __future__ import annotations

import pytest

from lnn_ros.runtime import Watchdog, WatchdogStatus

MS = 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = 5_000 * MS

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, ms: float) -> None:
        self.now_ns += int(ms * MS)


def test_waits_for_every_stream_then_flies() -> None:
    clock = FakeClock()
    dog = Watchdog(["imu", "camera"], 0.2, clock)
    assert dog.check() is WatchdogStatus.WAITING and dog.stale_streams() == ["imu", "camera"]
    assert dog.feed("imu") is False
    assert dog.check() is WatchdogStatus.WAITING and dog.stale_streams() == ["camera"]
    clock.advance(150)
    assert dog.feed("camera") is False  # start-up is not a recovery: nothing to reset
    assert dog.check() is WatchdogStatus.OK and (dog.failsafe_entries, dog.recoveries) == (0, 0)
    assert dog.silence_s("imu") == pytest.approx(0.15) and dog.silence_s("camera") == 0.0


def test_silence_longer_than_the_timeout_is_stale_until_every_stream_is_back() -> None:
    clock = FakeClock()
    dog = Watchdog(["imu", "camera"], 0.2, clock)
    dog.feed("imu")
    dog.feed("camera")
    for k in range(1, 11):  # the IMU keeps coming, the camera stops
        clock.advance(30)
        dog.feed("imu")
        assert dog.check() is (WatchdogStatus.OK if 30 * k <= 200 else WatchdogStatus.STALE)
    assert dog.status is WatchdogStatus.STALE and dog.stale_streams() == ["camera"]
    assert dog.failsafe_entries == 1
    assert dog.check() is WatchdogStatus.STALE and dog.failsafe_entries == 1  # counted once
    assert dog.feed("camera") is True  # this message ends the failsafe: reset before flying
    assert dog.status is WatchdogStatus.OK and dog.recoveries == 1
    assert dog.feed("imu") is False


def test_exactly_the_timeout_is_still_fresh() -> None:
    clock = FakeClock()
    dog = Watchdog(["imu"], 0.1, clock)
    dog.feed("imu")
    clock.advance(100)
    assert dog.check() is WatchdogStatus.OK
    clock.advance(0.001)
    assert dog.check() is WatchdogStatus.STALE


def test_recovery_needs_all_streams_fresh() -> None:
    clock = FakeClock()
    dog = Watchdog(["imu", "camera"], 0.1, clock)
    dog.feed("imu")
    dog.feed("camera")
    clock.advance(500)
    assert dog.check() is WatchdogStatus.STALE and dog.stale_streams() == ["imu", "camera"]
    assert dog.feed("imu") is False and dog.status is WatchdogStatus.STALE
    clock.advance(50)
    assert dog.feed("camera") is True


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="at least one stream"):
        Watchdog([], 0.1, FakeClock())
    with pytest.raises(ValueError, match="got 0.0"):
        Watchdog(["imu"], 0.0, FakeClock())
    with pytest.raises(ValueError, match="not 'camera'"):
        Watchdog(["imu"], 0.1, FakeClock()).feed("camera")


def test_a_clock_stepped_back_beyond_the_timeout_makes_silent_streams_stale() -> None:
    clock = FakeClock()
    dog = Watchdog(["imu", "camera"], 0.2, clock)
    dog.feed("imu")
    dog.feed("camera")
    clock.advance(-150)  # a step back within the timeout: still fresh
    assert dog.feed("imu") is False and dog.check() is WatchdogStatus.OK
    clock.advance(-60_000)  # the node clock stepped back a minute; the camera is silent since
    dog.feed("imu")
    assert dog.check() is WatchdogStatus.STALE and dog.stale_streams() == ["camera"]
    assert dog.silence_s("camera") == pytest.approx(-60.15)
    clock.advance(10)
    assert dog.feed("camera") is True and dog.status is WatchdogStatus.OK  # its next message recovers


def test_the_output_stream_is_required_once_flying_and_names_the_cause() -> None:
    clock = FakeClock()
    dog = Watchdog(["imu"], 0.2, clock, output="command")
    assert dog.stale_streams() == ["imu"]
    dog.feed("imu")  # no command yet: leaving WAITING needs the inputs only
    assert dog.check() is WatchdogStatus.OK
    for _ in range(6):  # inputs keep coming, no command: the entry into OK started its timer
        clock.advance(30)
        dog.feed("imu")
        dog.check()
    assert dog.status is WatchdogStatus.OK and dog.stale_streams() == []
    clock.advance(30)  # 210 ms after entering OK
    dog.feed("imu")
    assert dog.check() is WatchdogStatus.STALE and dog.stale_streams() == ["command"]
    clock.advance(30)
    assert dog.feed("imu") is False and dog.status is WatchdogStatus.STALE  # fresh inputs alone do not recover
    assert dog.feed("command") is True and dog.status is WatchdogStatus.OK and dog.recoveries == 1
    clock.advance(150)
    dog.feed("command")
    clock.advance(100)  # the IMU is silent 250 ms, the command 100 ms: the cause is the input
    assert dog.check() is WatchdogStatus.STALE and dog.stale_streams() == ["imu"]
    with pytest.raises(ValueError, match="'imu' is also an input"):
        Watchdog(["imu"], 0.2, clock, output="imu")
