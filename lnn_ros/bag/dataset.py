"""Bags of camera, IMU and recorded commands -> training sequences with Δt from stamps.

For every IMU message (in stamp order) one training step is made:

* ``x``: the IMU fields in ``imu_fields`` order (the manifest's feature order, e.g.
  ``angular_velocity.x``, ..., ``linear_acceleration.z``);
* ``dt_s``: seconds since the previous step's stamp (0 for the first step of a sequence,
  which matches the engine: its first message only initialises the clock);
* ``y``: the recorded command valid at that stamp (the last one with stamp ``<=``), as the
  Twist fields in ``targets`` order;
* camera datasets: the frame :class:`~lnn_ros.runtime.PolicyRunner` holds at that step, i.e. the
  newest frame *received before* the IMU message in the bag's receive (log) order, which is
  what ``lnn-ros replay`` and the node feed it (frames not newer than the previous one are left
  out, as the runner drops them), stored once per frame (``frames`` [N,H,W,C] uint8) with a
  per-step index (``frame_index`` [T]); :meth:`BagSequence.images` gathers the [T,H,W,C] view.

Steps without a valid command (before the first one, or the newest older than
``max_command_age_s``) or, for camera datasets, without a recent enough frame are left out,
and a sequence is split there and wherever consecutive IMU stamps are more than
``max_gap_s`` apart (where the engine would reset). Repeated IMU stamps are dropped (the
engine drops them too). Everything left out is counted per reason in
:attr:`BagDataset.dropped` (:data:`DROP_REASONS` says what each reason means), the gaps in
:attr:`BagDataset.gaps`; :meth:`BagDataset.report` prints them one line each.

``lnn-ros train DATA`` trains on a bag or a folder of bags (recognised without ``--format``)
through :func:`training_data`, which also describes the data for the checkpoint (features,
outputs and their limits, Δt range, topics; every sequence labelled with its bag, so
validation holds out whole flights); ``lnn-ros bag-to-dataset`` writes
an ``.npz`` with other settings, or with ``--shards`` one ``.npz`` per bag, converted in
parallel processes (:func:`write_shards`), for ``lnn-ros train --stream``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lnn_ros.bag.errors import BagError
from lnn_ros.bag.reader import BagReader, MessageOrder
from lnn_ros.bag.topics import SUPPORTED_TYPES, BagTopics, topic_key
from lnn_ros.bundle.manifest import IMAGE_ENCODINGS, IMU_FIELDS, TWIST_FIELDS, CameraSpec, Manifest
from lnn_ros.bundle.preprocess import Preprocess
from lnn_ros.runtime.image import ImageDecoder
from lnn_ros.runtime.records import Command, ImageFrame, ImuSample, Stream
from lnn_ros.training.data import DescribedData, TimedSequence
from lnn_ros.training.loaders import is_bag
from lnn_ros.units import NS_PER_S

DEFAULT_IMU_FIELDS = IMU_FIELDS[:6]  # angular velocity and linear acceleration
DEFAULT_TARGETS = ("linear.x", "linear.y", "linear.z", "angular.z")

DROP_REASONS = {
    "imu_duplicate_stamp": "IMU samples repeating the previous stamp (the engine drops them too)",
    "imu_nonfinite": "IMU samples with a NaN or infinite value",
    "imu_before_first_command": "IMU samples before the first recorded command (no target yet)",
    "imu_stale_command": "IMU samples whose newest command is older than max_command_age_s",
    "imu_nonfinite_command": "IMU samples whose command has a NaN or infinite value",
    "imu_without_frame": "IMU samples without a camera frame newer than max_frame_age_s",
    "frame_unusable": "camera frames of an unknown encoding or another size than the first",
    "frame_duplicate_stamp": "camera frames repeating the previous stamp (the runtime drops them too)",
    "frame_out_of_order": "camera frames stamped before the previous frame (the runtime drops them too)",
    "short_sequence_steps": "IMU samples in stretches shorter than min_steps",
}
"""What each key of :attr:`BagDataset.dropped` counts."""

FEATURE_UNITS = {"angular_velocity": "rad/s", "linear_acceleration": "m/s^2", "orientation": ""}
OUTPUT_NAMES = {
    "linear.x": "vx", "linear.y": "vy", "linear.z": "vz",
    "angular.x": "roll_rate", "angular.y": "pitch_rate", "angular.z": "yaw_rate",
}
OUTPUT_UNITS = {"linear": "m/s", "angular": "rad/s"}
MIN_LIMIT = 1e-3
"""The output limit of a command field that is 0 throughout the data (a range must stay)."""
ENCODER_SIZE = (64, 48)
"""Width and height camera frames are preprocessed to for training by default (the shipped policies')."""
MAX_FRAMES = 1 << 24
"""Frames a training set can hold: a float32 frame-index column represents every integer below this."""


def training_camera(width: int, height: int) -> CameraSpec:
    """The camera section frames are preprocessed with for training: rgb8 at ``width`` x ``height``
    from any Image encoding or jpeg / png, by the runtime's :class:`~lnn_ros.runtime.image.ImageDecoder`
    (mean / std do not enter the pixels; the trained policy sets them)."""
    return CameraSpec(width, height, "rgb8", 1, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), preprocess=Preprocess())


def find_camera_topic(path: str | Path, topic: str | None = None) -> str | None:
    """The camera topic of the (first) bag at ``path``: ``topic`` if given, else the default
    ``camera/image_raw`` if present, else its only Image / CompressedImage topic; None when it has
    no camera topic.

    Raises:
        BagError: several image topics and none is the default (name one with ``--camera-topic``).
    """
    if topic is not None:
        return topic
    with BagReader(bag_paths(path)[0], BagTopics(), streams=[Stream.IMU]) as reader:
        images = {name: info.msgtype for name, info in reader.info.topics.items() if info.msgtype in SUPPORTED_TYPES[Stream.CAMERA]}
    default = BagTopics().camera
    for name in images:
        if topic_key(name) == topic_key(default):
            return name
    if len(images) > 1:
        raise BagError(
            f"Bag {str(path)!r} has several camera topics ({', '.join(sorted(images))}); pick one with --camera-topic "
            "or train without the camera with --no-camera."
        )
    return next(iter(images), None)
"""The output limit of a command field that is 0 throughout the data (a range must stay)."""


@dataclass(frozen=True)
class DatasetConfig:
    """How a bag becomes training sequences.

    Attributes:
        topics: topic names and types.
        imu_fields: IMU fields that form ``x``, in order (see ``IMU_FIELDS``).
        targets: Twist fields of the recorded command that form ``y``, in order.
        camera: include camera frames (the camera topic is then required).
        max_gap_s: consecutive IMU stamps further apart than this start a new sequence.
        max_command_age_s: a recorded command older than this is not valid any more.
        max_frame_age_s: a camera frame older than this is not used (camera datasets).
        min_steps: shorter sequences are dropped.
        strict: raise on any bag problem instead of counting it.
        detect_types: take the streams' message types from the bag (``topics``' types are then
            defaults); ``lnn-ros train`` does.
        camera_spec: a bundle's camera section: every frame (any size, encoding or jpeg / png the
            bundle's ``preprocess`` takes) goes through the runtime's preprocessing
            (:meth:`lnn_ros.runtime.image.ImageDecoder.pixels`) and is stored as the encoder sees
            it; ``None`` stores raw ``rgb8`` / ``bgr8`` / ``mono8`` frames as recorded.
    """

    topics: BagTopics = BagTopics()
    imu_fields: tuple[str, ...] = DEFAULT_IMU_FIELDS
    targets: tuple[str, ...] = DEFAULT_TARGETS
    camera: bool = False
    max_gap_s: float = 0.5
    max_command_age_s: float = 0.5
    max_frame_age_s: float = 0.5
    min_steps: int = 2
    strict: bool = False
    camera_spec: CameraSpec | None = None
    detect_types: bool = False

    def __post_init__(self) -> None:
        for name, values, known in (("imu_fields", self.imu_fields, IMU_FIELDS), ("targets", self.targets, TWIST_FIELDS)):
            unknown = [v for v in values if v not in known]
            if not values or unknown:
                raise BagError(f"DatasetConfig.{name} must list some of {list(known)}, got {list(values)!r}.")
        for name in ("max_gap_s", "max_command_age_s", "max_frame_age_s"):
            if not getattr(self, name) > 0:
                raise BagError(f"DatasetConfig.{name} must be > 0 s, got {getattr(self, name)!r}.")
        if self.min_steps < 1:
            raise BagError(f"DatasetConfig.min_steps must be >= 1, got {self.min_steps!r}.")

    @classmethod
    def for_manifest(cls, manifest: Manifest, **overrides: object) -> DatasetConfig:
        """The IMU fields, targets and camera use of an existing bundle (e.g. to fine-tune it)."""
        fields_ = tuple(f.field for f in manifest.features if f.source == "imu" and f.field is not None)
        targets = tuple(o.twist_field for o in manifest.outputs if o.twist_field is not None)
        if len(targets) != len(manifest.outputs):
            raise BagError(
                f"Bundle {manifest.name!r} has outputs without a twist_field; a bag's cmd_vel cannot be its target."
            )
        return cls(
            imu_fields=fields_,
            targets=targets,
            camera=manifest.uses_camera,
            camera_spec=manifest.camera,
            **overrides,  # type: ignore[arg-type]
        )


class BagSequence(NamedTuple):
    """One gap-free stretch of a bag.

    Attributes:
        stamps_ns: IMU stamps [T] (int64).
        x: IMU features [T, F] float32.
        dt_s: seconds since the previous step [T] float32 (``dt_s[0] == 0``).
        y: recorded command [T, O] float32.
        frames: camera frames [N, H, W, C] uint8, or None.
        frame_index: row of ``frames`` used at each step [T], or None.
    """

    stamps_ns: np.ndarray
    x: np.ndarray
    dt_s: np.ndarray
    y: np.ndarray
    frames: np.ndarray | None = None
    frame_index: np.ndarray | None = None

    def images(self) -> np.ndarray:
        """The frame of every step, [T, H, W, C] uint8 (a gathered copy)."""
        if self.frames is None or self.frame_index is None:
            raise BagError("This sequence has no camera frames; build the dataset with camera=True.")
        return self.frames[self.frame_index]


@dataclass(frozen=True)
class BagDataset:
    """Sequences from one or more bags, with the names of their columns.

    Attributes:
        flights: the bag each sequence comes from (its name), one per sequence.
        dropped: samples or frames left out, per reason (:data:`DROP_REASONS`).
        gaps: places where consecutive IMU stamps were more than ``max_gap_s`` apart (a sequence
            was split there).
        topics: per stream read, the bag's topic and message type (of the first bag).
    """

    sequences: tuple[BagSequence, ...]
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    frame_encoding: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    flights: tuple[str, ...] = ()
    gaps: int = 0
    topics: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return sum(len(s.x) for s in self.sequences)

    def report(self, max_gap_s: float | None = None) -> list[str]:
        """What was left out and why, one line per reason, then the gaps and the reader's warnings."""
        lines = [f"dropped  {count} {DROP_REASONS.get(reason, reason)} [{reason}]" for reason, count in self.dropped.items()]
        if self.gaps:
            longer = "" if max_gap_s is None else f" longer than {max_gap_s:g} s"
            lines.append(f"gaps     {self.gaps} IMU stamp gaps{longer}: the sequence was split there (the engine resets)")
        lines.extend(f"warning  {warning}" for warning in self.warnings)
        return lines

    def timed_sequences(self) -> list[TimedSequence]:
        """The sequences as the training API's ``TimedSequence`` (x, dt_s, y)."""
        from lnn_ros.training.data import TimedSequence

        return [TimedSequence(s.x, s.dt_s, s.y) for s in self.sequences]


class _Streams(NamedTuple):
    imu: list[ImuSample]
    frames: list[ImageFrame]
    commands: list[Command]
    imu_received: list[int]  # position of each IMU message in the bag's receive (log) order
    frames_received: list[int]


def _read_streams(path: Path, config: DatasetConfig, warnings: list[str], topics: dict[str, dict[str, str]]) -> _Streams:
    required = [Stream.IMU, Stream.COMMAND] + ([Stream.CAMERA] if config.camera else [])
    streams = _Streams([], [], [], [], [])
    reader = BagReader(path, config.topics, streams=required, required=required, strict=config.strict,
                       detect_types=config.detect_types)
    with reader:
        for stream in required:
            topics.setdefault(stream.value, {"topic": reader.topic(stream), "type": str(reader.msgtype(stream))})
        for position, message in enumerate(reader.messages(MessageOrder.LOG)):
            if message.stream is Stream.IMU:
                streams.imu.append(message.record)  # type: ignore[arg-type]
                streams.imu_received.append(position)
            elif message.stream is Stream.CAMERA:
                streams.frames.append(message.record)  # type: ignore[arg-type]
                streams.frames_received.append(position)
            else:
                streams.commands.append(message.record)  # type: ignore[arg-type]
        warnings.extend(reader.warnings.lines())
    return streams


def _frame_pixels(frame: ImageFrame) -> np.ndarray | None:
    channels = IMAGE_ENCODINGS.get(frame.encoding)
    if channels is None:
        return None
    row = frame.width * channels
    flat = np.frombuffer(frame.data, dtype=np.uint8)
    if frame.step < row or flat.size != frame.step * frame.height:
        return None
    return flat.reshape(frame.height, frame.step)[:, :row].reshape(frame.height, frame.width, channels)


def _count(dropped: dict[str, int], reason: str, n: int) -> None:
    if n:
        dropped[reason] = dropped.get(reason, 0) + int(n)


class _BagPart(NamedTuple):
    sequences: list[BagSequence]
    encoding: str | None
    gaps: int


def _sequences_of_bag(
    path: Path, config: DatasetConfig, dropped: dict[str, int], warnings: list[str], topics: dict[str, dict[str, str]]
) -> _BagPart:
    streams = _read_streams(path, config, warnings, topics)
    if not streams.imu:
        raise BagError(f"Bag {str(path)!r} has no readable IMU message on {config.topics.imu!r}; nothing to train on.")
    if not streams.commands:
        raise BagError(
            f"Bag {str(path)!r} has no readable recorded command on {config.topics.command!r}; there is no target to learn."
        )
    # IMU: stamp order, repeated stamps dropped (the engine drops them too).
    by_stamp = sorted(range(len(streams.imu)), key=lambda i: streams.imu[i].stamp_ns)
    imu = [streams.imu[i] for i in by_stamp]
    received = np.array([streams.imu_received[i] for i in by_stamp], dtype=np.int64)
    stamps = np.array([s.stamp_ns for s in imu], dtype=np.int64)
    keep = np.ones(len(imu), dtype=bool)
    keep[1:] = np.diff(stamps) > 0
    _count(dropped, "imu_duplicate_stamp", (~keep).sum())
    imu = [s for s, k in zip(imu, keep) if k]
    stamps, received = stamps[keep], received[keep]
    raw = np.empty((len(imu), len(IMU_FIELDS)), dtype=np.float64)
    for row, sample in enumerate(imu):
        raw[row, 0:3] = sample.angular_velocity
        raw[row, 3:6] = sample.linear_acceleration
        raw[row, 6:10] = sample.orientation
    x = raw[:, [IMU_FIELDS.index(f) for f in config.imu_fields]]
    valid = np.isfinite(x).all(axis=1)
    _count(dropped, "imu_nonfinite", (~valid).sum())

    # Targets: the last recorded command with stamp <= the IMU stamp, if recent enough.
    commands = sorted(streams.commands, key=lambda c: c.stamp_ns)
    command_ns = np.array([c.stamp_ns for c in commands], dtype=np.int64)
    twists = np.stack([c.twist for c in commands])[:, [TWIST_FIELDS.index(t) for t in config.targets]]
    pick = np.searchsorted(command_ns, stamps, side="right") - 1
    before = pick < 0
    stale = ~before & (stamps - command_ns[np.maximum(pick, 0)] > int(config.max_command_age_s * NS_PER_S))
    nonfinite = ~before & ~stale & ~np.isfinite(twists[np.maximum(pick, 0)]).all(axis=1)
    for reason, mask in (("imu_before_first_command", before), ("imu_stale_command", stale), ("imu_nonfinite_command", nonfinite)):
        _count(dropped, reason, (valid & mask).sum())
    valid &= ~(before | stale | nonfinite)
    y = twists[np.maximum(pick, 0)]

    frames_array: np.ndarray | None = None
    frame_pick: np.ndarray | None = None
    encoding: str | None = None
    if config.camera:
        frames_array, frame_ns, frame_received, encoding = _stack_frames(
            path, streams.frames, streams.frames_received, dropped, config.camera_spec
        )
        # The runner's rule: the newest frame received before the IMU message (bag receive order).
        frame_pick = np.searchsorted(frame_received, received, side="left") - 1
        has_frame = (frame_pick >= 0) & (
            stamps - frame_ns[np.maximum(frame_pick, 0)] <= int(config.max_frame_age_s * NS_PER_S)
        )
        _count(dropped, "imu_without_frame", (valid & ~has_frame).sum())
        valid &= has_frame

    # Split at left-out steps and at gaps.
    gap_ns = int(config.max_gap_s * NS_PER_S)
    gaps = int((np.diff(stamps) > gap_ns).sum())
    sequences: list[BagSequence] = []
    start = None
    for i in range(len(stamps) + 1):
        boundary = i == len(stamps) or not valid[i] or (start is not None and stamps[i] - stamps[i - 1] > gap_ns)
        if start is not None and boundary:
            sequences.append(_make_sequence(stamps[start:i], x[start:i], y[start:i], frames_array, frame_pick, start, i))
            start = None
        if i < len(stamps) and valid[i] and start is None:
            start = i
    kept = [s for s in sequences if len(s.x) >= config.min_steps]
    _count(dropped, "short_sequence_steps", sum(len(s.x) for s in sequences if len(s.x) < config.min_steps))
    return _BagPart(kept, encoding, gaps)


def _stack_frames(
    path: Path, frames: list[ImageFrame], received: list[int], dropped: dict[str, int], camera: CameraSpec | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Usable frames in receive order, with their stamps and receive positions.

    As the runtime holds them: a frame whose stamp is not newer than the last kept one is left
    out (``frame_duplicate_stamp`` / ``frame_out_of_order``).
    """
    decoder = None if camera is None else ImageDecoder(camera)
    pixels: list[np.ndarray] = []
    stamps: list[int] = []
    positions: list[int] = []
    shape: tuple[int, ...] | None = None
    encoding: str | None = None
    for frame, position in zip(frames, received):
        if stamps and frame.stamp_ns <= stamps[-1]:
            _count(dropped, "frame_duplicate_stamp" if frame.stamp_ns == stamps[-1] else "frame_out_of_order", 1)
            continue
        if decoder is None:
            image, frame_encoding = _frame_pixels(frame), frame.encoding
        else:  # the runtime's preprocessing: what the encoder will see in flight
            image, frame_encoding = decoder.pixels(frame).pixels, decoder.camera.encoding
            image = None if image is None else image.copy()
        if image is None or (shape is not None and (image.shape != shape or frame_encoding != encoding)):
            _count(dropped, "frame_unusable", 1)
            continue
        shape, encoding = image.shape, frame_encoding
        pixels.append(image)
        stamps.append(frame.stamp_ns)
        positions.append(position)
    if not pixels:
        raise BagError(
            f"Bag {str(path)!r} has no usable camera frame (encodings {sorted(IMAGE_ENCODINGS)} with a consistent "
            "size); build the dataset without the camera or fix the camera topic."
        )
    assert encoding is not None
    return np.stack(pixels), np.array(stamps, dtype=np.int64), np.array(positions, dtype=np.int64), encoding


def _make_sequence(
    stamps: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    frames: np.ndarray | None,
    frame_pick: np.ndarray | None,
    start: int,
    stop: int,
) -> BagSequence:
    dt_s = np.zeros(len(stamps), dtype=np.float64)
    dt_s[1:] = np.diff(stamps) / NS_PER_S
    if frames is None or frame_pick is None:
        return BagSequence(stamps.copy(), x.astype(np.float32), dt_s.astype(np.float32), y.astype(np.float32))
    used = frame_pick[start:stop]
    first, last = int(used.min()), int(used.max())
    return BagSequence(
        stamps.copy(),
        x.astype(np.float32),
        dt_s.astype(np.float32),
        y.astype(np.float32),
        frames[first : last + 1].copy(),
        (used - first).astype(np.int64),
    )


def bag_paths(path: str | Path) -> list[Path]:
    """A bag, or every bag directly inside a folder (rosbag2 folders, .mcap/.db3/.bag files)."""
    root = Path(path)
    if not root.exists():
        raise BagError(f"Dataset path {str(root)!r} does not exist; pass a bag or a folder of bags.")
    if root.is_file() or (root / "metadata.yaml").is_file():
        return [root]
    found = sorted(p for p in root.iterdir() if is_bag(p))
    if found:
        return found
    return [root]  # a bag folder without metadata.yaml: the reader handles it or explains


def bags_to_dataset(paths: Iterable[str | Path], config: DatasetConfig = DatasetConfig()) -> BagDataset:
    """Read every bag and build the sequences (see the module docstring).

    Raises:
        BagError: a bag lacks a required topic, has no usable message, or nothing is left.
    """
    sequences: list[BagSequence] = []
    flights: list[str] = []
    dropped: dict[str, int] = {}
    warnings: list[str] = []
    topics: dict[str, dict[str, str]] = {}
    encodings: set[str] = set()
    shapes: set[tuple[int, ...]] = set()
    gaps = 0
    for path in [p for given in paths for p in bag_paths(given)]:
        part = _sequences_of_bag(path, config, dropped, warnings, topics)
        sequences.extend(part.sequences)
        flights.extend([str(path)] * len(part.sequences))
        gaps += part.gaps
        if part.encoding is not None:
            encodings.add(part.encoding)
            shapes.update(s.frames.shape[1:] for s in part.sequences if s.frames is not None)
    if len(encodings) > 1 or len(shapes) > 1:
        raise BagError(f"The bags' camera frames differ in encoding or size ({sorted(encodings)}, {sorted(shapes)}).")
    if not sequences:
        raise BagError(
            f"No training sequence of at least {config.min_steps} steps is left (dropped: {dropped}); check that "
            "the command topic overlaps the IMU in time and raise max_command_age_s or max_gap_s if needed."
        )
    return BagDataset(
        sequences=tuple(sequences),
        feature_names=config.imu_fields,
        target_names=config.targets,
        frame_encoding=encodings.pop() if encodings else None,
        dropped=dropped,
        warnings=tuple(warnings),
        flights=tuple(flights),
        gaps=gaps,
        topics=topics,
    )


def load_sequences(path: Path) -> list[TimedSequence]:
    """Training loader: a bag or a folder of bags -> ``list[TimedSequence]`` (IMU-only, defaults).

    ``lnn-ros train BAG_OR_FOLDER`` picks it for bags by itself (``--format`` names it explicitly).
    """
    return bags_to_dataset([path]).timed_sequences()


def describe(dataset: BagDataset, config: DatasetConfig) -> dict[str, Any]:
    """What a model trained on ``dataset`` takes and gives, in the export spec's keys
    (docs/export-spec.md): the IMU features, the command outputs with limits of ± the largest
    |value| recorded (at least :data:`MIN_LIMIT`), and the Δt range of the stamps with the gap
    at which the sequences were split as ``max_gap_s``.

    Raises:
        BagError: the data has no positive Δt (every sequence a single step).
    """
    features = [
        {"name": f.replace(".", "_"), "source": "imu", "field": f, "unit": FEATURE_UNITS[f.split(".")[0]]}
        for f in dataset.feature_names
    ]
    largest = np.max(np.abs(np.concatenate([s.y for s in dataset.sequences])), axis=0)
    outputs = [
        {"name": OUTPUT_NAMES[t], "unit": OUTPUT_UNITS[t.split(".")[0]], "min": -limit, "max": limit, "twist_field": t}
        for t, limit in zip(dataset.target_names, (max(float(v), MIN_LIMIT) for v in largest))
    ]
    dts = np.concatenate([np.diff(s.stamps_ns) for s in dataset.sequences]) / NS_PER_S
    if not dts.size:
        raise BagError("Every training sequence is a single step, so the data has no Δt range; lower max_gap_s or check the stamps.")
    dt = {"min_s": float(dts.min()), "max_s": float(dts.max()), "max_gap_s": float(config.max_gap_s)}
    return {"features": features, "outputs": outputs, "dt": dt}


def training_data(
    path: Path,
    *,
    imu_topic: str | None = None,
    command_topic: str | None = None,
    camera_topic: str | None = None,
    camera: bool | None = None,
    image_size: tuple[int, int] = ENCODER_SIZE,
) -> DescribedData:
    """``lnn-ros train``'s bag reader: a bag or a folder of bags -> sequences labelled with their
    bag, described for the checkpoint (:func:`describe`), with the report of what was dropped.

    The topics default to :class:`BagTopics`' names; their message types are read from the bag.
    With a camera (``camera=None``: when the bags have a camera topic, :func:`find_camera_topic`),
    every frame is preprocessed as in flight to ``image_size`` (width, height;
    :func:`training_camera`), the rows are ``[IMU features, index of the held frame]`` into
    :attr:`DescribedData.frames` and :attr:`DescribedData.camera` says how the frames were made.

    Raises:
        BagError: a bag lacks the topic or has it with a type the stream cannot read (the
            message lists the bag's topics), or nothing is left to train on.
    """
    if camera is False and camera_topic is not None:
        raise BagError(f"--camera-topic {camera_topic!r} and --no-camera contradict each other; drop one.")
    camera_topic = None if camera is False else find_camera_topic(path, camera_topic)
    if camera and camera_topic is None:
        raise BagError(f"Bag {str(path)!r} has no camera topic (Image or CompressedImage); name it with --camera-topic.")
    spec = None if camera_topic is None else training_camera(*image_size)
    names = {
        stream: topic
        for stream, topic in (("imu", imu_topic), ("command", command_topic), ("camera", camera_topic))
        if topic is not None
    }
    config = DatasetConfig(topics=BagTopics(**names), detect_types=True, camera=spec is not None, camera_spec=spec)
    dataset = bags_to_dataset([path], config)
    source: dict[str, Any] = {
        "kind": "bags",
        "bags": sorted(set(dataset.flights)),
        "topics": dataset.topics,
        "max_command_age_s": config.max_command_age_s,
        "dropped": dict(dataset.dropped),
        "gaps": dataset.gaps,
    }
    sequences = dataset.timed_sequences()
    frames = None
    if spec is not None:
        sequences, frames = _frame_indexed(dataset)
        source["camera"] = {"width": spec.width, "height": spec.height, "frames": len(frames), "held": "newest received before the IMU message"}
    return DescribedData(
        sequences=tuple(sequences),
        flights=dataset.flights,
        export=describe(dataset, config),
        source=source,
        report=tuple(dataset.report(config.max_gap_s)),
        frames=frames,
        camera=spec,
    )


def _frame_indexed(dataset: BagDataset) -> tuple[list[TimedSequence], np.ndarray]:
    """Rows ``[x, held frame index]`` into one array of every sequence's frames."""
    sequences: list[TimedSequence] = []
    frames: list[np.ndarray] = []
    offset = 0
    for s in dataset.sequences:
        assert s.frames is not None and s.frame_index is not None
        index = (s.frame_index + offset).astype(np.float32)[:, None]
        sequences.append(TimedSequence(np.concatenate([s.x, index], axis=1), s.dt_s, s.y))
        frames.append(s.frames)
        offset += len(s.frames)
    if offset >= MAX_FRAMES:
        raise BagError(f"{offset} camera frames exceed the {MAX_FRAMES} a training set can index; train on fewer bags.")
    return sequences, np.concatenate(frames, axis=0)


def save_dataset_npz(dataset: BagDataset, path: str | Path) -> Path:
    """Write ``x_i, dt_s_i, y_i`` (the training ``npz`` format) plus ``stamps_ns_i``, camera
    ``frames_i`` / ``frame_index_i`` and the column names ``feature_names`` / ``target_names``."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays: dict[str, np.ndarray] = {
        "feature_names": np.array(dataset.feature_names),
        "target_names": np.array(dataset.target_names),
    }
    for i, sequence in enumerate(dataset.sequences):
        arrays.update({f"x_{i}": sequence.x, f"dt_s_{i}": sequence.dt_s, f"y_{i}": sequence.y, f"stamps_ns_{i}": sequence.stamps_ns})
        if sequence.frames is not None and sequence.frame_index is not None:
            arrays.update({f"frames_{i}": sequence.frames, f"frame_index_{i}": sequence.frame_index})
    if dataset.frame_encoding is not None:
        arrays["frame_encoding"] = np.array(dataset.frame_encoding)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return path


class ShardSummary(NamedTuple):
    """One bag written as one ``.npz`` shard by :func:`write_shards`."""

    bag: Path
    path: Path
    sequences: int
    steps: int
    dropped: dict[str, int]
    warnings: tuple[str, ...]


def _shard_name(bag: Path) -> str:
    return (bag.stem if bag.is_file() else bag.name) + ".npz"


def _write_shard(bag: Path, out: Path, config: DatasetConfig) -> ShardSummary:
    try:
        dataset = bags_to_dataset([bag], config)
    except BagError as exc:
        message = str(exc)
        raise BagError(message if str(bag) in message else f"Bag {str(bag)!r}: {message}") from None
    staged = out.with_name(f".{out.stem}.{os.getpid()}.tmp.npz")
    save_dataset_npz(dataset, staged)
    os.replace(staged, out)  # a shard appears whole or not at all
    return ShardSummary(bag, out, len(dataset.sequences), dataset.steps, dataset.dropped, dataset.warnings)


def write_shards(
    paths: Iterable[str | Path], out_dir: str | Path, config: DatasetConfig = DatasetConfig(), workers: int | None = None
) -> list[ShardSummary]:
    """Write every bag as its own ``.npz`` shard in ``out_dir`` (``<bag name>.npz``), ``workers``
    bags at a time in separate processes (default: one per core). The shards are the same as
    a serial run's (each depends on its bag only) and are reported in the order of the bags.

    ``lnn-ros train --stream OUT_DIR`` then trains on them without loading them all.

    Raises:
        BagError: two bags with the same name, or a bag that gives no training data (named;
            the bags not yet started are cancelled).
    """
    bags = [p for given in paths for p in bag_paths(given)]
    folder = Path(out_dir)
    names: dict[str, Path] = {}
    for bag in bags:
        other = names.setdefault(_shard_name(bag), bag)
        if other != bag:
            raise BagError(f"Bags {str(other)!r} and {str(bag)!r} would both be written as {_shard_name(bag)!r}; rename one.")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise BagError(f"workers must be >= 1, got {workers!r}.")
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(bag, folder / _shard_name(bag), config) for bag in bags]
    if workers == 1 or len(jobs) == 1:
        return [_write_shard(*job) for job in jobs]
    # spawn: a fresh interpreter per worker, safe whatever threads the caller runs (torch, ROS)
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_write_shard, *job) for job in jobs]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise
