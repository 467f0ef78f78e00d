"""Demonstrations: recording, labels, DAgger mixing, .npz round trip and validation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lnn_ros.runtime.records import Command, ImageFrame
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.demonstrations import (
    Demonstration,
    generate_demonstrations,
    load_demonstration,
    load_demonstrations,
    record_demonstration,
    save_demonstration,
)
from lnn_ros.sim.world.config import SimConfig

CONFIG = SimConfig(duration_s=1.5)


def test_expert_demo_has_aligned_streams_and_labels() -> None:
    demo, result = record_demonstration(CONFIG, "nominal", 3)
    n, m = len(demo.imu_stamp_ns), len(demo.image_stamp_ns)
    assert n == result.imu_delivered and m == result.images_delivered
    assert demo.images.shape == (m, 48, 64, 3) and demo.images.dtype == np.uint8
    for name in ("imu_angular_velocity", "imu_linear_acceleration", "imu_true_position", "imu_true_velocity"):
        assert getattr(demo, name).shape == (n, 3)
    assert demo.imu_orientation.shape == (n, 4)
    assert demo.imu_expert_command.shape == (n, 4) and demo.image_expert_command.shape == (m, 4)
    assert np.all(np.diff(demo.imu_stamp_ns) > 0) and np.all(np.diff(demo.image_stamp_ns) > 0)
    # The expert flies: what was flown is its label (to float32 precision).
    np.testing.assert_allclose(demo.imu_flown_command, demo.imu_expert_command, atol=1e-6)
    assert np.abs(demo.imu_expert_command[:, 0]).max() > 0.5
    assert demo.expert_share == 1.0


def test_dagger_pilot_flies_while_the_expert_labels() -> None:
    seen: list[str] = []

    def hover_pilot_factory(sim):
        def pilot(event):
            seen.append(type(event).__name__)
            return Command.heading(event.stamp_ns, 0.0, 0.0, 0.0, 0.0) if isinstance(event, ImageFrame) else None

        return pilot

    demo, result = record_demonstration(CONFIG, "nominal", 3, pilot_factory=hover_pilot_factory, expert_share=0.0)
    assert {"ImuSample", "ImageFrame"} <= set(seen)
    assert np.all(demo.imu_flown_command == 0.0)
    assert np.abs(demo.imu_expert_command[:, 0]).max() > 0.5
    assert np.linalg.norm(result.trajectory.position[-1] - result.start_position) < 0.1
    half, _ = record_demonstration(CONFIG, "nominal", 3, pilot_factory=hover_pilot_factory, expert_share=0.5)
    flown_by_expert = np.any(half.imu_flown_command != 0.0, axis=1).mean()
    assert 0.4 < flown_by_expert < 0.6
    with pytest.raises(SimError, match="expert_share"):
        record_demonstration(CONFIG, "nominal", 3, expert_share=1.5)


def test_save_load_round_trip_without_pickle(tmp_path: Path) -> None:
    demo, _ = record_demonstration(CONFIG, "jitter", 5)
    path = save_demonstration(tmp_path / "one.npz", demo)
    with np.load(path, allow_pickle=False) as raw:
        assert "format_version" in raw.files
    loaded = load_demonstration(path)
    for name in Demonstration._fields:
        a, b = getattr(demo, name), getattr(loaded, name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        else:
            assert type(a) is type(b), name
            assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), name


def test_generate_writes_seeded_files_cycling_variants(tmp_path: Path) -> None:
    config = SimConfig(duration_s=0.5)
    paths = generate_demonstrations(tmp_path / "demos", 3, config, ["wind", "lighting"], first_seed=10)
    assert [p.name for p in paths] == ["episode_000010.npz", "episode_000011.npz", "episode_000012.npz"]
    demos = load_demonstrations(tmp_path / "demos")
    assert [(d.seed, d.variant) for d in demos] == [(10, "wind"), (11, "lighting"), (12, "wind")]


def test_invalid_files_raise_sim_errors(tmp_path: Path) -> None:
    with pytest.raises(SimError, match="No demonstration"):
        load_demonstrations(tmp_path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(SimError, match="Cannot read"):
        load_demonstration(bad)
    old = tmp_path / "old.npz"
    np.savez(old, format_version=np.asarray(0))
    with pytest.raises(SimError, match="format version 0"):
        load_demonstration(old)
    partial = tmp_path / "partial.npz"
    np.savez(partial, format_version=np.asarray(1), seed=np.asarray(1))
    with pytest.raises(SimError, match="lacks fields"):
        load_demonstration(partial)
