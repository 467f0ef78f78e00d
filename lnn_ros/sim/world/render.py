"""A small pinhole camera that ray-casts the scene in numpy, all pixels at once.

Per pixel ray ``o + t d`` (o the camera position, d the pixel's unit direction in the world):

* ground plane z = 0:     t = -o_z / d_z                                   (d_z < 0)
* sphere (c, r):          t = -b - sqrt(b^2 - |o-c|^2 + r^2),  b = d.(o-c)
* vertical pillar side:   t = (-b - sqrt(b^2 - a(|o-c|^2 - r^2))) / a      (x, y components only,
                          a = |d_xy|^2, b = d_xy.(o-c)_xy, 0 <= z <= h);  flat top z = h.

The nearest hit colours the pixel: Lambert shading (ambient + diffuse toward the sun) of the
object colour, a tiled random-shade ground texture fading into haze with distance, and a sky
gradient; then the lighting gain, Gaussian pixel noise and rounding to uint8 (rgb8).
The camera sits at the body origin looking along body x, tilted down by ``pitch``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from lnn_ros.sim.world.config import CameraIntrinsics
from lnn_ros.sim.world.scene import GROUND_TEXTURE_SIZE, GROUND_TILE_M, Pillar, Scene, Sphere

SKY_HORIZON = np.array([0.78, 0.84, 0.92])
SKY_ZENITH = np.array([0.30, 0.50, 0.85])
GROUND_COLOR = np.array([0.62, 0.66, 0.52])
HAZE_DISTANCE_M = 25.0

LABEL_SKY = -1
LABEL_GROUND = 0
LABEL_TARGET = 1  # distractor i has label 2 + i


class RenderOutput(NamedTuple):
    """One rendered frame.

    Attributes:
        image: uint8 RGB, shape (height, width, 3).
        labels: int16 per pixel: -1 sky, 0 ground, 1 target, 2 + i distractor i.
    """

    image: np.ndarray
    labels: np.ndarray


class Renderer:
    """Renders one scene from any camera pose.

    Args:
        intrinsics: pinhole intrinsics (image size, focal lengths, principal point).
        camera_pitch_rad: camera tilt below body x.
        scene: the scene to draw.
    """

    def __init__(self, intrinsics: CameraIntrinsics, camera_pitch_rad: float, scene: Scene) -> None:
        self.intrinsics = intrinsics
        self.scene = scene
        u = (np.arange(intrinsics.width) + 0.5 - intrinsics.cx) / intrinsics.fx
        v = (np.arange(intrinsics.height) + 0.5 - intrinsics.cy) / intrinsics.fy
        uu, vv = np.meshgrid(u, v)
        # Optical frame (x right, y down, z forward) to body (x forward, y left, z up).
        rays = np.stack([np.ones_like(uu), -uu, -vv], axis=-1).reshape(-1, 3)
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        c, s = math.cos(camera_pitch_rad), math.sin(camera_pitch_rad)
        pitch_down = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        self._rays_body = rays @ pitch_down.T
        spheres = [(i, obj) for i, obj in enumerate((scene.target, *scene.distractors)) if isinstance(obj, Sphere)]
        pillars = [(i, obj) for i, obj in enumerate((scene.target, *scene.distractors)) if isinstance(obj, Pillar)]
        self._sphere_labels = np.array([LABEL_TARGET + i for i, _ in spheres], dtype=np.int16)
        self._sphere_centers = np.array([obj.center for _, obj in spheres], dtype=float).reshape(-1, 3)
        self._sphere_radii = np.array([obj.radius for _, obj in spheres], dtype=float)
        self._pillar_labels = np.array([LABEL_TARGET + i for i, _ in pillars], dtype=np.int16)
        self._pillar_centers = np.array([obj.center_xy for _, obj in pillars], dtype=float).reshape(-1, 2)
        self._pillar_radii = np.array([obj.radius for _, obj in pillars], dtype=float)
        self._pillar_heights = np.array([obj.height for _, obj in pillars], dtype=float)
        objects = (scene.target, *scene.distractors)
        # Colour table indexed by label + 1 (sky and ground are shaded separately).
        self._colors = np.array([(0, 0, 0), (0, 0, 0), *[obj.color for obj in objects]], dtype=float)
        self._sun = np.array(scene.lighting.sun_direction, dtype=float)
        self._gain = np.array(scene.lighting.gain, dtype=float)
        self._ambient = scene.lighting.ambient
        self._ground_shades = scene.ground_shades

    def render(
        self,
        position: np.ndarray,
        rotation_wb: np.ndarray,
        rng: np.random.Generator | None = None,
        noise_std: float = 0.0,
        hide_target: bool = False,
    ) -> RenderOutput:
        """Render the view of a camera on a body at ``position`` with attitude ``rotation_wb``.

        Args:
            position: body (camera) position, world, m, shape (3,).
            rotation_wb: body-to-world rotation matrix, shape (3, 3).
            rng: source of pixel noise (required when ``noise_std`` > 0).
            noise_std: std of additive Gaussian pixel noise in 0..255 units.
            hide_target: leave the target out (an occlusion): its pixels show what lies behind it.
        """
        d = self._rays_body @ np.asarray(rotation_wb, dtype=float).T
        o = np.asarray(position, dtype=float)
        n_pix = d.shape[0]
        t = np.full(n_pix, np.inf)
        labels = np.full(n_pix, LABEL_SKY, dtype=np.int16)
        normals = np.zeros((n_pix, 3))
        normals[:, 2] = 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            t_ground = np.where(d[:, 2] < -1e-9, -o[2] / d[:, 2], np.inf)
            hit = np.isfinite(t_ground) & (t_ground > 0)
            t[hit] = t_ground[hit]
            labels[hit] = LABEL_GROUND
            first = 1 if hide_target else 0  # the target is always the first sphere
            if self._sphere_radii.size > first:
                self._hit_spheres(o, d, t, labels, normals, first)
            if self._pillar_radii.size:
                self._hit_pillars(o, d, t, labels, normals)
        color = self._shade(o, d, t, labels, normals)
        if noise_std > 0:
            if rng is None:
                raise ValueError(f"Pixel noise std {noise_std!r} needs an rng; pass rng=np.random.default_rng(seed).")
            color += rng.standard_normal(color.shape) * (noise_std / 255.0)
        h, w = self.intrinsics.height, self.intrinsics.width
        image = (np.clip(color, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).reshape(h, w, 3)
        return RenderOutput(image, labels.reshape(h, w))

    def _hit_spheres(
        self, o: np.ndarray, d: np.ndarray, t: np.ndarray, labels: np.ndarray, normals: np.ndarray, first: int = 0
    ) -> None:
        centers, radii, sphere_labels = self._sphere_centers[first:], self._sphere_radii[first:], self._sphere_labels[first:]
        oc = o - centers  # (S, 3)
        b = d @ oc.T  # (N, S)
        disc = b * b - (np.einsum("ij,ij->i", oc, oc) - radii**2)
        ts = -b - np.sqrt(np.maximum(disc, 0.0))
        ts = np.where((disc > 0) & (ts > 1e-6), ts, np.inf)
        best = np.argmin(ts, axis=1)
        t_best = ts[np.arange(ts.shape[0]), best]
        closer = t_best < t
        if not closer.any():
            return
        k = best[closer]
        t[closer] = t_best[closer]
        labels[closer] = sphere_labels[k]
        points = o + t_best[closer, None] * d[closer]
        normals[closer] = (points - centers[k]) / radii[k, None]

    def _hit_pillars(
        self, o: np.ndarray, d: np.ndarray, t: np.ndarray, labels: np.ndarray, normals: np.ndarray
    ) -> None:
        dxy = d[:, :2]
        oc = o[:2] - self._pillar_centers  # (P, 2)
        a = np.einsum("ij,ij->i", dxy, dxy)[:, None]  # (N, 1)
        b = dxy @ oc.T  # (N, P)
        disc = b * b - a * (np.einsum("ij,ij->i", oc, oc) - self._pillar_radii**2)
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        z_side = o[2] + t_side * d[:, 2:3]
        side_ok = (disc > 0) & (t_side > 1e-6) & (z_side >= 0) & (z_side <= self._pillar_heights)
        t_side = np.where(side_ok, t_side, np.inf)
        t_cap = (self._pillar_heights - o[2]) / d[:, 2:3]  # (N, P)
        cap_xy = o[:2] + t_cap[:, :, None] * dxy[:, None, :] - self._pillar_centers  # (N, P, 2)
        on_cap = (np.einsum("ijk,ijk->ij", cap_xy, cap_xy) <= self._pillar_radii**2) & (t_cap > 1e-6)
        t_cap = np.where(on_cap, t_cap, np.inf)
        ts = np.minimum(t_side, t_cap)
        best = np.argmin(ts, axis=1)
        rows = np.arange(ts.shape[0])
        t_best = ts[rows, best]
        closer = t_best < t
        if not closer.any():
            return
        k = best[closer]
        t[closer] = t_best[closer]
        labels[closer] = self._pillar_labels[k]
        is_cap = t_cap[rows, best][closer] <= t_side[rows, best][closer]
        points = o[:2] + t_best[closer, None] * dxy[closer]
        side_normals = np.zeros((k.size, 3))
        side_normals[:, :2] = (points - self._pillar_centers[k]) / self._pillar_radii[k, None]
        side_normals[is_cap] = (0.0, 0.0, 1.0)
        normals[closer] = side_normals

    def _shade(
        self, o: np.ndarray, d: np.ndarray, t: np.ndarray, labels: np.ndarray, normals: np.ndarray
    ) -> np.ndarray:
        lambert = self._ambient + (1 - self._ambient) * np.clip(normals @ self._sun, 0.0, 1.0)
        color = self._colors[labels + 1] * lambert[:, None]
        ground = labels == LABEL_GROUND
        if ground.any():
            tg = t[ground]
            xy = o[:2] + tg[:, None] * d[ground, :2]
            tiles = np.floor(xy / GROUND_TILE_M).astype(np.int64)
            checker = ((tiles[:, 0] + tiles[:, 1]) & 1) * 0.12
            shade = self._ground_shades[tiles[:, 0] % GROUND_TEXTURE_SIZE, tiles[:, 1] % GROUND_TEXTURE_SIZE] + checker
            haze = np.exp(-tg / HAZE_DISTANCE_M)[:, None]
            lit = (shade * lambert[ground])[:, None] * GROUND_COLOR
            color[ground] = haze * lit + (1 - haze) * SKY_HORIZON
        sky = labels == LABEL_SKY
        if sky.any():
            up = np.sqrt(np.clip(d[sky, 2], 0.0, 1.0))[:, None]
            color[sky] = (1 - up) * SKY_HORIZON + up * SKY_ZENITH
        return color * self._gain
