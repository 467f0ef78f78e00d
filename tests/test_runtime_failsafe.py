"""Failsafe semantics without ROS: the stamp gate, the command-silence bound, hover then stop, one time base.

Everything runs on a hand-driven clock, so every bound here is exact (no wall-clock timing).
The same cases run over DDS against the real node in tests/test_node_failsafe.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bundle_factory import CAMERA, camera_bundle, imu_bundle  # noqa: F401 (module-scoped fixtures)

from lnn_ros.engine import Engine, Outcome
from lnn_ros.node_spec.errors import NodeConfigError
from lnn_ros.node_spec.params import NodeParams
from lnn_ros.runtime import (
    Command,
    Counters,
    FailsafeAction,
    FailsafeOutput,
    ImageFrame,
    ImuSample,
    LiveConfig,
    LiveLoop,
    PolicyRunner,
    StampGate,
    StampLimits,
    Stream,
    WatchdogStatus,
)
from lnn_ros.runtime.report import Level

MS = 1_000_000
NS = 1_000 * MS
NOW0 = 1_700_000_000 * NS  # a wall-clock-like node clock; sensors stamp on the same time base


class Clock:
    def __init__(self) -> None:
        self.now_ns = NOW0

    def __call__(self) -> int:
        return self.now_ns


def imu(stamp_ns: int, rng: np.random.Generator) -> ImuSample:
    return ImuSample(stamp_ns, rng.normal(size=3), rng.normal((0, 0, 9.81), 1.0), np.array([0.0, 0.0, 0.0, 1.0]))


def image(stamp_ns: int, rng: np.random.Generator) -> ImageFrame:
    pixels = rng.integers(0, 256, CAMERA.height * CAMERA.width * 3, dtype=np.uint8)
    return ImageFrame(stamp_ns, CAMERA.height, CAMERA.width, "rgb8", CAMERA.width * 3, pixels.tobytes())


def gate(**limits: float) -> tuple[StampGate, Counters]:
    counters = Counters()
    return StampGate(Stream.IMU, StampLimits(**limits), counters), counters


# ---------------------------------------------------------------------- the stamp gate
def test_old_and_future_stamps_are_rejected_and_counted_and_zero_turns_a_check_off() -> None:
    stamp_gate, counters = gate(max_age_s=0.5, max_future_s=0.1, tolerance_s=0.0)  # node-clock checks only
    assert stamp_gate.check(NOW0 - 10 * NS, NOW0) is Outcome.TOO_OLD
    assert stamp_gate.check(NOW0 - 501 * MS, NOW0) is Outcome.TOO_OLD
    assert stamp_gate.check(NOW0 - 499 * MS, NOW0) is None
    assert stamp_gate.check(NOW0 + 101 * MS, NOW0 + 1 * MS) is None  # 100 ms ahead: inside the limit
    assert stamp_gate.check(NOW0 + 1 * NS, NOW0 + 2 * MS) is Outcome.FROM_FUTURE
    assert counters.as_dict() == {"imu_too_old": 2, "imu_from_future": 1, "imu_mixed_time_base": 0, "imu_missed": 0}
    unchecked, counters = gate(max_age_s=0.0, max_future_s=0.0, tolerance_s=0.0)
    assert unchecked.check(NOW0 - 10 * NS, NOW0) is None and unchecked.check(NOW0 + 10 * NS, NOW0 + MS) is None
    assert not any(counters.values())
    with pytest.raises(ValueError, match="max_age_s"):
        StampLimits(max_age_s=-1.0)


@pytest.mark.parametrize("node_clock_checks", [True, False], ids=["node-clock", "own-time-base"])
def test_one_future_stamp_does_not_poison_the_stream(node_clock_checks: bool) -> None:
    """The issue's case: one IMU message stamped up to max_gap_s (1 s) ahead; repeated every 0.45 s too.

    Without node-clock checks (sensors on their own time base, stamps 1000 s) the stream's own
    time base catches it.
    """
    limits = {} if node_clock_checks else {"max_age_s": 0.0, "max_future_s": 0.0}
    stamp_gate, counters = gate(**limits)
    base = NOW0 if node_clock_checks else 1_000 * NS
    accepted = rejected = 0
    for k in range(400):  # 2 s at 200 Hz, 1 ms transport latency
        now = NOW0 + k * 5 * MS + 1 * MS
        stamp = base + k * 5 * MS
        if k % 90 == 45:  # every 0.45 s one message stamped 0.9 s ahead
            assert stamp_gate.check(stamp + 900 * MS, now) is Outcome.FROM_FUTURE
            rejected += 1
        accepted += stamp_gate.check(stamp, now) is None
    assert accepted == 400 and rejected == 4
    assert counters[Stream.IMU, Outcome.FROM_FUTURE] == sum(counters.values()) == 4 and not stamp_gate.mixed


def test_two_time_bases_on_one_topic_are_detected_then_cleared() -> None:
    stamp_gate, counters = gate(max_age_s=0.0, max_future_s=0.0)
    rng = np.random.default_rng(0)
    verdicts = []
    for k in range(200):  # two publishers at 200 Hz each, 0.3 s apart, arriving in random order
        now = NOW0 + k * 2_500_000
        stamp = now - 1 * MS - (300 * MS if rng.random() < 0.5 else 0)
        verdicts.append(stamp_gate.check(stamp, now))
    assert stamp_gate.mixed and stamp_gate.mixed_entries == 1
    first = verdicts.index(Outcome.MIXED_TIME_BASE)
    assert first < 40 and set(verdicts[first:]) == {Outcome.MIXED_TIME_BASE}  # detected within 0.1 s, then all dropped
    assert counters[Stream.IMU, Outcome.MIXED_TIME_BASE] == 200 - first
    # The second publisher goes away: after one clean window the stream is accepted again.
    clean = [stamp_gate.check(NOW0 + NS + k * 5 * MS - MS, NOW0 + NS + k * 5 * MS) for k in range(300)]
    assert not stamp_gate.mixed and clean[-100:] == [None] * 100 and Outcome.MIXED_TIME_BASE in clean


def test_a_stall_burst_is_neither_mixed_nor_rejected() -> None:
    """An executor stall delivers a burst late (offsets jump up, then fall): real data, in order."""
    stamp_gate, counters = gate()
    now = NOW0
    for k in range(100):
        now = NOW0 + k * 5 * MS + MS
        assert stamp_gate.check(NOW0 + k * 5 * MS, now) is None
    stalled_until = now + 300 * MS  # 60 messages queued, delivered together
    for k in range(100, 160):
        assert stamp_gate.check(NOW0 + k * 5 * MS, stalled_until + (k - 100) * 10_000) is None
    for k in range(160, 300):
        assert stamp_gate.check(NOW0 + k * 5 * MS, NOW0 + k * 5 * MS + MS) is None
    assert not any(counters.values()) and not stamp_gate.mixed


def test_a_stepped_sensor_clock_is_taken_after_a_few_messages() -> None:
    stamp_gate, counters = gate(max_age_s=0.0, max_future_s=0.0)
    for k in range(50):
        assert stamp_gate.check(1_000 * NS + k * 5 * MS, NOW0 + k * 5 * MS) is None
    stepped = [stamp_gate.check(5_000 * NS + k * 5 * MS, NOW0 + (50 + k) * 5 * MS) for k in range(20)]
    assert stepped[:4] == [Outcome.FROM_FUTURE] * 4 and stepped[4:] == [None] * 16 and stamp_gate.rebases == 1
    assert counters[Stream.IMU, Outcome.FROM_FUTURE] == sum(counters.values()) == 4


@pytest.mark.parametrize("rate_hz", [100.0, 0.0], ids=["given", "learnt"])
def test_missed_messages_are_estimated_from_stamp_gaps(rate_hz: float) -> None:
    stamp_gate, counters = gate(expected_rate_hz=rate_hz)
    rng = np.random.default_rng(1)
    lost = 0
    for k in range(1000):
        stamp = NOW0 + k * 10 * MS + int(rng.integers(-MS, MS))  # 10 % jitter
        if k > 100 and k % 10 == 0:
            lost += 1
            continue
        assert stamp_gate.check(stamp, stamp + 2 * MS) is None
    assert counters[Stream.IMU, Outcome.MISSED] == lost == 89
    assert stamp_gate.expected_rate_hz == pytest.approx(100.0, rel=0.05)
    # A gap longer than max_gap_s is an outage (the watchdog's business), not 1000 losses.
    assert stamp_gate.check(NOW0 + 20 * NS, NOW0 + 20 * NS) is None
    assert counters[Stream.IMU, Outcome.MISSED] == 89


# ---------------------------------------------------------------------- the live loop
def make_loop(bundle: Path, clock: Clock, **config: object) -> LiveLoop:
    settings: dict[str, object] = {"stale_timeout_s": 0.5, "tick_period_s": 0.05}
    settings.update(config)
    return LiveLoop(PolicyRunner(Engine(bundle)), LiveConfig(**settings), clock)  # type: ignore[arg-type]


def fly(loop: LiveLoop, clock: Clock, rng: np.random.Generator, seconds: float) -> list[Command]:
    """200 Hz IMU stamped 1 ms before arrival, a tick every 50 ms; every command returned."""
    out = []
    for k in range(round(seconds * 200)):
        clock.now_ns += 5 * MS
        command = loop.on_imu(imu(clock.now_ns - MS, rng))
        out += [] if command is None else [command]
        if k % 10 == 9:
            tick = loop.tick()
            out += [] if tick is None else [tick]
    return out


def silence(loop: LiveLoop, clock: Clock, seconds: float) -> list[tuple[int, Command | None]]:
    """No input; a tick every 50 ms; (clock, what the tick returned)."""
    out = []
    for _ in range(round(seconds / 0.05)):
        clock.now_ns += 50 * MS
        out.append((clock.now_ns, loop.tick()))
    return out


@pytest.mark.parametrize("action", list(FailsafeAction))
def test_imu_stall_timeline_hold_then_hover_then_stop(imu_bundle: Path, action: FailsafeAction) -> None:
    """IMU stalls: cmd_vel is never silent > max_command_gap_s; hold until the stale timeout, hover, then stop."""
    clock = Clock()
    loop = make_loop(imu_bundle, clock, failsafe_hover_s=1.0, failsafe_action=action)
    rng = np.random.default_rng(2)
    flown = fly(loop, clock, rng, 1.0)
    assert loop.output is FailsafeOutput.NONE and loop.hold_commands == 0  # 200 Hz: nothing to fill
    last = flown[-1]
    stall_ns = clock.now_ns
    ticks = silence(loop, clock, 4.0)
    sent = [(t, c) for t, c in ticks if c is not None]
    holds = [(t, c) for t, c in sent if t - stall_ns <= 500 * MS]
    hovers = [(t, c) for t, c in sent if t - stall_ns > 500 * MS]
    # Silence bound: from the last policy command on, a command at least every 0.15 s.
    times = [stall_ns] + [t for t, _ in sent]
    assert max(np.diff(times[: len(holds) + 2])) <= 150 * MS
    assert len(holds) == 5 and all(c.twist == last.twist for _, c in holds)  # the last command, held
    assert all(not any(c.twist) for _, c in hovers)  # after the stale timeout: hover
    # One time base: tick stamps continue the sensor stamps at the clock's pace.
    assert [c.stamp_ns for _, c in sent] == [last.stamp_ns + (t - stall_ns) for t, _ in sent]
    if action is FailsafeAction.STOP:
        assert all(t - stall_ns <= 1_550 * MS for t, _ in hovers)  # 0.5 s stale + 1.0 s hover (+ one tick)
        assert ticks[-1][1] is None and loop.output is FailsafeOutput.STOPPED and loop.failsafe_stops == 1
        report = loop.report()
        assert report.level is Level.ERROR and "stopped publishing" in report.message
        assert dict(report.values)["failsafe_output"] == "stopped"
    else:
        assert hovers[-1][0] == clock.now_ns and loop.output is FailsafeOutput.HOVER and loop.failsafe_stops == 0
    values = dict(loop.report().values)
    assert float(values["command_gap_ms.max"]) <= 150.0 and values["hold_published"] == "5"
    # The IMU comes back: the state is reset and flying resumes (publishing again after a stop).
    back = fly(loop, clock, rng, 0.5)
    assert loop.output is FailsafeOutput.NONE and loop.watchdog.recoveries == 1 and len(back) >= 95


def test_stop_applies_while_waiting_for_inputs_too(imu_bundle: Path) -> None:
    clock = Clock()
    loop = make_loop(imu_bundle, clock, failsafe_hover_s=1.0)
    ticks = silence(loop, clock, 3.0)
    assert [c is not None for _, c in ticks] == [True] * 20 + [False] * 40
    assert loop.report().level is Level.WARN and loop.output is FailsafeOutput.STOPPED


def test_slow_driver_is_filled_by_holds(imu_bundle: Path) -> None:
    """An IMU at 5 Hz: every 200 ms silence is filled by holds of the last command."""
    clock = Clock()
    loop = make_loop(imu_bundle, clock, stale_timeout_s=1.0)
    rng = np.random.default_rng(3)
    sent: list[tuple[int, Command]] = []
    for k in range(40):
        clock.now_ns += 25 * MS
        if k % 8 == 0:
            command = loop.on_imu(imu(clock.now_ns - MS, rng))
            sent += [] if command is None else [(clock.now_ns, command)]
        if k % 2 == 1:
            tick = loop.tick()
            sent += [] if tick is None else [(clock.now_ns, tick)]
    times = [t for t, _ in sent]
    assert loop.hold_commands > 0 and max(np.diff(times)) <= 150 * MS
    stamps = [c.stamp_ns for _, c in sent]
    assert stamps == sorted(stamps)  # one time base, in order


@pytest.mark.parametrize("node_clock_checks", [True, False], ids=["node-clock", "own-time-base"])
def test_future_stamps_never_stop_the_commands(imu_bundle: Path, node_clock_checks: bool) -> None:
    """One IMU message 1 s ahead, then one 0.9 s ahead every 0.45 s: every real message still flies."""
    clock = Clock()
    checks = {} if node_clock_checks else {"max_age_s": 0.0, "max_future_s": 0.0}
    loop = make_loop(imu_bundle, clock, **checks)
    rng = np.random.default_rng(4)
    offset = 0 if node_clock_checks else NOW0 - 1_000 * NS  # sensors on their own time base
    commands = 0
    for k in range(600):
        clock.now_ns += 5 * MS
        stamp = clock.now_ns - MS - offset
        if k == 100:
            assert loop.on_imu(imu(stamp + 1 * NS, rng)) is None
        elif k > 200 and k % 90 == 0:
            assert loop.on_imu(imu(stamp + 900 * MS, rng)) is None
        commands += loop.on_imu(imu(stamp, rng)) is not None
        if k % 10 == 9:
            assert loop.tick() is None  # never a hold, never a hover
    assert commands == 599 and loop.watchdog.status is WatchdogStatus.OK
    values = dict(loop.report().values)
    assert values["imu_from_future"] == "5" and values["imu_out_of_order"] == "0" and values["state"] == "ok"


def test_old_imu_and_old_camera_frames_are_not_flown(camera_bundle: Path) -> None:
    clock = Clock()
    loop = make_loop(camera_bundle, clock)
    rng = np.random.default_rng(5)
    for k in range(50):  # frames 10 s old: dropped, so the IMU waits for a frame and nothing flies
        clock.now_ns += 5 * MS
        if k % 5 == 0:
            assert loop.on_image(image(clock.now_ns - 10 * NS, rng)) is None
        assert loop.on_imu(imu(clock.now_ns - MS, rng)) is None
    counters = loop.runner.counters_dict()
    assert counters["camera_too_old"] == 10 and counters["camera_waiting"] == 50 and counters["camera_encoded"] == 0
    for k in range(120):  # fresh frames, IMU 10 s old: the IMU is dropped, no sign of life
        clock.now_ns += 5 * MS
        if k % 5 == 0:
            loop.on_image(image(clock.now_ns - 2 * MS, rng))
        assert loop.on_imu(imu(clock.now_ns - 10 * NS, rng)) is None
    assert loop.tick() is not None  # hover
    values = dict(loop.report().values)
    assert values["imu_too_old"] == "120" and values["commands_published"] == "0"
    assert (values["state"], values["stale_streams"]) == ("stale", "imu")


def test_two_imu_publishers_on_different_time_bases_fail_safe_with_an_error(imu_bundle: Path) -> None:
    clock = Clock()
    loop = make_loop(imu_bundle, clock)
    rng = np.random.default_rng(6)
    fly(loop, clock, rng, 0.5)
    sent = []
    for k in range(400):  # a second IMU driver, 0.3 s behind, in random order
        clock.now_ns += 2_500_000
        behind = 300 * MS if rng.random() < 0.5 else 0
        command = loop.on_imu(imu(clock.now_ns - MS - behind, rng))
        sent += [] if command is None else [command]
        if k % 20 == 19:
            tick = loop.tick()
            sent += [] if tick is None else [tick]
    report = loop.report()
    values = dict(report.values)
    assert report.level is Level.ERROR and "several time bases" in report.message
    assert values["mixed_time_base"] == "imu" and int(values["imu_mixed_time_base"]) > 350
    assert values["state"] == "stale" and not any(sent[-1].twist)  # hovering


def test_a_command_gap_shorter_than_the_tick_is_refused() -> None:
    with pytest.raises(ValueError, match="max_command_gap_s"):
        LiveConfig(tick_period_s=0.05, max_command_gap_s=0.04)
    params = NodeParams.from_values({"model_path": "/b", "failsafe_rate_hz": 5.0, "max_command_gap_s": 0.15})
    with pytest.raises(NodeConfigError, match="failsafe_rate_hz"):
        params.live_config()
    defaults = NodeParams.from_values({"model_path": "/b"}).live_config()
    assert (defaults.max_command_gap_s, defaults.failsafe_action, defaults.failsafe_hover_s) == (0.15, FailsafeAction.STOP, 2.0)
    assert defaults.max_command_gap_s < 0.5  # well under PX4's offboard-loss timeout (COM_OF_LOSS_T >= 0.5 s)
