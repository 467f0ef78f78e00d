"""The ray-cast camera: conventions (left/right, up/down), target visibility, variants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lnn_ros.sim.world.config import VARIANTS, ScenarioVariant, SimConfig
from lnn_ros.sim.world.frames import quat_from_yaw, quat_to_matrix
from lnn_ros.sim.world.render import LABEL_GROUND, LABEL_SKY, LABEL_TARGET, Renderer
from lnn_ros.sim.world.scene import TARGET_COLOR, Lighting, Pillar, Scene, Sphere, sample_scene

CONFIG = SimConfig()


def _scene(target_center: tuple[float, float, float], distractors: tuple = ()) -> Scene:
    return Scene(
        start_position=(0.0, 0.0, 1.0),
        start_yaw_rad=0.0,
        target=Sphere(target_center, 0.25, TARGET_COLOR),
        distractors=distractors,
        lighting=Lighting(gain=(1.0, 1.0, 1.0), sun_direction=(0.0, 0.6, 0.8)),
        ground_shades=np.random.default_rng(0).uniform(0.3, 0.7, size=(32, 32)),
    )


def _render(scene: Scene, yaw: float, position: tuple[float, float, float] = (0.0, 0.0, 1.0)):
    renderer = Renderer(CONFIG.intrinsics, math.radians(CONFIG.camera_pitch_deg), scene)
    return renderer.render(np.array(position), quat_to_matrix(quat_from_yaw(yaw)))


def test_target_seen_when_facing_it_and_not_when_facing_away() -> None:
    scene = _scene((3.0, 0.0, 1.0))
    facing = _render(scene, yaw=0.0)
    away = _render(scene, yaw=math.pi)
    assert facing.image.shape == (CONFIG.image_height, CONFIG.image_width, 3)
    assert facing.image.dtype == np.uint8
    target = facing.labels == LABEL_TARGET
    assert target.sum() >= 10
    assert (away.labels == LABEL_TARGET).sum() == 0
    # Target pixels are red: red channel well above green and blue.
    red = facing.image[target].astype(int)
    assert np.all(red[:, 0] > red[:, 1] + 40) and np.all(red[:, 0] > red[:, 2] + 40)
    assert not np.any(
        (away.image[..., 0].astype(int) > away.image[..., 1].astype(int) + 40)
        & (away.image[..., 0].astype(int) > away.image[..., 2].astype(int) + 40)
    )


def test_image_axes_follow_the_optical_convention() -> None:
    width, height = CONFIG.image_width, CONFIG.image_height
    right = _render(_scene((3.0, -1.0, 1.0)), yaw=0.0).labels == LABEL_TARGET  # body -y is image right
    left = _render(_scene((3.0, 1.0, 1.0)), yaw=0.0).labels == LABEL_TARGET
    high = _render(_scene((3.0, 0.0, 2.2)), yaw=0.0).labels == LABEL_TARGET
    level = _render(_scene((3.0, 0.0, 1.0)), yaw=0.0).labels == LABEL_TARGET
    cols = np.arange(width)[None, :]
    rows = np.arange(height)[:, None]
    assert (cols * right).sum() / right.sum() > width / 2 + 5
    assert (cols * left).sum() / left.sum() < width / 2 - 5
    assert (rows * high).sum() / high.sum() < (rows * level).sum() / level.sum() - 5
    # The camera is tilted down: a target at camera height shows above the image centre.
    assert (rows * level).sum() / level.sum() < height / 2


def test_sky_above_ground_below_and_nearer_objects_occlude() -> None:
    pillar = Pillar(center_xy=(1.5, 0.0), radius=0.3, height=3.0, color=(0.15, 0.35, 0.9))
    out = _render(_scene((3.0, 0.0, 1.0), distractors=(pillar,)), yaw=0.0)
    assert (out.labels[0] == LABEL_SKY).mean() > 0.7
    assert (out.labels[-1] == LABEL_GROUND).mean() > 0.7
    assert (out.labels == LABEL_TARGET).sum() == 0  # hidden behind the pillar
    assert (out.labels == LABEL_TARGET + 1).sum() > 20


def test_distractors_variant_draws_other_objects_and_lighting_changes_brightness() -> None:
    means = {}
    for variant in (ScenarioVariant.NOMINAL, ScenarioVariant.DISTRACTORS, ScenarioVariant.LIGHTING):
        labels_seen: set[int] = set()
        brightness = []
        for seed in range(6):
            scene = sample_scene(CONFIG, VARIANTS[variant], np.random.default_rng(seed))
            renderer = Renderer(CONFIG.intrinsics, math.radians(CONFIG.camera_pitch_deg), scene)
            for yaw in np.linspace(-math.pi, math.pi, 8, endpoint=False):
                out = renderer.render(np.array(scene.start_position), quat_to_matrix(quat_from_yaw(yaw)))
                labels_seen |= set(np.unique(out.labels).tolist())
                brightness.append(out.image.mean())
        means[variant] = (labels_seen, np.std(brightness))
    assert max(means[ScenarioVariant.NOMINAL][0]) == LABEL_TARGET
    assert max(means[ScenarioVariant.DISTRACTORS][0]) > LABEL_TARGET
    assert means[ScenarioVariant.LIGHTING][1] > 2 * means[ScenarioVariant.NOMINAL][1]


def test_pixel_noise_is_seeded_and_needs_an_rng() -> None:
    scene = _scene((3.0, 0.0, 1.0))
    renderer = Renderer(CONFIG.intrinsics, 0.0, scene)
    pose = (np.array([0.0, 0.0, 1.0]), np.eye(3))
    a = renderer.render(*pose, np.random.default_rng(1), 3.0).image
    b = renderer.render(*pose, np.random.default_rng(1), 3.0).image
    clean = renderer.render(*pose).image
    assert np.array_equal(a, b)
    assert not np.array_equal(a, clean)
    with pytest.raises(ValueError, match="rng"):
        renderer.render(*pose, None, 3.0)
