"""Fusing IMU, camera and vector inputs into engine steps: :class:`PolicyRunner`.

Fusion rule (the node, the bag replay and the simulator all use this one class):

* One stream *drives* the policy: every valid message of it is one engine step, stamped
  with that message's header stamp (Δt = difference of driver stamps; the engine's rules
  for first / duplicate / out-of-order / gap / NaN inputs apply). By default the driver is
  the IMU when the manifest has IMU features, else the caller's vector when it has vector
  features, else the camera. :attr:`PolicyConfig.driver` overrides it.
* Every other stream the manifest uses is *held*: its newest valid value is stored and used,
  unchanged, by every driver step until a newer one arrives. For the camera that value is
  the encoder's embedding: the encoder runs once per new frame, when the frame arrives, never
  per step. A step uses the newest held value received *before* it (by call order, not by
  stamp), which is what the sensors had delivered when the step was computed.
* No step is taken until every held stream has delivered a first valid value: driver
  messages before that are counted (``camera_waiting`` / ``imu_waiting`` /
  ``vector_waiting``) and leave the engine untouched (its stamp clock is not started).
* Held stamps follow the engine's rule: each held stream has its own
  :class:`~lnn_ros.engine.clock.StampClock` with the engine's ``max_gap_s``: a held message whose stamp equals the held one's is dropped
  (``<stream>_duplicate``), one up to ``max_gap_s`` older is dropped (``<stream>_out_of_order``),
  and one more than ``max_gap_s`` older is a restarted clock (a restarted camera driver, a
  looped bag, recovery from one frame stamped far ahead): it replaces the held value and stamp
  and is counted (``<stream>_clock_restart``), so the stream is never locked out by one bogus
  stamp. When the camera drives, a frame is dropped before decoding by the same rule against
  the engine's last stamp, and a larger jump back goes to the engine (a ``gap_reset``).
* A held message with NaN/Inf in a used field (or an embedding with NaN/Inf) is dropped
  (``<stream>_nonfinite_input``); a camera frame with the wrong encoding, size or layout is dropped
  (``camera_wrong_encoding`` / ``camera_wrong_size`` / ``camera_malformed``). Dropped messages never touch the held
  value or the state.
* :meth:`PolicyRunner.reset` zeroes the recurrent state and forgets every stamp (the next
  driver message only initialises the clock). Held values are inputs, not state: they are
  kept, so a camera policy resumes on the next driver message with the newest frame.
* :meth:`PolicyRunner.hover_command` is the failsafe command: zero for every output, clamped
  into the output's manifest ``[min, max]`` (a bundle whose range excludes 0 hovers at the
  bound nearest to 0).

Everything is a deterministic function of the order of calls and their contents: feeding
the same messages in the same order gives the same commands (bit for bit on one machine).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from lnn_ros.bundle.manifest import IMU_FIELDS, TWIST_FIELDS, Manifest
from lnn_ros.engine import Engine, Outcome, StampClock
from lnn_ros.errors import LnnRosError
from lnn_ros.runtime.counters import Counters, reported_keys
from lnn_ros.runtime.image import ImageDecoder, ImageStatus
from lnn_ros.runtime.records import Command, ImageFrame, ImuSample, Stream, Twist
from lnn_ros.runtime.stats import RollingWindow
from lnn_ros.units import NS_PER_S

# Counter keys used on every message, built once (enum attribute lookups cost more than the count).
_IMU_RECEIVED = (Stream.IMU, Outcome.RECEIVED)
_CAMERA_RECEIVED = (Stream.CAMERA, Outcome.RECEIVED)
_VECTOR_RECEIVED = (Stream.VECTOR, Outcome.RECEIVED)

_IMAGE_OUTCOME = {
    ImageStatus.WRONG_ENCODING: Outcome.WRONG_ENCODING,
    ImageStatus.WRONG_SIZE: Outcome.WRONG_SIZE,
    ImageStatus.MALFORMED: Outcome.MALFORMED,
}


class PolicyError(LnnRosError):
    """The runner was configured for streams the bundle does not have."""


@dataclass(frozen=True)
class PolicyConfig:
    """How the runner fuses streams.

    Attributes:
        driver: the stream whose messages step the policy; ``None`` picks IMU, else vector,
            else camera, among the streams the manifest uses.
    """

    driver: Stream | None = None


class BatchRun(NamedTuple):
    """What :meth:`PolicyRunner.run_batch` computed: one command per IMU sample.

    ``values`` [K,O] float32 are the commands' output values, ``twists`` [K,6] float64 their
    Twist fields (as :attr:`Command.twist`), ``encode_s`` the wall time of decoding and encoding
    the frames.
    """

    values: np.ndarray
    twists: np.ndarray
    encode_s: float


class _Slot:
    """Where one stream's values go in the feature vector, and its held-value bookkeeping."""

    def __init__(self, stream: Stream, source: np.ndarray, target: np.ndarray, clock: StampClock) -> None:
        self.stream = stream
        self.source = source  # indices into the stream's raw values
        self.target = target  # indices into the feature vector
        self.values = np.zeros(len(source), dtype=np.float32)
        self.clock = clock  # the engine's own clock for the driver, one of its own for a held stream
        self.has_value = False


def used_streams(manifest: Manifest) -> tuple[Stream, ...]:
    """The streams a bundle reads, in the order IMU, camera, vector."""
    streams = []
    if manifest.uses_imu:
        streams.append(Stream.IMU)
    if manifest.uses_camera:
        streams.append(Stream.CAMERA)
    if manifest.vector_size:
        streams.append(Stream.VECTOR)
    return tuple(streams)


class PolicyRunner:
    """Turns stamped IMU samples, camera frames and vectors into clamped commands.

    Args:
        engine: the engine holding the policy's state (its manifest defines the features).
        config: fusion settings.

    Attributes:
        has_state: True while the recurrent state holds history: a step advanced it since it
            was last zeroed (by :meth:`reset`, a gap reset or a non-finite output). The live
            loop resets a runner that has state whenever flying (re)starts.

    Raises:
        PolicyError: ``config.driver`` is a stream the bundle does not use.
    """

    def __init__(self, engine: Engine, config: PolicyConfig = PolicyConfig()) -> None:
        self.engine = engine
        self.config = config
        manifest = engine.manifest
        self.manifest = manifest
        self.streams = used_streams(manifest)
        if not self.streams:
            raise PolicyError(f"Bundle {manifest.name!r} has no input features; nothing can step it.")
        if config.driver is None:
            driver: Stream = next(s for s in (Stream.IMU, Stream.VECTOR, Stream.CAMERA) if s in self.streams)
        elif config.driver not in self.streams:
            raise PolicyError(
                f"PolicyConfig.driver is {config.driver.value!r} but bundle {manifest.name!r} only uses "
                f"{[s.value for s in self.streams]}; pick one of those."
            )
        else:
            driver = config.driver
        self.driver = driver
        self.counters = Counters(reported_keys(self.streams, driver))
        self.last_outcome = Outcome.UNUSED
        self.has_state = False
        max_gap_s = engine.clock.max_gap_ns / NS_PER_S

        self._features = np.zeros(manifest.model.input_size, dtype=np.float32)
        self._imu_raw = np.zeros(len(IMU_FIELDS), dtype=np.float64)
        self._slots: dict[Stream, _Slot] = {}
        for stream in self.streams:
            pairs = [
                (IMU_FIELDS.index(f.field) if stream is Stream.IMU else f.index, position)
                for position, f in enumerate(manifest.features)
                if f.source == stream.value
            ]
            source, target = (np.array(column, dtype=np.intp) for column in zip(*pairs))
            clock = engine.clock if stream is driver else StampClock(max_gap_s)
            self._slots[stream] = _Slot(stream, source, target, clock)
        self._held = tuple(self._slots[s] for s in self.streams if s is not driver)
        self._decoder = ImageDecoder(manifest.camera) if manifest.camera is not None else None
        self._twist_map = tuple(
            (TWIST_FIELDS.index(o.twist_field), i) for i, o in enumerate(manifest.outputs) if o.twist_field is not None
        )
        self._hover_values = np.array([min(max(0.0, o.min), o.max) for o in manifest.outputs], dtype=np.float32)
        self._hover_twist = self._twist(self._hover_values)

    # ------------------------------------------------------------------ inputs
    def on_imu(self, sample: ImuSample) -> Command | None:
        """Feed one IMU sample; returns a command when it stepped the policy."""
        self.counters[_IMU_RECEIVED] += 1
        slot = self._slots.get(Stream.IMU)
        if slot is None:
            return self._unused(Stream.IMU)
        raw = self._imu_raw
        raw[0:3] = sample.angular_velocity
        raw[3:6] = sample.linear_acceleration
        raw[6:10] = sample.orientation
        np.take(raw, slot.source, out=slot.values)  # float64 -> float32 by the buffer's dtype
        return self._accept(slot, sample.stamp_ns)

    def on_vector(self, values: np.ndarray, stamp_ns: int) -> Command | None:
        """Feed the caller's vector (``vector`` features index into it); returns a command when it stepped."""
        self.counters[_VECTOR_RECEIVED] += 1
        slot = self._slots.get(Stream.VECTOR)
        if slot is None:
            return self._unused(Stream.VECTOR)
        vector = np.asarray(values)
        if vector.shape != (self.manifest.vector_size,):
            raise PolicyError(
                f"on_vector got shape {vector.shape} but bundle {self.manifest.name!r} reads a vector of "
                f"{self.manifest.vector_size} values."
            )
        np.take(vector, slot.source, out=slot.values)
        return self._accept(slot, stamp_ns)

    def on_image(self, frame: ImageFrame) -> Command | None:
        """Feed one camera frame: decoded and encoded once; returns a command only if the camera drives."""
        self.counters[_CAMERA_RECEIVED] += 1
        slot = self._slots.get(Stream.CAMERA)
        if slot is None or self._decoder is None:
            return self._unused(Stream.CAMERA)
        stale = slot.clock.classify(frame.stamp_ns)
        if stale is Outcome.DUPLICATE or stale is Outcome.OUT_OF_ORDER:  # before decoding: never encoded
            return self._drop(Stream.CAMERA, stale)
        decoded = self._decoder.decode(frame)
        if decoded.image is None:
            return self._drop(Stream.CAMERA, _IMAGE_OUTCOME[decoded.status])
        embedding = self.engine.encode(decoded.image)
        self.counters.add(Stream.CAMERA, Outcome.ENCODED)
        np.take(embedding, slot.source, out=slot.values)
        return self._accept(slot, frame.stamp_ns)

    def plan_imu(self, samples: Sequence[ImuSample]) -> int:
        """Let the engine precompute the steps these IMU samples will take (:meth:`Engine.plan`).

        For a caller that knows the coming messages (a bag replay): call it with the IMU samples
        that will be fed next, in order, with no camera frame or vector between them; then feed
        them as usual. Outcomes and counters are those of feeding them one by one (a sample
        that does not step as planned drops the plan); only the graph calls are batched. Returns
        how many steps were planned: 0 unless the IMU drives, every held stream has a value
        and the bundle has a window graph.
        """
        slot = self._slots.get(Stream.IMU)
        if slot is None or slot.stream is not self.driver or not self.ready or not samples or not self.engine.can_plan:
            return 0
        raw = np.array(
            [(*s.angular_velocity, *s.linear_acceleration, *s.orientation) for s in samples], dtype=np.float64
        )
        rows = np.repeat(self._features[None, :], len(samples), axis=0)
        rows[:, slot.target] = raw[:, slot.source]  # float64 -> float32 as on_imu's buffer does
        return self.engine.plan(rows, [s.stamp_ns for s in samples])

    def run_batch(
        self, imu: np.ndarray, imu_stamps_ns: np.ndarray, frames: Sequence[ImageFrame], frame_steps: np.ndarray
    ) -> BatchRun | None:
        """:meth:`on_imu` and :meth:`on_image` of a run of messages known in advance (a bag replay), at once.

        ``imu`` [K,10] float64 holds each sample's angular velocity, linear acceleration and
        orientation (xyzw), ``imu_stamps_ns`` [K] int64 their stamps; ``frames`` are the camera
        frames among them, frame j coming after ``frame_steps[j]`` of the samples (K >= 1). Taken
        only when every sample would step (the IMU drives, every held stream has a value, the
        engine takes them all in :meth:`~lnn_ros.engine.Engine.run_steps`) and every frame would
        be held (a stamp after the held one, decoded, a finite embedding); the frames are then
        encoded in one encoder call and the runner ends as the calls one by one leave it
        (counters, held value and stamp, features, state, ``last_outcome``). Otherwise returns
        None and changes nothing: feed them one by one.
        """
        count = len(imu_stamps_ns)
        imu_slot = self._slots.get(Stream.IMU)
        camera = self._slots.get(Stream.CAMERA)
        if (
            not count
            or imu_slot is None
            or self.driver is not Stream.IMU
            or any(s.stream is not Stream.CAMERA for s in self._held)
            or not self.ready
            or (frames and (camera is None or self._decoder is None))
        ):
            return None
        start = time.perf_counter_ns()
        rows = np.repeat(self._features[None, :], count, axis=0)
        rows[:, imu_slot.target] = imu[:, imu_slot.source]  # float64 -> float32 as on_imu's buffer does
        held = None
        cost_s = 0.0
        if frames:
            assert camera is not None and self._decoder is not None
            decoded = self._held_frames(camera, self._decoder, frames)
            if decoded is None:
                return None
            held, cost_s = decoded
            before = np.searchsorted(frame_steps, np.arange(count), side="right")  # frames before each step
            values = np.concatenate([camera.values[None, :], held])
            rows[:, camera.target] = values[before]
        encode_s = (time.perf_counter_ns() - start) / NS_PER_S
        run = self.engine.run_steps(rows, imu_stamps_ns)
        if run is None:
            return None
        counters = self.counters
        counters[_IMU_RECEIVED] += count
        counters[Stream.IMU, Outcome.STEPPED] += count
        imu_slot.values[...] = rows[-1, imu_slot.target]
        self._features[imu_slot.target] = imu_slot.values
        self.last_outcome = Outcome.STEPPED
        if held is not None and camera is not None:
            number = len(frames)
            counters[_CAMERA_RECEIVED] += number
            counters[Stream.CAMERA, Outcome.ENCODED] += number
            # (the one-by-one path counts no camera_held: _accept counts only clock restarts)
            camera.clock.last_stamp_ns = frames[-1].stamp_ns
            camera.values[...] = held[-1]
            self._features[camera.target] = camera.values
            if frame_steps[-1] == count:  # the last message was a frame
                self.last_outcome = Outcome.HELD
            assert self._decoder is not None
            for _ in frames:
                self._decoder.cost_s.add(cost_s)
        self.has_state = True
        return BatchRun(run.outputs, self.twists(run.outputs), encode_s)

    def twists(self, values: np.ndarray) -> np.ndarray:
        """The Twist fields [K,6] float64 of output values [K,O], as :attr:`Command.twist` has them."""
        twists = np.zeros((len(values), len(TWIST_FIELDS)), dtype=np.float64)
        for twist_index, output_index in self._twist_map:
            twists[:, twist_index] = values[:, output_index]
        return twists

    def _held_frames(
        self, slot: _Slot, decoder: ImageDecoder, frames: Sequence[ImageFrame]
    ) -> tuple[np.ndarray, float] | None:
        """The held values [N, len(slot)] of ``frames`` if every one would be held (see :meth:`run_batch`), else None;
        with the preprocessing time per frame (for :attr:`image_cost_s`, added by the caller once committed)."""
        last = slot.clock.last_stamp_ns
        stamps = np.array([f.stamp_ns for f in frames], dtype=np.int64)
        if (np.diff(stamps) <= 0).any() or (last is not None and int(stamps[0]) <= last):
            return None
        camera = decoder.camera
        pixels = np.empty((len(frames), camera.height, camera.width, camera.channels), dtype=np.uint8)
        start = time.perf_counter_ns()
        for index, frame in enumerate(frames):
            result = decoder.pixels(frame)
            if result.pixels is None:
                return None
            pixels[index] = result.pixels
        scale, offset = getattr(decoder, "_scale", None), getattr(decoder, "_offset", None)
        if isinstance(scale, np.ndarray) and isinstance(offset, np.ndarray):  # normalise's own arithmetic, all at once
            images = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)).astype(np.float32)
            images *= scale
            images -= offset
        else:
            images = np.stack([decoder.normalise(p)[0].copy() for p in pixels])
        cost_s = (time.perf_counter_ns() - start) / NS_PER_S / len(frames)
        embeddings = self.engine.encode_batch(images)
        held = embeddings[:, slot.source].astype(np.float32)
        if not np.isfinite(held).all():
            return None
        return held, cost_s

    # ------------------------------------------------------------------ control
    def reset(self) -> None:
        """Zero the recurrent state and forget every stamp; held values are kept."""
        self.engine.reset()
        self.has_state = False
        for slot in self._held:
            slot.clock.forget()

    def hover_command(self, stamp_ns: int) -> Command:
        """The failsafe command: every output 0.0 clamped into its manifest ``[min, max]``.

        Zero twist for the usual limits (``min <= 0 <= max``); an output whose range excludes 0
        gets the bound nearest to 0, so hover never asks for what the policy may not command.
        """
        return Command(stamp_ns, self._hover_twist, self._hover_values.copy())

    @property
    def image_cost_s(self) -> RollingWindow | None:
        """Seconds the camera preprocessing took per decoded frame (camera bundles), else None."""
        return None if self._decoder is None else self._decoder.cost_s

    @property
    def ready(self) -> bool:
        """True once every held stream has delivered a first valid value."""
        return all(slot.has_value for slot in self._held)

    def counters_dict(self) -> dict[str, int]:
        """The runner's ``<stream>_<outcome>`` counters and the engine's own (names do not overlap)."""
        merged = self.counters.as_dict()
        merged.update(self.engine.counters.as_dict())
        return merged

    # ------------------------------------------------------------------ internals
    def _accept(self, slot: _Slot, stamp_ns: int) -> Command | None:
        if slot.stream is self.driver:
            return self._step(slot, stamp_ns)
        if not np.isfinite(slot.values).all():
            return self._drop(slot.stream, Outcome.NONFINITE_INPUT)
        clock = slot.clock
        last = clock.last_stamp_ns
        outcome, _ = clock.advance(stamp_ns)
        if outcome is Outcome.DUPLICATE or outcome is Outcome.OUT_OF_ORDER:
            return self._drop(slot.stream, outcome)
        if last is not None and stamp_ns < last:  # a jump back beyond max_gap_s: restarted clock
            outcome = Outcome.CLOCK_RESTART
            self.counters.add(slot.stream, outcome)
        else:
            outcome = Outcome.HELD
        self._features[slot.target] = slot.values
        slot.has_value = True
        self.last_outcome = outcome
        return None

    def _step(self, slot: _Slot, stamp_ns: int) -> Command | None:
        for held in self._held:
            if not held.has_value:
                self.counters.add(held.stream, Outcome.WAITING)
                self.last_outcome = Outcome.WAITING
                return None
        features = self._features
        features[slot.target] = slot.values
        result = self.engine.step(features, stamp_ns)
        outcome = result.outcome
        self.last_outcome = outcome
        self.counters[slot.stream, outcome] += 1
        if result.output is None:
            if outcome is Outcome.GAP_RESET or outcome is Outcome.NONFINITE_OUTPUT:
                self.has_state = False  # the engine zeroed the state
            return None
        self.has_state = True
        values = result.output.copy()
        return Command(stamp_ns, self._twist(values), values)

    def _twist(self, values: np.ndarray) -> Twist:
        twist = [0.0] * len(TWIST_FIELDS)
        for twist_index, output_index in self._twist_map:
            twist[twist_index] = float(values[output_index])
        return tuple(twist)  # type: ignore[return-value]

    def _drop(self, stream: Stream, outcome: Outcome) -> Command | None:
        """Count a dropped message; returns None (no command) so callers can ``return self._drop(...)``."""
        self.counters.add(stream, outcome)
        self.last_outcome = outcome
        return None

    def _unused(self, stream: Stream) -> Command | None:
        """Count a message of a stream the bundle does not read; returns None (no command)."""
        self.counters.add(stream, Outcome.UNUSED)
        self.last_outcome = Outcome.UNUSED
        return None
