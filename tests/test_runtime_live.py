"""LiveLoop: the node's per-message and per-tick decisions, on a hand-driven clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bundle_factory import CAMERA, camera_bundle, imu_bundle  # noqa: F401 (module-scoped fixtures)

from lnn_ros.engine import Engine, Outcome
from lnn_ros.runtime import ImageFrame, ImuSample, LiveConfig, LiveLoop, PolicyRunner, WatchdogStatus
from lnn_ros.runtime.report import Level

MS = 1_000_000
T0 = 1_000 * 1_000 * MS


class Clock:
    def __init__(self) -> None:
        self.now_ns = 7 * T0

    def __call__(self) -> int:
        return self.now_ns


def imu(stamp_ns: int, rng: np.random.Generator) -> ImuSample:
    return ImuSample(stamp_ns, rng.normal(size=3), rng.normal((0, 0, 9.81), 1.0), np.array([0.0, 0.0, 0.0, 1.0]))


def image(stamp_ns: int, rng: np.random.Generator) -> ImageFrame:
    pixels = rng.integers(0, 256, CAMERA.height * CAMERA.width * 3, dtype=np.uint8)
    return ImageFrame(stamp_ns, CAMERA.height, CAMERA.width, "rgb8", CAMERA.width * 3, pixels.tobytes())


def fresh_commands(bundle: Path, samples: list[ImuSample | ImageFrame]) -> list[np.ndarray]:
    runner = PolicyRunner(Engine(bundle))
    commands = (runner.on_imu(s) if isinstance(s, ImuSample) else runner.on_image(s) for s in samples)
    return [c.values for c in commands if c is not None]


def play(loop: LiveLoop, clock: Clock, samples: list[ImuSample], *, ticks: bool = False) -> list[np.ndarray]:
    """Hand each sample to ``loop`` 10 ms of clock after the previous one; the values of the commands it returns.

    With ``ticks`` a failsafe tick follows each message, and it must not hover.
    """
    published = []
    for sample in samples:
        clock.now_ns += 10 * MS
        command = loop.on_imu(sample)
        if command is not None:
            published.append(command.values)
        if ticks:
            assert loop.tick() is None
    return published


def test_hover_until_inputs_then_fly_then_hover_then_reset(imu_bundle: Path) -> None:
    clock = Clock()
    loop = LiveLoop(PolicyRunner(Engine(imu_bundle)), LiveConfig(stale_timeout_s=0.1, rate_window_s=1.0), clock)
    rng = np.random.default_rng(0)

    hover = loop.tick()  # nothing received yet: hover, stamped with the clock
    assert hover is not None and hover.stamp_ns == clock.now_ns and hover.twist == (0.0,) * 6
    assert loop.report().level is Level.WARN

    first = [imu(T0 + k * 10 * MS, rng) for k in range(20)]
    published = play(loop, clock, first, ticks=True)
    np.testing.assert_array_equal(np.array(published), np.array(fresh_commands(imu_bundle, first)))

    clock.now_ns += 150 * MS  # silence longer than the timeout
    assert loop.tick() is not None and loop.watchdog.status is WatchdogStatus.STALE
    nan = imu(first[-1].stamp_ns + 10 * MS, rng)._replace(angular_velocity=np.array([np.nan, 0.0, 0.0]))
    assert loop.on_imu(nan) is None  # invalid data is no sign of life
    assert loop.watchdog.status is WatchdogStatus.STALE

    resumed = [imu(first[-1].stamp_ns + k * 10 * MS, rng) for k in range(2, 12)]
    published = play(loop, clock, resumed)
    # The first resumed message ends the stale period: its command is withheld and the state
    # reset, so the rest equals a fresh policy started at the second one.
    np.testing.assert_array_equal(np.array(published), np.array(fresh_commands(imu_bundle, resumed[1:])))
    assert loop.commands_withheld == 1 and loop.watchdog.recoveries == 1

    values = dict(loop.report().values)
    assert values["state"] == "ok" and values["recoveries"] == "1" and values["explicit_resets"] == "1"
    assert values["commands_published"] == str(loop.commands_published) == str(19 + 8)
    assert values["hover_published"] == "2" and values["imu_nonfinite_input"] == "1"
    assert float(values["message_age_ms.p50"]) > 0 and float(values["step_latency_ms.p50"]) > 0
    assert float(values["imu.rate_hz"]) == pytest.approx(31.0)  # all 31 IMU messages came within the last second


def test_inputs_that_produce_no_command_end_in_failsafe(imu_bundle: Path) -> None:
    """A driver whose every stamp is a gap (a stamp in seconds = sequence number) keeps the IMU alive but never flies."""
    clock = Clock()
    loop = LiveLoop(PolicyRunner(Engine(imu_bundle)), LiveConfig(stale_timeout_s=0.1), clock)
    rng = np.random.default_rng(1)
    first = [imu(T0 + k * 10 * MS, rng) for k in range(20)]
    play(loop, clock, first, ticks=True)
    gaps = [imu(first[-1].stamp_ns + k * 2_000 * MS, rng) for k in range(1, 31)]  # max_gap_s is 1 s
    hover = []
    for sample in gaps:
        clock.now_ns += 10 * MS
        assert loop.on_imu(sample) is None and loop.runner.last_outcome is Outcome.GAP_RESET
        hover.append(loop.tick())
    assert all(h is None for h in hover[:10]) and all(h is not None for h in hover[10:])  # hover after 100 ms
    assert loop.watchdog.status is WatchdogStatus.STALE and loop.watchdog.stale_streams() == ["command"]
    report = loop.report()
    assert report.level is Level.ERROR and "no command" in report.message
    assert dict(report.values)["stale_streams"] == "command" and dict(report.values)["imu_gap_reset"] == "30"

    # Contiguous stamps again: the first command ends the failsafe (withheld, state reset).
    resumed = [imu(gaps[-1].stamp_ns + k * 10 * MS, rng) for k in range(1, 12)]
    published = play(loop, clock, resumed)
    np.testing.assert_array_equal(np.array(published), np.array(fresh_commands(imu_bundle, resumed[1:])))
    assert loop.watchdog.status is WatchdogStatus.OK and loop.watchdog.recoveries == 1


def test_a_graph_returning_nan_is_no_sign_of_life(imu_bundle: Path) -> None:
    clock = Clock()
    runner = PolicyRunner(Engine(imu_bundle))
    loop = LiveLoop(runner, LiveConfig(stale_timeout_s=0.1), clock)
    rng = np.random.default_rng(2)
    play(loop, clock, [imu(T0 + k * 10 * MS, rng) for k in range(5)], ticks=True)
    poisoned = np.full_like(runner.engine.hidden, np.nan)
    for k in range(5, 30):  # a state that only yields NaN: every step is a non-finite output
        runner.engine.set_hidden(poisoned)
        clock.now_ns += 10 * MS
        assert loop.on_imu(imu(T0 + k * 10 * MS, rng)) is None
        assert runner.last_outcome is Outcome.NONFINITE_OUTPUT
        loop.tick()
    assert runner.counters_dict()["imu_nonfinite_output"] == 25
    assert loop.watchdog.status is WatchdogStatus.STALE and loop.watchdog.stale_streams() == ["command"]
    assert loop.tick() is not None


def test_flying_after_waiting_starts_from_a_reset_state(camera_bundle: Path) -> None:
    """The runner steps on a held frame while the camera is silent (WAITING); flying must not inherit that state."""
    clock = Clock()
    loop = LiveLoop(PolicyRunner(Engine(camera_bundle)), LiveConfig(stale_timeout_s=0.1), clock)
    rng = np.random.default_rng(3)
    old_frame = image(T0, rng)
    clock.now_ns += 10 * MS
    assert loop.on_image(old_frame) is None
    clock.now_ns += 500 * MS  # the camera goes silent; the IMU starts half a second later
    steps = [imu(T0 + 500 * MS + k * 10 * MS, rng) for k in range(30)]
    assert play(loop, clock, steps) == []
    assert loop.watchdog.status is WatchdogStatus.WAITING and loop.runner.counters_dict()["imu_stepped"] == 29
    frame = image(steps[-1].stamp_ns + 2 * MS, rng)
    clock.now_ns += 5 * MS
    assert loop.on_image(frame) is None and loop.watchdog.status is WatchdogStatus.OK
    assert loop.runner.engine.counters.explicit_resets == 1 and loop.watchdog.recoveries == 0
    after: list[ImuSample | ImageFrame] = []
    for k in range(1, 12):
        stamp = steps[-1].stamp_ns + k * 10 * MS
        after += [imu(stamp, rng), *([image(stamp + 1 * MS, rng)] if k % 5 == 0 else [])]
    published = []
    for message in after:
        clock.now_ns += 5 * MS
        command = loop.on_imu(message) if isinstance(message, ImuSample) else loop.on_image(message)
        published += [] if command is None else [command.values]
        assert loop.tick() is None
    np.testing.assert_array_equal(np.array(published), np.array(fresh_commands(camera_bundle, [frame, *after])))
    assert len(published) == 10


def test_messages_before_the_clock_starts_do_not_feed_the_watchdog(imu_bundle: Path) -> None:
    """use_sim_time before the first /clock: the node clock reads 0."""
    clock = Clock()
    clock.now_ns = 0
    loop = LiveLoop(PolicyRunner(Engine(imu_bundle)), LiveConfig(stale_timeout_s=0.1), clock)
    rng = np.random.default_rng(4)
    early = [imu(T0 + k * 10 * MS, rng) for k in range(10)]
    for sample in early:
        assert loop.on_imu(sample) is None
    assert loop.watchdog.status is WatchdogStatus.WAITING and loop.commands_withheld == 9
    assert loop.rates["imu"].count == 0
    hover = loop.tick()
    assert hover is not None and hover.stamp_ns == 0

    clock.now_ns = 7 * T0  # the first /clock
    later = [imu(early[-1].stamp_ns + k * 10 * MS, rng) for k in range(1, 21)]
    published = play(loop, clock, later, ticks=True)  # no spurious failsafe: every tick stays quiet
    assert loop.watchdog.failsafe_entries == 0 and loop.watchdog.status is WatchdogStatus.OK
    # The state stepped at clock 0 is reset when flying starts.
    np.testing.assert_array_equal(np.array(published), np.array(fresh_commands(imu_bundle, later[1:])))
    assert loop.runner.engine.counters.explicit_resets == 1 and loop.rates["imu"].count == 20


def test_a_node_clock_stepped_back_does_not_hide_a_dead_camera(camera_bundle: Path) -> None:
    clock = Clock()
    loop = LiveLoop(PolicyRunner(Engine(camera_bundle)), LiveConfig(stale_timeout_s=0.1), clock)
    rng = np.random.default_rng(5)
    messages: list[ImuSample | ImageFrame] = []
    for k in range(30):
        if k % 5 == 0:
            messages.append(image(T0 + k * 10 * MS - 1 * MS, rng))
        messages.append(imu(T0 + k * 10 * MS, rng))
    for message in messages:
        clock.now_ns += 5 * MS
        command = loop.on_imu(message) if isinstance(message, ImuSample) else loop.on_image(message)
    assert command is not None and loop.watchdog.status is WatchdogStatus.OK
    clock.now_ns -= 60 * 1_000 * MS  # the node clock steps back a minute; the camera is dead from now on
    published = play(loop, clock, [imu(T0 + k * 10 * MS, rng) for k in range(30, 60)])
    assert published == [] and loop.watchdog.stale_streams() == ["camera"]
    assert loop.tick() is not None and loop.watchdog.status is WatchdogStatus.STALE
    values = dict(loop.report().values)
    assert float(values["camera.rate_hz"]) == 0.0 and float(values["imu.rate_hz"]) > 0.0
