"""Expert demonstrations -> training sequences laid out exactly as the runtime fuses the streams.

The runtime (:class:`lnn_ros.runtime.PolicyRunner`) steps the policy once per IMU sample and
holds the newest camera embedding *received before* that sample; the simulator delivers
events in stamp order with the IMU first on equal stamps. So for IMU sample ``k`` the held
frame is the newest image with ``stamp < imu_stamp[k]``::

    frame[k] = searchsorted(image_stamps, imu_stamps[k], side="left") - 1      (-1: none yet)

and, as in the runner, nothing happens before the first frame: a sequence starts at the first
IMU sample that has a frame, with ``dt_s[0] = 0`` (the engine's first message only starts its
clock; Δt = 0 leaves the state unchanged). Later Δt are differences of the integer stamps,
clamped to the bundle's ``dt.max_s`` like the engine does; a gap above ``dt.max_gap_s`` (the
engine resets there) starts a new sequence.

Each step's input row is ``[gyro xyz, accel xyz, frame]``: the six raw IMU values and the
index of the held frame in :attr:`PolicyDataset.frames` (a float32 holds it exactly below
2^24). The trainer normalises the IMU columns; the frame column passes through with mean 0,
std 1 and is turned into an embedding by the encoder in the training model.

Frames: every demonstration frame goes through the runtime's preprocessing
(:meth:`lnn_ros.runtime.image.ImageDecoder.pixels`, with the :data:`PREPROCESS` the bundles
declare) before it is stored, so the encoder is trained on exactly what it sees in flight,
whatever size the simulator rendered at (:func:`encoder_pixels`).

Numpy only (no torch), so datasets can be built anywhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from lnn_ros.bundle import CameraSpec
from lnn_ros.bundle.preprocess import Preprocess
from lnn_ros.runtime.image import ImageDecoder
from lnn_ros.runtime.records import ImageFrame, ImuSample, SensorRecord
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.demonstrations import Demonstration
from lnn_ros.training.data import TimedSequence
from lnn_ros.units import NS_PER_S

IMU_FIELDS = (
    "angular_velocity.x",
    "angular_velocity.y",
    "angular_velocity.z",
    "linear_acceleration.x",
    "linear_acceleration.y",
    "linear_acceleration.z",
)
IMU_FEATURE_NAMES = ("gyro_x", "gyro_y", "gyro_z", "accel_x", "accel_y", "accel_z")
IMU_UNITS = ("rad/s",) * 3 + ("m/s^2",) * 3
FRAME_COLUMN = len(IMU_FIELDS)  # x[:, 6] is the held frame's index
MAX_FRAMES = 1 << 24  # float32 represents every integer below this exactly
PREPROCESS = Preprocess()
"""What the drone bundles declare: every Image encoding and jpeg / png, centre crop, area / bilinear resize."""


def training_camera(width: int, height: int) -> CameraSpec:
    """The camera section frames are preprocessed with for training (mean / std do not enter :meth:`pixels`)."""
    return CameraSpec(width, height, "rgb8", 1, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), preprocess=PREPROCESS)


def encoder_pixels(images: np.ndarray, camera: CameraSpec) -> np.ndarray:
    """rgb8 frames [N, h, w, 3] (any size) -> what the encoder sees, uint8 [N, H, W, C], by the runtime's function.

    Raises:
        SimError: a frame the preprocessing refuses.
    """
    decoder = ImageDecoder(camera)
    out = np.empty((len(images), camera.height, camera.width, camera.channels), dtype=np.uint8)
    if len(images) == 0:
        return out
    height, width = images.shape[1:3]
    for i, image in enumerate(images):
        frame = ImageFrame(0, height, width, "rgb8", width * 3, np.ascontiguousarray(image).data)
        result = decoder.pixels(frame)
        if result.pixels is None:
            raise SimError(f"Frame {i} ({width}x{height} rgb8) was refused by the preprocessing: {result.status.value}.")
        out[i] = result.pixels
    return out


class DtRule(NamedTuple):
    """The engine's Δt handling the sequences reproduce (the bundle manifest's ``dt``)."""

    max_dt_s: float
    max_gap_s: float


class PolicyDataset(NamedTuple):
    """Training data of an image + IMU policy.

    Attributes:
        sequences: x [T, 7] (six raw IMU values, then the index of the held frame), dt_s [T],
            y [T, 4] (the expert's ``[vx, vy, vz, yaw_rate]`` at each IMU stamp).
        frames: every camera image, uint8 [N, H, W, 3] (rgb8).
        seeds: the episode seed of each sequence.
    """

    sequences: list[TimedSequence]
    frames: np.ndarray
    seeds: tuple[int, ...]

    @property
    def steps(self) -> int:
        """Policy steps over all sequences."""
        return sum(len(s.x) for s in self.sequences)


def held_frames(imu_stamp_ns: np.ndarray, image_stamp_ns: np.ndarray, image_imu_count: np.ndarray | None = None) -> np.ndarray:
    """Index of the newest image received before each IMU sample (-1 before the first image).

    "Before" is the simulator's delivery order: with ``image_imu_count`` (IMU samples delivered
    before each image, as recorded) exactly that, so a frame delayed by camera latency is held
    only from its arrival on; without it, stamp order with the IMU first on equal stamps.
    """
    if image_imu_count is not None and len(image_imu_count) == len(image_stamp_ns):
        return np.searchsorted(np.asarray(image_imu_count), np.arange(len(imu_stamp_ns)), side="right") - 1
    return np.searchsorted(np.asarray(image_stamp_ns), np.asarray(imu_stamp_ns), side="left") - 1


def step_dt(imu_stamp_ns: np.ndarray, rule: DtRule) -> tuple[np.ndarray, np.ndarray]:
    """Δt of each step and where the engine would restart (first step, gaps above ``max_gap_s``).

    Returns:
        ``(dt_s float32 [T], starts bool [T])``; ``dt_s`` is 0 at every start and clamped to
        ``max_dt_s`` elsewhere.
    """
    stamps = np.asarray(imu_stamp_ns, dtype=np.int64)
    delta_s = np.diff(stamps, prepend=stamps[:1]) / NS_PER_S
    starts = np.zeros(len(stamps), dtype=bool)
    if len(stamps):
        starts[0] = True
    starts |= delta_s > rule.max_gap_s
    if (delta_s[1:] <= 0).any():
        raise SimError("IMU stamps must be strictly increasing in a demonstration; re-record it.")
    dt_s = np.where(starts, 0.0, np.minimum(delta_s, rule.max_dt_s)).astype(np.float32)
    return dt_s, starts


def demo_sequences(demo: Demonstration, frame_offset: int, rule: DtRule) -> list[TimedSequence]:
    """The sequences of one demonstration, its frames numbered from ``frame_offset``."""
    held = held_frames(demo.imu_stamp_ns, demo.image_stamp_ns, demo.image_imu_count)
    first = int(np.argmax(held >= 0)) if (held >= 0).any() else len(held)
    if len(held) - first < 2:
        return []
    stamps = demo.imu_stamp_ns[first:]
    dt_s, starts = step_dt(stamps, rule)
    imu = np.concatenate([demo.imu_angular_velocity[first:], demo.imu_linear_acceleration[first:]], axis=1)
    x = np.concatenate([imu, (held[first:] + frame_offset)[:, None]], axis=1).astype(np.float32)
    y = np.asarray(demo.imu_expert_command[first:], dtype=np.float32)
    bounds = [*np.flatnonzero(starts), len(stamps)]
    return [
        TimedSequence(x[a:b], dt_s[a:b], y[a:b]) for a, b in itertools.pairwise(bounds) if b - a >= 2
    ]


def build_dataset(demos: Sequence[Demonstration], rule: DtRule, camera: CameraSpec | None = None) -> PolicyDataset:
    """Concatenate the frames of ``demos`` and turn each into fused training sequences.

    With ``camera``, frames are stored preprocessed to its size (:func:`encoder_pixels`).

    Raises:
        SimError: no demonstration, image sizes that differ, or more frames than a float32 index holds.
    """
    if not demos:
        raise SimError("build_dataset needs at least one demonstration, got none.")
    shapes = {d.images.shape[1:] for d in demos if len(d.images)}
    if len(shapes) != 1:
        raise SimError(f"Demonstrations must share one image size, got {sorted(shapes)!r}.")
    sequences: list[TimedSequence] = []
    seeds: list[int] = []
    frames: list[np.ndarray] = []
    offset = 0
    for demo in demos:
        pieces = demo_sequences(demo, offset, rule)
        sequences += pieces
        seeds += [demo.seed] * len(pieces)
        frames.append(demo.images if camera is None else encoder_pixels(demo.images, camera))
        offset += len(demo.images)
    if offset >= MAX_FRAMES:
        raise SimError(f"{offset} frames exceed the {MAX_FRAMES} a float32 frame index can address; use fewer episodes.")
    if not sequences:
        raise SimError("No demonstration has two IMU samples after its first camera frame; record longer episodes.")
    return PolicyDataset(sequences, np.concatenate(frames, axis=0), tuple(seeds))


def image_statistics(frames: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of ``pixel / 255`` over uint8 frames [N, H, W, 3]."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise SimError(f"image_statistics needs rgb frames [N, H, W, 3] with N >= 1, got shape {frames.shape!r}.")
    sample = frames[:: max(1, len(frames) // 2000)].reshape(-1, 3).astype(np.float64) / 255.0
    mean = sample.mean(axis=0)
    std = np.maximum(sample.std(axis=0), 1e-3)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)  # type: ignore[return-value]


def demo_events(demo: Demonstration) -> list[SensorRecord]:
    """A demonstration's sensor messages again, in the simulator's delivery order (see :func:`held_frames`)."""
    height, width = demo.images.shape[1:3] if demo.images.ndim == 4 else (0, 0)
    if len(demo.image_imu_count) == len(demo.image_stamp_ns):
        # A frame delivered after n IMU samples comes before IMU sample n.
        order = sorted(
            [(i, 1, 0, i) for i in range(len(demo.imu_stamp_ns))]
            + [(int(n), 0, 1, j) for j, n in enumerate(demo.image_imu_count)]
        )
        keyed = [(int(demo.imu_stamp_ns[i]) if kind == 0 else int(demo.image_stamp_ns[i]), kind, i) for _, _, kind, i in order]
    else:
        keyed = sorted(
            [(int(s), 0, i) for i, s in enumerate(demo.imu_stamp_ns)] + [(int(s), 1, i) for i, s in enumerate(demo.image_stamp_ns)]
        )
    events: list[SensorRecord] = []
    for stamp, kind, i in keyed:
        if kind == 0:
            events.append(
                ImuSample(
                    stamp,
                    demo.imu_angular_velocity[i].astype(np.float64),
                    demo.imu_linear_acceleration[i].astype(np.float64),
                    demo.imu_orientation[i].astype(np.float64),
                )
            )
        else:
            events.append(ImageFrame(stamp, height, width, "rgb8", width * 3, demo.images[i].tobytes()))
    return events
