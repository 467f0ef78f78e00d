"""Sensor streams: when samples happen (rate, jitter, drops) and what they contain (IMU, camera).

Stamp k of a stream of period T is ``phase + k T + e_k``, ``e_k ~ N(0, (jitter_frac T)^2)``
clipped to ±0.45 T, so stamps stay strictly increasing; each sample is dropped with
probability ``drop_prob``. A stream with a rate schedule (rates that change mid-flight) steps
its nominal stamp by the period in force there instead; samples inside a blackout interval
are dropped. All stamps are integer nanoseconds of sim time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lnn_ros.runtime.records import ImageFrame, ImuSample
from lnn_ros.sim.world._rotorpy import Imu
from lnn_ros.sim.world.config import SimConfig, VariantSpec
from lnn_ros.sim.world.disturbances import Interval, RateSchedule, inside, rate_at
from lnn_ros.sim.world.frames import quat_to_matrix, rotation_entries
from lnn_ros.sim.world.render import Renderer
from lnn_ros.sim.world.vehicle import Vehicle
from lnn_ros.units import NS_PER_S

MAX_JITTER_FRAC = 0.45


@dataclass(frozen=True)
class StreamTiming:
    """Timing of one sensor stream in an episode (after the variant is applied)."""

    rate_hz: float
    jitter_frac: float
    drop_prob: float
    schedule: RateSchedule = ()
    blackouts_ns: tuple[Interval, ...] = ()

    @property
    def period_ns(self) -> int:
        """Nominal period, ns."""
        return round(NS_PER_S / self.rate_hz)


def stream_timings(config: SimConfig, spec: VariantSpec, rng: np.random.Generator) -> tuple[StreamTiming, StreamTiming]:
    """(imu, camera) timings: the config's, with the variant's overrides and a drawn rate scale."""

    def pick(override: float | None, default: float) -> float:
        return default if override is None else override

    imu = StreamTiming(
        rate_hz=config.imu_rate_hz * rng.uniform(*spec.rate_scale_range),
        jitter_frac=pick(spec.imu_jitter_frac, config.imu_jitter_frac),
        drop_prob=pick(spec.imu_drop_prob, config.imu_drop_prob),
    )
    camera = StreamTiming(
        rate_hz=config.camera_rate_hz * rng.uniform(*spec.rate_scale_range),
        jitter_frac=pick(spec.camera_jitter_frac, config.camera_jitter_frac),
        drop_prob=pick(spec.camera_drop_prob, config.camera_drop_prob),
    )
    return imu, camera


class StreamClock:
    """The stamps of one sensor stream, generated lazily in order.

    Attributes:
        next_stamp_ns: stamp of the next sample that will be delivered.
        delivered: samples handed out so far by :meth:`pop`.
        dropped: samples lost so far (before ``next_stamp_ns``).
    """

    def __init__(self, timing: StreamTiming, rng: np.random.Generator) -> None:
        self.timing = timing
        self._rng = rng
        self._period_ns = timing.period_ns
        self._phase_ns = int(rng.uniform(0.5, 1.5) * self._period_ns)
        self._index = -1
        self._nominal_ns = self._phase_ns  # the scheduled stream's next nominal stamp
        self._last_ns = -1
        self.delivered = 0
        self.dropped = 0
        self.next_stamp_ns = self._draw_next()

    def pop(self) -> int:
        """Return ``next_stamp_ns`` and move on to the following delivered stamp."""
        stamp = self.next_stamp_ns
        self.delivered += 1
        self.next_stamp_ns = self._draw_next()
        return stamp

    def _draw_next(self) -> int:
        schedule = self.timing.schedule
        while True:
            self._index += 1
            jitter = float(np.clip(self._rng.normal(0.0, self.timing.jitter_frac), -MAX_JITTER_FRAC, MAX_JITTER_FRAC))
            if schedule:
                nominal = self._nominal_ns
                period = round(NS_PER_S / rate_at(schedule, nominal))
                self._nominal_ns = nominal + period
                # Where the rate changes, jitter of the old and new periods could swap two stamps.
                stamp = max(nominal + round(jitter * period), self._last_ns + 1)
            else:
                stamp = self._phase_ns + self._index * self._period_ns + round(jitter * self._period_ns)
            kept = self._rng.uniform() >= self.timing.drop_prob
            if kept and not inside(self.timing.blackouts_ns, stamp):
                self._last_ns = stamp
                return stamp
            self.dropped += 1


class SeededImu(Imu):
    """rotorpy's ``Imu`` with its random draws taken from a seeded generator.

    rotorpy computes the specific force ``R^T (a - g)`` at the sensor, the gyro, the biases and the
    bias walk; it draws white noise (std ``density * sqrt(rate / 2)``) and the walk from numpy's
    global RNG. Here the same draws come from ``rng``: reproducible per episode, and the
    caller's ``np.random`` state is left alone. With the sensor at the body origin, axes
    aligned (rotorpy's defaults), the reading is computed without scipy: the same formula, the
    same draws in the same order (accel walk, gyro walk, accel noise, gyro noise).

    Args:
        rng: draws the bias walk and the white noise.
        reference: always take rotorpy's ``Imu.measurement`` (slow; for parity checks).
        **imu_kwargs: ``Imu`` options.
    """

    def __init__(self, rng: np.random.Generator, reference: bool = False, **imu_kwargs: object) -> None:
        super().__init__(**imu_kwargs)
        self._rng = rng
        self._fast = not reference and np.array_equal(self.R_BS, np.eye(3)) and not np.any(self.p_BS)

    def bias_step(self) -> None:
        """Bias random walk (rotorpy's formula, seeded draws)."""
        self.accel_bias += self._rng.normal(scale=self.accel_random_walk) / self.rate_scale
        self.gyro_bias += self._rng.normal(scale=self.gyro_random_walk) / self.rate_scale

    def measurement(self, state: dict, acceleration: dict, with_noise: bool = True) -> dict:
        """rotorpy's noiseless-plus-bias measurement, then its white noise from ``rng``."""
        if not self._fast:
            reading = super().measurement(state, acceleration, with_noise=False)
            if with_noise:
                reading["accel"] = reading["accel"] + self.rate_scale * self._rng.normal(scale=np.abs(self.accel_variance))
                reading["gyro"] = reading["gyro"] + self.rate_scale * self._rng.normal(scale=np.abs(self.gyro_variance))
            return reading
        r00, r01, r02, r10, r11, r12, r20, r21, r22 = rotation_entries(*np.asarray(state["q"], dtype=float).tolist())
        gx, gy, gz = self.gravity_vector.tolist()
        ax, ay, az = np.asarray(acceleration["vdot"], dtype=float).tolist()
        ax, ay, az = ax - gx, ay - gy, az - gz
        accel = np.array([r00 * ax + r10 * ay + r20 * az, r01 * ax + r11 * ay + r21 * az, r02 * ax + r12 * ay + r22 * az])
        gyro = np.array(state["w"], dtype=float)
        # normal(scale=s) is s * standard_normal(): one call draws what rotorpy's two or four calls draw.
        z = self._rng.standard_normal(12 if with_noise else 6)
        self.accel_bias += self.accel_random_walk * z[0:3] / self.rate_scale
        self.gyro_bias += self.gyro_random_walk * z[3:6] / self.rate_scale
        accel += self.accel_bias
        gyro += self.gyro_bias
        if with_noise:
            accel += self.rate_scale * (np.abs(self.accel_variance) * z[6:9])
            gyro += self.rate_scale * (np.abs(self.gyro_variance) * z[9:12])
        return {"accel": accel, "gyro": gyro}


class ImuSensor:
    """The IMU of one episode: per-episode biases, rotorpy's model, readings as ``ImuSample``.

    Args:
        config: noise densities and bias spreads.
        rate_hz: the stream's rate (rotorpy scales white noise by sqrt(rate / 2)).
        rng: draws the initial biases, then the noise and bias walk.
        reference: compute readings with rotorpy's ``Imu.measurement`` itself.
    """

    def __init__(self, config: SimConfig, rate_hz: float, rng: np.random.Generator, reference: bool = False) -> None:
        self.accel_bias = rng.normal(0.0, config.accel_bias_std_mps2, size=3)
        self.gyro_bias = rng.normal(0.0, config.gyro_bias_std_rps, size=3)
        self._imu = SeededImu(
            rng,
            reference,
            accelerometer_params={
                "initial_bias": self.accel_bias.copy(),
                "noise_density": np.full(3, config.accel_noise_density),
                "random_walk": np.full(3, config.accel_random_walk),
            },
            gyroscope_params={
                "initial_bias": self.gyro_bias.copy(),
                "noise_density": np.full(3, config.gyro_noise_density),
                "random_walk": np.full(3, config.gyro_random_walk),
            },
            sampling_rate=rate_hz,
        )

    def sample(self, stamp_ns: int, vehicle: Vehicle, with_noise: bool = True) -> ImuSample:
        """The reading of the vehicle's current state, stamped ``stamp_ns``."""
        reading = self._imu.measurement(vehicle.state, vehicle.acceleration(), with_noise=with_noise)
        return ImuSample(
            stamp_ns=stamp_ns,
            angular_velocity=reading["gyro"],
            linear_acceleration=reading["accel"],
            orientation=np.array(vehicle.quaternion, dtype=float),
        )


class CameraSensor:
    """The forward camera: renders the scene from the vehicle pose into an rgb8 ``ImageFrame``.

    Args:
        config: image size, field of view, tilt, pixel noise.
        renderer: renderer of the episode's scene.
        rng: draws the pixel noise.
    """

    def __init__(self, config: SimConfig, renderer: Renderer, rng: np.random.Generator) -> None:
        self.renderer = renderer
        self._noise_std = config.image_noise_std
        self._rng = rng

    def capture(self, stamp_ns: int, vehicle: Vehicle, hide_target: bool = False) -> ImageFrame:
        """The image seen from the vehicle's current pose, stamped ``stamp_ns`` (without the target when hidden)."""
        out = self.renderer.render(
            vehicle.position, quat_to_matrix(vehicle.quaternion), self._rng, self._noise_std, hide_target=hide_target
        )
        height, width = out.image.shape[:2]
        return ImageFrame(
            stamp_ns=stamp_ns,
            height=height,
            width=width,
            encoding="rgb8",
            step=width * 3,
            data=out.image.tobytes(),
        )



CAMERA_OUTPUT_ENCODINGS = ("rgb8", "bgr8", "mono8", "rgba8", "bgra8")


class CameraOutput:
    """Presents the rendered rgb8 frame as a real camera driver would publish it.

    The frame is scaled by a whole factor (pixel repetition) to the largest such size that fits
    ``width x height`` and centred there, the bands grey (128): a
    stand-in for a wider camera, rendering at the output size would cost the simulator more
    than a real-time episode allows. The policy's centre crop takes back the rendered view; with
    an integer scale factor its area averaging recovers the rendered pixels exactly.

    Args:
        width: output columns (0: the rendered size); at least the rendered width.
        height: output rows (0: the rendered size); at least the rendered height.
        encoding: one of :data:`CAMERA_OUTPUT_ENCODINGS`.
        compressed: ``""`` (raw ``Image``), ``jpeg`` or ``png`` (``CompressedImage`` data, via Pillow).
        jpeg_quality: 1..95.
    """

    def __init__(self, width: int = 0, height: int = 0, encoding: str = "rgb8", compressed: str = "", jpeg_quality: int = 90) -> None:
        if encoding not in CAMERA_OUTPUT_ENCODINGS:
            raise ValueError(f"Camera output encoding {encoding!r} is not one of {list(CAMERA_OUTPUT_ENCODINGS)}.")
        if compressed not in ("", "jpeg", "png"):
            raise ValueError(f"Camera compression {compressed!r} is not '', 'jpeg' or 'png'.")
        self.width, self.height, self.encoding = width, height, encoding
        self.compressed, self.jpeg_quality = compressed, jpeg_quality
        self._layout_cache: tuple[tuple[int, int], int, int, int, np.ndarray] | None = None

    def _layout(self, h: int, w: int) -> tuple[int, int, int, int, np.ndarray]:
        """(scale, top, left, inner rows, canvas) for a rendered ``h x w`` frame; the canvas is reused."""
        if self._layout_cache is None or self._layout_cache[0] != (h, w):
            out_w, out_h = self.width or w, self.height or h
            scale = max(1, min(out_w // w, out_h // h))  # whole pixels: each rendered pixel becomes scale x scale
            top, left = (out_h - h * scale) // 2, (out_w - w * scale) // 2
            channels = {"mono8": 1, "rgb8": 3, "bgr8": 3}.get(self.encoding, 4)
            canvas = np.full((out_h, out_w, channels), 128, dtype=np.uint8)
            if channels == 4:
                canvas[:, :, 3] = 255
            self._layout_cache = ((h, w), scale, top, left, canvas)
        _, scale, top, left, canvas = self._layout_cache
        return scale, top, left, h * scale, canvas

    def present(self, rgb: np.ndarray) -> np.ndarray:
        """rgb8 [h, w, 3] -> the output frame [H, W, C] in :attr:`encoding` (uint8; a reused buffer)."""
        h, w = rgb.shape[:2]
        scale, top, left, rows, canvas = self._layout(h, w)
        if self.encoding == "mono8":
            source = ((rgb @ np.array((0.299, 0.587, 0.114))) + 0.5).astype(np.uint8)[:, :, None]
        elif self.encoding in ("bgr8", "bgra8"):
            source = rgb[:, :, ::-1]
        else:
            source = rgb
        region = canvas[top : top + rows, left : left + w * scale, : source.shape[2]]
        region.reshape(h, scale, w, scale, source.shape[2])[:] = source[:, None, :, None, :]  # one broadcast copy
        return canvas

    def frame(self, frame: ImageFrame) -> ImageFrame:
        """A rendered rgb8 frame as the output camera publishes it (``jpeg`` / ``png`` encoding when compressed)."""
        pixels = self.present(frame.to_array())
        if self.compressed:
            import io

            from PIL import Image

            buffer = io.BytesIO()
            # A jpeg / png holds RGB (or grey) whatever the driver's raw encoding: decoders return RGB.
            if self.encoding == "mono8":
                image = Image.fromarray(pixels[:, :, 0])
            else:
                rgb = pixels[:, :, :3] if self.encoding in ("rgb8", "rgba8") else pixels[:, :, 2::-1]
                image = Image.fromarray(np.ascontiguousarray(rgb))
            if self.compressed == "jpeg":
                image.save(buffer, format="JPEG", quality=self.jpeg_quality)
            else:
                image.save(buffer, format="PNG", compress_level=1)
            return ImageFrame(frame.stamp_ns, 0, 0, self.compressed, 0, buffer.getvalue())
        height, width, channels = pixels.shape
        return ImageFrame(frame.stamp_ns, height, width, self.encoding, width * channels, pixels.tobytes())
