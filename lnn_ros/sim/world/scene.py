"""The scene of one episode: start pose, red target sphere, distractors, ground texture, lighting.

Sampled from a seeded generator, so the same seed always gives the same scene. Distractors are
visual only (the vehicle flies through them); only the ground and the target can be hit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from lnn_ros.sim.world.config import SimConfig, VariantSpec

TARGET_COLOR = (0.85, 0.08, 0.06)
# Distractor colours: clearly not red under any lighting variant's tint.
DISTRACTOR_COLORS = (
    (0.15, 0.35, 0.90),  # blue
    (0.15, 0.70, 0.20),  # green
    (0.95, 0.85, 0.15),  # yellow
    (0.20, 0.80, 0.85),  # cyan
    (0.55, 0.30, 0.80),  # purple
    (0.92, 0.92, 0.92),  # white
)
GROUND_TEXTURE_SIZE = 32  # tiles per side of the (wrapping) ground shade table
GROUND_TILE_M = 0.5


class Sphere(NamedTuple):
    """A coloured sphere (centre in world metres, colour RGB in 0..1)."""

    center: tuple[float, float, float]
    radius: float
    color: tuple[float, float, float]


class Pillar(NamedTuple):
    """A vertical coloured cylinder standing on the ground (flat top)."""

    center_xy: tuple[float, float]
    radius: float
    height: float
    color: tuple[float, float, float]


@dataclass(frozen=True)
class Lighting:
    """Scene lighting.

    Attributes:
        gain: per-channel image gain (brightness times colour tint), shape (3,).
        sun_direction: unit vector toward the sun (world), shape (3,).
        ambient: share of light that reaches surfaces facing away from the sun.
    """

    gain: tuple[float, float, float]
    sun_direction: tuple[float, float, float]
    ambient: float = 0.45


@dataclass(frozen=True)
class Scene:
    """Everything the renderer and the expert need to know about one episode's world.

    Attributes:
        start_position: start position (world, m).
        start_yaw_rad: start yaw.
        target: the red target sphere.
        distractors: extra spheres and pillars (visual only).
        lighting: lighting.
        ground_shades: (GROUND_TEXTURE_SIZE, GROUND_TEXTURE_SIZE) tile brightness in 0..1.
    """

    start_position: tuple[float, float, float]
    start_yaw_rad: float
    target: Sphere
    distractors: tuple[Sphere | Pillar, ...]
    lighting: Lighting
    ground_shades: np.ndarray

    @property
    def target_position(self) -> np.ndarray:
        """Target centre (world, m), shape (3,)."""
        return np.array(self.target.center, dtype=float)


def sample_scene(config: SimConfig, spec: VariantSpec, rng: np.random.Generator) -> Scene:
    """Draw one scene: start pose, target in front of it, distractors off the path, lighting.

    The target is placed at a horizontal distance and bearing (relative to the start heading)
    drawn from the config (or the variant's overrides): by default it starts in the camera's
    view; the ``off_heading`` variant puts it at the edge of the view or outside it.
    """
    start_xy = rng.uniform(-config.start_xy_range_m, config.start_xy_range_m, size=2)
    start = (float(start_xy[0]), float(start_xy[1]), float(rng.uniform(*config.start_height_range_m)))
    start_yaw = float(rng.uniform(-math.pi, math.pi))
    distance = rng.uniform(*(spec.target_distance_range_m or config.target_distance_range_m))
    if spec.target_bearing_abs_range_rad is None:
        bearing = start_yaw + rng.uniform(*config.target_bearing_range_rad)
    else:
        bearing = start_yaw + rng.uniform(*spec.target_bearing_abs_range_rad) * (1.0 if rng.uniform() < 0.5 else -1.0)
    target_center = (
        start[0] + distance * math.cos(bearing),
        start[1] + distance * math.sin(bearing),
        float(rng.uniform(*config.target_height_range_m)),
    )
    target = Sphere(target_center, config.target_radius_m, TARGET_COLOR)
    count = int(rng.integers(spec.distractor_count_range[0], spec.distractor_count_range[1] + 1))
    distractors = _sample_distractors(count, np.array(start[:2]), np.array(target_center[:2]), rng)
    brightness = rng.uniform(*spec.brightness_range)
    tint = rng.uniform(1 - spec.tint_max, 1 + spec.tint_max, size=3)
    elevation = rng.uniform(*spec.sun_elevation_range_rad)
    azimuth = rng.uniform(-math.pi, math.pi)
    sun = (
        math.cos(elevation) * math.cos(azimuth),
        math.cos(elevation) * math.sin(azimuth),
        math.sin(elevation),
    )
    lighting = Lighting(gain=tuple(float(g) for g in brightness * tint), sun_direction=sun)  # type: ignore[arg-type]
    shades = rng.uniform(0.3, 0.7, size=(GROUND_TEXTURE_SIZE, GROUND_TEXTURE_SIZE))
    return Scene(start, start_yaw, target, tuple(distractors), lighting, shades)


def _sample_distractors(
    count: int, start_xy: np.ndarray, target_xy: np.ndarray, rng: np.random.Generator
) -> list[Sphere | Pillar]:
    """Distractors around the start-target path: >= 0.8 m off the path, >= 1.2 m from the target."""
    out: list[Sphere | Pillar] = []
    centre = (start_xy + target_xy) / 2
    half_extent = np.linalg.norm(target_xy - start_xy) / 2 + 2.5
    attempts = 0
    while len(out) < count and attempts < 200:
        attempts += 1
        xy = centre + rng.uniform(-half_extent, half_extent, size=2)
        if _distance_to_segment(xy, start_xy, target_xy) < 0.8 or np.linalg.norm(xy - target_xy) < 1.2:
            continue
        color = DISTRACTOR_COLORS[int(rng.integers(len(DISTRACTOR_COLORS)))]
        if rng.uniform() < 0.5:
            radius = float(rng.uniform(0.15, 0.35))
            out.append(Sphere((float(xy[0]), float(xy[1]), float(rng.uniform(0.4, 2.0))), radius, color))
        else:
            radius, height = float(rng.uniform(0.1, 0.3)), float(rng.uniform(0.8, 2.5))
            out.append(Pillar((float(xy[0]), float(xy[1])), radius, height, color))
    return out


def _distance_to_segment(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    s = float(np.clip(np.dot(point - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(point - (a + s * ab)))
