"""The timing disturbances of one episode: occlusions, camera dropouts, changing rates, camera latency.

These are the conditions in which a policy needs memory and a sense of time: the target is
hidden for a while and must be remembered, the camera goes quiet, the sensor rates differ
from training and change mid-flight, or frames arrive late (stamped at capture). All are drawn
once per episode from the variant's :class:`~lnn_ros.sim.world.config.VariantSpec` and the
episode's own random stream, so an episode is still a pure function of (config, variant, seed).

Times are integer nanoseconds of sim time; intervals are half-open ``[start, end)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lnn_ros.sim.world.config import VariantSpec
from lnn_ros.units import NS_PER_S

Interval = tuple[int, int]
RateSchedule = tuple[tuple[int, float], ...]
"""``((from_ns, rate_hz), ...)``: the rate from each time on; the first entry is at 0."""


class Disturbances(NamedTuple):
    """What disturbs the sensors in one episode.

    Attributes:
        occlusions_ns: intervals in which the target is not drawn in the camera frames.
        blackouts_ns: intervals in which the camera delivers no frame.
        imu_rates: the IMU rate schedule (empty: the stream's constant rate).
        camera_rates: the camera rate schedule (empty: constant).
        camera_latency_ns: delay from a frame's capture (its stamp) to its delivery.
        camera_latency_jitter_ns: each frame's delay adds a uniform draw in [0, this].
    """

    occlusions_ns: tuple[Interval, ...] = ()
    blackouts_ns: tuple[Interval, ...] = ()
    imu_rates: RateSchedule = ()
    camera_rates: RateSchedule = ()
    camera_latency_ns: int = 0
    camera_latency_jitter_ns: int = 0

    def occluded(self, t_ns: int) -> bool:
        """True when the target is hidden at ``t_ns``."""
        return inside(self.occlusions_ns, t_ns)

    def blacked_out(self, t_ns: int) -> bool:
        """True when the camera delivers nothing at ``t_ns``."""
        return inside(self.blackouts_ns, t_ns)


def inside(intervals: tuple[Interval, ...], t_ns: int) -> bool:
    """True when ``t_ns`` lies in one of the half-open ``intervals``."""
    return any(start <= t_ns < end for start, end in intervals)


def rate_at(schedule: RateSchedule, t_ns: int) -> float:
    """The rate of ``schedule`` in force at ``t_ns`` (the schedule must not be empty)."""
    rate = schedule[0][1]
    for start, value in schedule:
        if start > t_ns:
            break
        rate = value
    return rate


def sample_disturbances(spec: VariantSpec, duration_s: float, rng: np.random.Generator) -> Disturbances:
    """Draw one episode's disturbances from ``spec`` (nothing for a variant without any)."""
    end_ns = round(duration_s * NS_PER_S)
    return Disturbances(
        occlusions_ns=_intervals(spec.occlusion_count_range, spec.occlusion_duration_range_s, spec.event_window_s, rng),
        blackouts_ns=_intervals(spec.blackout_count_range, spec.blackout_duration_range_s, spec.event_window_s, rng),
        imu_rates=_schedule(spec.imu_rate_range_hz, spec.rate_switch_interval_range_s, end_ns, rng),
        camera_rates=_schedule(spec.camera_rate_range_hz, spec.rate_switch_interval_range_s, end_ns, rng),
        camera_latency_ns=round(float(rng.uniform(*spec.camera_latency_range_s)) * NS_PER_S),
        camera_latency_jitter_ns=round(spec.camera_latency_jitter_s * NS_PER_S),
    )


def _intervals(
    count_range: tuple[int, int], duration_range_s: tuple[float, float], window_s: tuple[float, float], rng: np.random.Generator
) -> tuple[Interval, ...]:
    count = int(rng.integers(count_range[0], count_range[1] + 1)) if count_range[1] > 0 else 0
    out = []
    for _ in range(count):
        start_s = float(rng.uniform(*window_s))
        length_s = float(rng.uniform(*duration_range_s))
        out.append((round(start_s * NS_PER_S), round((start_s + length_s) * NS_PER_S)))
    return tuple(sorted(out))


def _schedule(
    rate_range_hz: tuple[float, float] | None,
    interval_range_s: tuple[float, float] | None,
    end_ns: int,
    rng: np.random.Generator,
) -> RateSchedule:
    if rate_range_hz is None:
        return ()
    schedule = [(0, float(rng.uniform(*rate_range_hz)))]
    if interval_range_s is None:
        return tuple(schedule)
    t_ns = 0
    while True:
        t_ns += max(1, round(float(rng.uniform(*interval_range_s)) * NS_PER_S))
        if t_ns >= end_ns:
            return tuple(schedule)
        schedule.append((t_ns, float(rng.uniform(*rate_range_hz))))
