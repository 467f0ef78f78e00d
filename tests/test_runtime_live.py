"""LiveLoop: the node's per-message and per-tick decisions, on a hand-driven clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bundle_factory import imu_bundle  # noqa: F401 (module-scoped fixture)

from lnn_ros.engine import Engine
from lnn_ros.runtime import ImuSample, LiveConfig, LiveLoop, PolicyRunner, WatchdogStatus
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


def fresh_commands(bundle: Path, samples: list[ImuSample]) -> list[np.ndarray]:
    runner = PolicyRunner(Engine(bundle))
    return [c.values for c in (runner.on_imu(s) for s in samples) if c is not None]


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
    assert values["hover_published"] == "2" and values["nonfinite_input"] == "1"
    assert float(values["message_age_ms.p50"]) > 0 and float(values["step_latency_ms.p50"]) > 0
    assert float(values["imu.rate_hz"]) == pytest.approx(31.0)  # all 31 IMU messages came within the last second
