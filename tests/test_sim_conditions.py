"""The memory / timing conditions do what they say: occlusion, dropout, changing rates, latency, far targets."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lnn_ros.runtime.records import ImageFrame, ImuSample, SensorRecord
from lnn_ros.sim.expert.demonstrations import record_demonstration
from lnn_ros.sim.expert.expert import expert_controller
from lnn_ros.sim.world.config import VARIANTS, ScenarioVariant, SimConfig
from lnn_ros.sim.world.disturbances import rate_at
from lnn_ros.sim.world.episode import EpisodeResult, Simulator
from lnn_ros.units import NS_PER_S

CONFIG = SimConfig(duration_s=6.0)


def _fly(variant: str, seed: int, config: SimConfig = CONFIG) -> tuple[list[SensorRecord], EpisodeResult]:
    sim = Simulator(config, variant, seed)
    expert = expert_controller(sim)
    events = []
    for event in sim.events():
        events.append(event)
        command = expert(event)
        if command is not None:
            sim.set_command(command)
    return events, sim.result()


def _red_pixels(frame: ImageFrame) -> int:
    rgb = frame.to_array().astype(np.int32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((r > 90) & (r > 3 * g) & (r > 3 * b)).sum())


@pytest.mark.parametrize("seed", [3, 11])
def test_the_target_is_invisible_during_an_occlusion_and_visible_around_it(seed: int) -> None:
    events, result = _fly("occlusion", seed)
    intervals = result.disturbances.occlusions_ns
    assert intervals, "an occlusion episode must hide the target at least once"
    frames = [e for e in events if isinstance(e, ImageFrame)]
    hidden = [f for f in frames if result.disturbances.occluded(f.stamp_ns)]
    shown = [f for f in frames if not result.disturbances.occluded(f.stamp_ns) and f.stamp_ns > 0.3 * NS_PER_S]
    assert len(hidden) >= 10
    assert result.images_occluded == len(hidden)
    assert all(_red_pixels(f) == 0 for f in hidden)
    # The expert faces the target, so outside the occlusions it is in view nearly always.
    assert np.mean([_red_pixels(f) > 0 for f in shown]) > 0.9


def test_an_occlusion_changes_only_the_target_pixels() -> None:
    sim = Simulator(CONFIG, "occlusion", 3)
    renderer = sim.camera.renderer
    position = sim.scene.start_position
    rotation = np.eye(3)
    yaw = sim.scene.start_yaw_rad
    rotation = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
    seen = renderer.render(np.array(position), rotation)
    hidden = renderer.render(np.array(position), rotation, hide_target=True)
    target = seen.labels == 1
    assert target.any() and not (hidden.labels == 1).any()
    np.testing.assert_array_equal(seen.image[~target], hidden.image[~target])


def test_no_frame_is_delivered_inside_a_camera_dropout() -> None:
    events, result = _fly("dropout", 5)
    blackouts = result.disturbances.blackouts_ns
    assert 2 <= len(blackouts) <= 4
    stamps = [e.stamp_ns for e in events if isinstance(e, ImageFrame)]
    assert not any(result.disturbances.blacked_out(s) for s in stamps)
    gaps = np.diff(stamps)
    longest_s = max(end - start for start, end in blackouts) / NS_PER_S
    assert gaps.max() / NS_PER_S >= longest_s  # the camera really goes quiet that long
    imu = [e.stamp_ns for e in events if isinstance(e, ImuSample)]
    assert len(imu) > 1000  # the IMU keeps going


def test_sensor_rates_follow_the_schedule_and_change_mid_flight() -> None:
    events, result = _fly("rates", 2)
    for schedule, kind, low, high in (
        (result.disturbances.imu_rates, ImuSample, 100.0, 400.0),
        (result.disturbances.camera_rates, ImageFrame, 10.0, 60.0),
    ):
        assert len(schedule) >= 2, "rates must change at least once in a 6 s episode"
        rates = [rate for _, rate in schedule]
        assert all(low <= r <= high for r in rates)
        assert max(rates) / min(rates) > 1.2
        stamps = np.array([e.stamp_ns for e in events if isinstance(e, kind)])
        assert (np.diff(stamps) > 0).all()
        for (start, _rate), end in zip(schedule, [*(s for s, _ in schedule[1:]), CONFIG.duration_s * NS_PER_S]):
            inside = stamps[(stamps >= start + 0.05 * NS_PER_S) & (stamps < end)]
            if len(inside) < 8:
                continue
            measured = (len(inside) - 1) / ((inside[-1] - inside[0]) / NS_PER_S)
            assert measured == pytest.approx(rate_at(schedule, int(start)), rel=0.25)


def test_delayed_frames_keep_their_capture_stamp_and_arrive_after_later_imu_samples() -> None:
    delayed_events, delayed = _fly("delay", 7)
    nominal_events, _ = _fly("nominal", 7)
    latency = delayed.disturbances.camera_latency_ns
    assert 0.03 * NS_PER_S <= latency <= 0.1 * NS_PER_S
    # Same seed, same camera clock: the stamps are the capture times, not the arrival times.
    delayed_stamps = [e.stamp_ns for e in delayed_events if isinstance(e, ImageFrame)]
    nominal_stamps = [e.stamp_ns for e in nominal_events if isinstance(e, ImageFrame)]
    assert delayed_stamps == nominal_stamps[: len(delayed_stamps)]
    assert len(delayed_stamps) >= len(nominal_stamps) - 5
    last_imu = -1
    late = 0
    for event in delayed_events:
        if isinstance(event, ImuSample):
            last_imu = event.stamp_ns
        else:
            assert last_imu <= event.stamp_ns + latency + 0.01 * NS_PER_S + 1
            late += last_imu > event.stamp_ns
    assert late == len(delayed_stamps)  # every frame came after an IMU sample stamped later than it


def test_a_delayed_demonstration_records_the_delivery_order() -> None:
    from lnn_ros_examples.drone_policy.data import demo_events, held_frames

    config = dataclasses.replace(CONFIG, duration_s=2.0)
    demo, _ = record_demonstration(config, "delay", 4)
    sim = Simulator(config, "delay", 4)
    expert = expert_controller(sim)
    live = []
    for event in sim.events():
        live.append((type(event), event.stamp_ns))
        command = expert(event)
        if command is not None:
            sim.set_command(command, event.stamp_ns)
    replayed = [(type(e), e.stamp_ns) for e in demo_events(demo)]
    assert replayed == live
    by_order = held_frames(demo.imu_stamp_ns, demo.image_stamp_ns, demo.image_imu_count)
    by_stamp = held_frames(demo.imu_stamp_ns, demo.image_stamp_ns)
    assert (by_order <= by_stamp).all() and (by_order < by_stamp).any()


def test_far_and_off_heading_targets_are_where_the_variant_says() -> None:
    for seed in range(20):
        far = Simulator(CONFIG, "far", seed).scene
        distance = math.dist(far.start_position[:2], far.target.center[:2])
        assert 5.5 <= distance <= 8.0
        off = Simulator(CONFIG, "off_heading", seed).scene
        bearing = math.atan2(off.target.center[1] - off.start_position[1], off.target.center[0] - off.start_position[0])
        offset = abs(math.remainder(bearing - off.start_yaw_rad, 2 * math.pi))
        assert 0.6 - 1e-9 <= offset <= 1.2 + 1e-9


def test_variants_without_disturbances_draw_none_and_keep_their_streams() -> None:
    for variant in ("nominal", "lighting", "wind", "far"):
        d = Simulator(CONFIG, variant, 1).disturbances
        assert not (d.occlusions_ns or d.blackouts_ns or d.imu_rates or d.camera_rates or d.camera_latency_ns)
    # A new variant must not shift the nominal episode's random streams.
    a = Simulator(CONFIG, "nominal", 9)
    b = Simulator(CONFIG, "far", 9)
    assert a.imu_timing == b.imu_timing and a.camera_timing == b.camera_timing


def test_every_variant_has_a_description() -> None:
    assert set(VARIANTS) == set(ScenarioVariant)
    assert all(spec.description for spec in VARIANTS.values())
