"""Sensor timing (rates, jitter, drops, ordering) and IMU readings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lnn_ros.runtime.records import ImageFrame, ImuSample
from lnn_ros.sim.world.config import SimConfig
from lnn_ros.sim.world.episode import Simulator
from lnn_ros.sim.world.sensors import StreamClock, StreamTiming


def _stamps(timing: StreamTiming, count: int, seed: int = 0) -> tuple[np.ndarray, StreamClock]:
    clock = StreamClock(timing, np.random.default_rng(seed))
    return np.array([clock.pop() for _ in range(count)], dtype=np.int64), clock


def test_clock_rate_jitter_and_drops_match_the_timing() -> None:
    timing = StreamTiming(rate_hz=200.0, jitter_frac=0.1, drop_prob=0.05)
    stamps, clock = _stamps(timing, 20000)
    period = timing.period_ns
    assert np.all(np.diff(stamps) > 0)
    assert clock.delivered == 20000
    drop_share = clock.dropped / (clock.dropped + clock.delivered)
    assert drop_share == pytest.approx(0.05, abs=0.01)
    span_s = (stamps[-1] - stamps[0]) / 1e9
    rate = (clock.delivered + clock.dropped) / span_s
    assert rate == pytest.approx(200.0, rel=0.01)
    # Jitter: offsets from the nominal grid (up to a constant) have std jitter_frac * period.
    offsets = (stamps - stamps[0]) % period
    offsets = np.where(offsets > period / 2, offsets - period, offsets)
    assert np.std(offsets) / period == pytest.approx(0.1, rel=0.1)


def test_clock_without_jitter_or_drops_is_a_regular_grid() -> None:
    stamps, clock = _stamps(StreamTiming(rate_hz=30.0, jitter_frac=0.0, drop_prob=0.0), 300)
    assert clock.dropped == 0
    assert set(np.diff(stamps).tolist()) == {StreamTiming(30.0, 0.0, 0.0).period_ns}


def test_clock_stays_ordered_under_maximal_jitter() -> None:
    stamps, _ = _stamps(StreamTiming(rate_hz=200.0, jitter_frac=0.45, drop_prob=0.0), 20000, seed=3)
    assert np.all(np.diff(stamps) > 0)


def _events(sim: Simulator) -> tuple[list[ImuSample], list[ImageFrame], list]:
    events = list(sim.events())
    return [e for e in events if isinstance(e, ImuSample)], [e for e in events if isinstance(e, ImageFrame)], events


def test_simulator_streams_have_their_rates_and_strictly_increasing_stamps() -> None:
    sim = Simulator(SimConfig(duration_s=3.0, seed=4))
    imu, images, events = _events(sim)
    all_stamps = [e.stamp_ns for e in events]
    assert all_stamps == sorted(all_stamps)
    for stream, rate in ((imu, 200.0), (images, 30.0)):
        stamps = np.array([e.stamp_ns for e in stream])
        assert np.all(np.diff(stamps) > 0)
        assert len(stream) / 3.0 == pytest.approx(rate, rel=0.06)
    intervals = np.diff([e.stamp_ns for e in imu])
    assert np.std(intervals) > 0  # jitter present
    result = sim.result()
    assert (result.imu_delivered, result.images_delivered) == (len(imu), len(images))
    frame = images[0]
    assert (frame.height, frame.width, frame.encoding, frame.step) == (48, 64, "rgb8", 64 * 3)
    assert len(frame.data) == frame.height * frame.step


def test_jitter_variant_drops_more_and_jitters_more() -> None:
    config = SimConfig(duration_s=3.0)
    stats = {}
    for variant in ("nominal", "jitter"):
        drops, jitters = 0, []
        for seed in range(2):
            sim = Simulator(config, variant, seed)
            imu, _, _ = _events(sim)
            intervals = np.diff([e.stamp_ns for e in imu]) / sim.imu_timing.period_ns
            jitters.append(np.std(intervals[intervals < 1.5]))  # intervals without a drop
            drops += sim.result().imu_dropped + sim.result().images_dropped
        stats[variant] = (drops, float(np.mean(jitters)))
    assert stats["jitter"][0] > 5 * max(stats["nominal"][0], 1)
    assert stats["jitter"][1] > 3 * stats["nominal"][1]


def test_imu_reads_gravity_as_upward_specific_force_at_hover() -> None:
    config = dataclasses.replace(
        SimConfig(duration_s=1.0), accel_noise_density=0.0, gyro_noise_density=0.0,
        accel_bias_std_mps2=0.0, gyro_bias_std_rps=0.0, accel_random_walk=0.0, gyro_random_walk=0.0,
    )  # fmt: skip
    imu, _, _ = _events(Simulator(config, seed=2))
    accel = np.array([s.linear_acceleration for s in imu])
    gyro = np.array([s.angular_velocity for s in imu])
    np.testing.assert_allclose(accel, np.tile([0.0, 0.0, 9.81], (len(imu), 1)), atol=0.02)
    np.testing.assert_allclose(gyro, 0.0, atol=1e-3)
    q = imu[0].orientation
    assert q.shape == (4,) and np.linalg.norm(q) == pytest.approx(1.0)


def test_noisy_imu_averages_to_gravity_plus_bias() -> None:
    sim = Simulator(SimConfig(duration_s=2.0), seed=5)
    imu, _, _ = _events(sim)
    accel = np.array([s.linear_acceleration for s in imu])
    bias = sim.imu.accel_bias
    assert np.std(accel[:, 0]) > 0.1  # white noise present (std = density * sqrt(rate / 2) = 0.2)
    np.testing.assert_allclose(accel.mean(axis=0), np.array([0.0, 0.0, 9.81]) + bias, atol=0.05)
