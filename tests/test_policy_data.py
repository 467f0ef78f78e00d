"""Demonstrations -> fused training sequences: the runtime's fusion rule, Δt rules, frame bookkeeping."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lnn_ros.runtime.records import ImageFrame, ImuSample
from lnn_ros.sim import SimConfig, record_demonstration
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.demonstrations import Demonstration
from lnn_ros.sim.expert.noisy import NoisyExpert
from lnn_ros_examples.drone_policy.data import FRAME_COLUMN, DtRule, build_dataset, demo_events, held_frames, step_dt

MS = 1_000_000
RULE = DtRule(max_dt_s=0.05, max_gap_s=0.5)


def synthetic_demo(imu_ms: list[float], image_ms: list[float], seed: int = 1, size: tuple[int, int] = (4, 6)) -> Demonstration:
    n, m = len(imu_ms), len(image_ms)
    h, w = size
    rng = np.random.default_rng(seed)
    return Demonstration(
        seed=seed,
        variant="nominal",
        imu_stamp_ns=np.array([round(t * MS) for t in imu_ms], dtype=np.int64),
        imu_angular_velocity=rng.normal(size=(n, 3)).astype(np.float32),
        imu_linear_acceleration=rng.normal(size=(n, 3)).astype(np.float32),
        imu_orientation=np.tile(np.array([0, 0, 0, 1], dtype=np.float32), (n, 1)),
        imu_expert_command=rng.normal(size=(n, 4)).astype(np.float32),
        imu_flown_command=np.zeros((n, 4), dtype=np.float32),
        imu_true_position=np.zeros((n, 3), dtype=np.float32),
        imu_true_velocity=np.zeros((n, 3), dtype=np.float32),
        imu_true_yaw=np.zeros(n, dtype=np.float32),
        image_stamp_ns=np.array([round(t * MS) for t in image_ms], dtype=np.int64),
        images=rng.integers(0, 256, size=(m, h, w, 3), dtype=np.uint8),
        image_expert_command=np.zeros((m, 4), dtype=np.float32),
        target_position=np.zeros(3),
        start_position=np.zeros(3),
        reached=False,
        time_to_reach_s=math.nan,
        crashed=False,
        final_distance_m=1.0,
        expert_share=1.0,
    )


def test_held_frame_is_the_newest_image_strictly_before_the_imu_sample() -> None:
    imu = np.array([5, 10, 15, 20, 25, 30]) * MS
    images = np.array([10, 21]) * MS
    # 5: none yet; 10: same stamp -> the IMU comes first, so still none; 15, 20: frame 0; 25, 30: frame 1.
    assert held_frames(imu, images).tolist() == [-1, -1, 0, 0, 1, 1]


def test_step_dt_starts_at_zero_clamps_and_restarts_after_a_gap() -> None:
    stamps = np.array([0, 5, 10, 80, 700, 705]) * MS  # 70 ms > max_dt (clamped), 620 ms > max_gap (restart)
    dt_s, starts = step_dt(stamps, RULE)
    np.testing.assert_allclose(dt_s, [0.0, 0.005, 0.005, 0.05, 0.0, 0.005], atol=1e-9)
    assert starts.tolist() == [True, False, False, False, True, False]
    with pytest.raises(SimError, match="strictly increasing"):
        step_dt(np.array([0, 5, 5]) * MS, RULE)


def test_sequences_start_at_the_first_step_the_runner_takes_and_index_frames_across_demos() -> None:
    first = synthetic_demo([5, 10, 15, 20, 25, 30], [12, 21], seed=1)
    second = synthetic_demo([3, 8, 13, 900, 905], [1, 7], seed=2)  # a 887 ms gap splits it
    data = build_dataset([first, second], RULE)
    assert len(data.frames) == 4
    np.testing.assert_array_equal(data.frames[2:], second.images)
    a, b1, b2 = data.sequences
    # first demo: its first frame is at 12 ms, so the runner's first step is the IMU at 15 ms (index 2).
    np.testing.assert_array_equal(a.x[:, FRAME_COLUMN], [0, 0, 1, 1])
    np.testing.assert_array_equal(a.x[:, :3], first.imu_angular_velocity[2:])
    np.testing.assert_array_equal(a.x[:, 3:6], first.imu_linear_acceleration[2:])
    np.testing.assert_array_equal(a.y, first.imu_expert_command[2:])
    np.testing.assert_allclose(a.dt_s, [0.0, 0.005, 0.005, 0.005])
    # second demo: frames are numbered after the first demo's two.
    np.testing.assert_array_equal(b1.x[:, FRAME_COLUMN], [2, 3, 3])
    np.testing.assert_array_equal(b2.x[:, FRAME_COLUMN], [3, 3])
    assert b2.dt_s[0] == 0.0
    assert data.seeds == (1, 2, 2)


def test_build_dataset_refuses_what_it_cannot_use() -> None:
    with pytest.raises(SimError, match="at least one demonstration"):
        build_dataset([], RULE)
    with pytest.raises(SimError, match="one image size"):
        build_dataset([synthetic_demo([5, 10], [1]), synthetic_demo([5, 10], [1], size=(8, 6))], RULE)
    with pytest.raises(SimError, match="two IMU samples after"):
        build_dataset([synthetic_demo([5, 10], [20])], RULE)


def test_demo_events_restore_the_simulators_order() -> None:
    demo = synthetic_demo([5, 10, 15], [10, 12])
    events = demo_events(demo)
    kinds = [(type(e).__name__, e.stamp_ns // MS) for e in events]
    assert kinds == [("ImuSample", 5), ("ImuSample", 10), ("ImageFrame", 10), ("ImageFrame", 12), ("ImuSample", 15)]
    frame = events[2]
    assert isinstance(frame, ImageFrame) and frame.to_array().tobytes() == demo.images[0].tobytes()
    assert isinstance(events[0], ImuSample)


def test_a_recorded_demonstration_fuses_like_the_simulator_delivered_it() -> None:
    demo, _ = record_demonstration(dataclasses.replace(SimConfig(), duration_s=0.6), "nominal", 3)
    data = build_dataset([demo], RULE)
    (sequence,) = data.sequences
    # Walk the recorded events as the runner would: the held frame at each IMU step.
    held, rows = -1, []
    for event in demo_events(demo):
        if isinstance(event, ImageFrame):
            held += 1
        elif held >= 0:
            rows.append(held)
    np.testing.assert_array_equal(sequence.x[:, FRAME_COLUMN], rows)
    assert sequence.dt_s[0] == 0 and np.all(sequence.dt_s[1:] > 0)


def test_noisy_expert_flies_perturbed_commands_but_labels_stay_the_experts() -> None:
    config = dataclasses.replace(SimConfig(), duration_s=1.0)
    demo, _ = record_demonstration(config, "nominal", 4, pilot_factory=NoisyExpert(), expert_share=0.0)
    again, _ = record_demonstration(config, "nominal", 4, pilot_factory=NoisyExpert(), expert_share=0.0)
    clean, _ = record_demonstration(config, "nominal", 4, pilot_factory=NoisyExpert(sigma=(0, 0, 0, 0)), expert_share=0.0)
    gap = np.abs(demo.imu_flown_command - demo.imu_expert_command).max(axis=0)
    assert np.all(gap > 0.05), gap  # every axis is perturbed
    np.testing.assert_array_equal(demo.imu_flown_command, again.imu_flown_command)  # seeded
    # Without noise the pilot flies exactly what the expert labels.
    np.testing.assert_allclose(clean.imu_flown_command, clean.imu_expert_command, atol=1e-6)
    with pytest.raises(SimError, match="tau_s"):
        NoisyExpert(tau_s=0.0)
