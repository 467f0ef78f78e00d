"""Simulator settings and the registry of scenario variants (in- and out-of-distribution).

Everything random in an episode is drawn from ``SimConfig.seed`` (see ``episode.py``), so the same
config, variant and seed give the identical episode, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum

from lnn_ros.sim.errors import SimError

Range = tuple[float, float]


class VehicleModel(Enum):
    """Which rotorpy parameter set flies (rotorpy.vehicles.<name>_params)."""

    CRAZYFLIE = "crazyflie"  # 30 g nano quadrotor; slow motors (tau 72 ms)
    HUMMINGBIRD = "hummingbird"  # 500 g AscTec Hummingbird; fast motors (tau 5 ms)


class Integrator(Enum):
    """How one physics step of rotorpy's rigid-body + motor ODE is integrated."""

    RK4 = "rk4"  # fixed-step classic Runge-Kutta on rotorpy's own derivative: ~2x faster
    RK45 = "rk45"  # rotorpy's Multirotor.step unchanged (scipy solve_ivp, adaptive RK45)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels (as in sensor_msgs/CameraInfo K), optical frame z forward."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float


@dataclass(frozen=True)
class SimConfig:
    """All settings of one simulated episode; defaults give the nominal training distribution.

    Attributes:
        seed: master seed; every random stream of the episode derives from it.
        vehicle: rotorpy parameter set.
        integrator: physics integrator (see :class:`Integrator`).
        physics_dt_s: longest physics step; steps are also cut at every sensor stamp and command.
        duration_s: episode length in sim time.
        imu_rate_hz: nominal IMU rate.
        camera_rate_hz: nominal camera rate.
        imu_jitter_frac: std of IMU stamp jitter as a fraction of the period (clipped to ±0.45).
        camera_jitter_frac: same for the camera.
        imu_drop_prob: probability that one IMU sample is lost.
        camera_drop_prob: probability that one camera frame is lost.
        accel_noise_density: accelerometer white noise, m/s^2/sqrt(Hz) (rotorpy Imu semantics:
            per-sample std = density * sqrt(rate / 2)).
        gyro_noise_density: gyro white noise, rad/s/sqrt(Hz) (same semantics).
        accel_bias_std_mps2: std of the per-episode constant accelerometer bias.
        gyro_bias_std_rps: std of the per-episode constant gyro bias.
        accel_random_walk: accelerometer bias random walk, m/s^2*sqrt(Hz) (rotorpy semantics).
        gyro_random_walk: gyro bias random walk, rad/s*sqrt(Hz) (rotorpy semantics).
        image_width: image columns.
        image_height: image rows.
        camera_hfov_deg: horizontal field of view; square pixels.
        camera_pitch_deg: camera tilted down from body x by this angle.
        image_noise_std: std of additive Gaussian pixel noise, in 0..255 units.
        target_radius_m: radius of the red target sphere.
        target_distance_range_m: horizontal start-to-target distance.
        target_bearing_range_rad: target bearing relative to the start heading.
        target_height_range_m: target centre height above ground.
        start_xy_range_m: start x and y uniform in [-r, r].
        start_height_range_m: start height.
        success_radius_m: "reached" means within this distance of the target centre ...
        success_hold_s: ... continuously for this long.
        stop_on_success: end the episode once reached (else fly the whole duration).
        max_speed_mps: commands are clipped to this speed (norm of the velocity).
        max_yaw_rate_rps: commands are clipped to this yaw rate.
        command_timeout_s: with no new command for this long the vehicle hovers in place.
        crash_height_m: below this height the vehicle has crashed and the episode ends.
    """

    seed: int = 0
    vehicle: VehicleModel = VehicleModel.CRAZYFLIE
    integrator: Integrator = Integrator.RK4
    physics_dt_s: float = 0.005
    duration_s: float = 10.0
    imu_rate_hz: float = 200.0
    camera_rate_hz: float = 30.0
    imu_jitter_frac: float = 0.02
    camera_jitter_frac: float = 0.05
    imu_drop_prob: float = 0.002
    camera_drop_prob: float = 0.01
    accel_noise_density: float = 0.02
    gyro_noise_density: float = 0.002
    accel_bias_std_mps2: float = 0.05
    gyro_bias_std_rps: float = 0.005
    accel_random_walk: float = 0.001
    gyro_random_walk: float = 0.0001
    image_width: int = 64
    image_height: int = 48
    camera_hfov_deg: float = 90.0
    camera_pitch_deg: float = 10.0
    image_noise_std: float = 2.0
    target_radius_m: float = 0.2
    target_distance_range_m: Range = (2.5, 5.0)
    target_bearing_range_rad: Range = (-0.5, 0.5)
    target_height_range_m: Range = (0.6, 1.6)
    start_xy_range_m: float = 2.0
    start_height_range_m: Range = (0.8, 1.5)
    success_radius_m: float = 1.0
    success_hold_s: float = 1.0
    stop_on_success: bool = False
    max_speed_mps: float = 2.0
    max_yaw_rate_rps: float = 1.5
    command_timeout_s: float = 0.5
    crash_height_m: float = 0.05

    def __post_init__(self) -> None:
        positive = (
            "physics_dt_s", "duration_s", "imu_rate_hz", "camera_rate_hz", "camera_hfov_deg",
            "target_radius_m", "success_radius_m", "max_speed_mps", "max_yaw_rate_rps",
            "command_timeout_s",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise SimError(f"SimConfig.{name} must be a finite number > 0, got {value!r}.")
        non_negative = (
            "accel_noise_density", "gyro_noise_density", "accel_bias_std_mps2", "gyro_bias_std_rps",
            "accel_random_walk", "gyro_random_walk", "image_noise_std", "success_hold_s",
            "start_xy_range_m", "crash_height_m", "camera_pitch_deg",
        )  # fmt: skip
        for name in non_negative:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise SimError(f"SimConfig.{name} must be a finite number >= 0, got {value!r}.")
        if self.physics_dt_s > 0.01:
            raise SimError(
                f"SimConfig.physics_dt_s must be <= 0.01 s for the attitude loop to stay stable, "
                f"got {self.physics_dt_s!r}."
            )
        for name in ("imu_jitter_frac", "camera_jitter_frac"):
            _check_fraction(name, getattr(self, name), upper=0.45)
        for name in ("imu_drop_prob", "camera_drop_prob"):
            _check_fraction(name, getattr(self, name), upper=0.9)
        for name in ("image_width", "image_height"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 8 <= value <= 1024):
                raise SimError(f"SimConfig.{name} must be an int in [8, 1024], got {value!r}.")
        if not self.camera_hfov_deg < 170:
            raise SimError(f"SimConfig.camera_hfov_deg must be < 170, got {self.camera_hfov_deg!r}.")
        for field in fields(self):
            if field.type == "Range":
                _check_range(f"SimConfig.{field.name}", getattr(self, field.name))
        if self.target_distance_range_m[0] <= self.success_radius_m:
            raise SimError(
                f"SimConfig.target_distance_range_m must start beyond success_radius_m "
                f"({self.success_radius_m!r}), got {self.target_distance_range_m!r}."
            )
        if not isinstance(self.vehicle, VehicleModel):
            raise SimError(f"SimConfig.vehicle must be a VehicleModel, got {self.vehicle!r}.")
        if not isinstance(self.integrator, Integrator):
            raise SimError(f"SimConfig.integrator must be an Integrator, got {self.integrator!r}.")

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """Pinhole intrinsics from the image size and horizontal field of view (square pixels)."""
        fx = 0.5 * self.image_width / math.tan(math.radians(self.camera_hfov_deg) / 2)
        return CameraIntrinsics(
            width=self.image_width,
            height=self.image_height,
            fx=fx,
            fy=fx,
            cx=self.image_width / 2,
            cy=self.image_height / 2,
        )


class ScenarioVariant(Enum):
    """Named scenario families: the training distribution and its out-of-distribution shifts."""

    NOMINAL = "nominal"
    LIGHTING = "lighting"
    DISTRACTORS = "distractors"
    WIND = "wind"
    JITTER = "jitter"
    FAR = "far"
    OFF_HEADING = "off_heading"
    OCCLUSION = "occlusion"
    DROPOUT = "dropout"
    RATES = "rates"
    DELAY = "delay"
    STORM = "storm"
    STORM_LIGHTING = "storm_lighting"
    MEMORY = "memory"


@dataclass(frozen=True)
class VariantSpec:
    """What a variant changes; every range is sampled once per episode from the seed.

    Attributes:
        description: one line for humans.
        brightness_range: global image gain.
        tint_max: each colour channel's gain is uniform in [1 - tint_max, 1 + tint_max].
        sun_elevation_range_rad: elevation of the directional light (shading of objects).
        distractor_count_range: number of extra coloured objects (inclusive).
        wind_mean_speed_range_mps: horizontal mean wind speed (random direction).
        wind_gust_amplitude_range_mps: amplitude of sinusoidal gusts on each axis.
        imu_jitter_frac: replaces SimConfig.imu_jitter_frac when set.
        camera_jitter_frac: replaces SimConfig.camera_jitter_frac when set.
        imu_drop_prob: replaces SimConfig.imu_drop_prob when set.
        camera_drop_prob: replaces SimConfig.camera_drop_prob when set.
        rate_scale_range: each stream's rate is multiplied by a factor drawn from this range.
        target_distance_range_m: replaces SimConfig.target_distance_range_m when set.
        target_bearing_abs_range_rad: when set, the target bearing is drawn with its magnitude
            in this range and a random sign (instead of SimConfig.target_bearing_range_rad).
        occlusion_count_range: how many times the target is hidden (inclusive range).
        occlusion_duration_range_s: how long each occlusion lasts; the target is not drawn at all.
        blackout_count_range: how many camera dropouts (inclusive range).
        blackout_duration_range_s: how long each dropout lasts; no frame is delivered in it.
        event_window_s: occlusions and dropouts start at a time drawn from this window.
        rate_switch_interval_range_s: when set, each stream's rate is redrawn at intervals drawn
            from this range (a rate that changes mid-flight).
        imu_rate_range_hz: when set, the IMU rate (at the start and at every switch) is drawn
            from this range instead of scaling SimConfig.imu_rate_hz.
        camera_rate_range_hz: same for the camera.
        camera_latency_range_s: each episode's camera latency: a frame captured (and stamped)
            at t is delivered at t + latency, later than IMU samples stamped after it.
        camera_latency_jitter_s: each frame's latency adds a uniform draw in [0, this]
            (frames still arrive in capture order).
    """

    description: str
    brightness_range: Range = (0.9, 1.1)
    tint_max: float = 0.03
    sun_elevation_range_rad: Range = (0.8, 1.2)
    distractor_count_range: tuple[int, int] = (0, 0)
    wind_mean_speed_range_mps: Range = (0.0, 0.0)
    wind_gust_amplitude_range_mps: Range = (0.0, 0.0)
    imu_jitter_frac: float | None = None
    camera_jitter_frac: float | None = None
    imu_drop_prob: float | None = None
    camera_drop_prob: float | None = None
    rate_scale_range: Range = (1.0, 1.0)
    target_distance_range_m: Range | None = None
    target_bearing_abs_range_rad: Range | None = None
    occlusion_count_range: tuple[int, int] = (0, 0)
    occlusion_duration_range_s: Range = (0.5, 2.0)
    blackout_count_range: tuple[int, int] = (0, 0)
    blackout_duration_range_s: Range = (0.2, 0.5)
    event_window_s: Range = (0.5, 5.0)
    rate_switch_interval_range_s: Range | None = None
    imu_rate_range_hz: Range | None = None
    camera_rate_range_hz: Range | None = None
    camera_latency_range_s: Range = (0.0, 0.0)
    camera_latency_jitter_s: float = 0.0

    @property
    def has_wind(self) -> bool:
        """True when the variant blows any wind."""
        return max(self.wind_mean_speed_range_mps + self.wind_gust_amplitude_range_mps) > 0


VARIANTS: dict[ScenarioVariant, VariantSpec] = {
    ScenarioVariant.NOMINAL: VariantSpec("training distribution: mild lighting change, calm air"),
    ScenarioVariant.LIGHTING: VariantSpec(
        "dim or bright scene with a colour cast and a low or high sun",
        brightness_range=(0.45, 1.7),
        tint_max=0.3,
        sun_elevation_range_rad=(0.25, 1.5),
    ),
    ScenarioVariant.DISTRACTORS: VariantSpec(
        "3 to 6 extra coloured spheres and pillars (none red) around the target",
        distractor_count_range=(3, 6),
    ),
    ScenarioVariant.WIND: VariantSpec(
        "steady wind of 1-2.5 m/s plus gusts (rotorpy ConstantWind + SinusoidWind)",
        wind_mean_speed_range_mps=(1.0, 2.5),
        wind_gust_amplitude_range_mps=(0.3, 1.0),
    ),
    ScenarioVariant.JITTER: VariantSpec(
        "sensor rates off by up to ±25 %, heavy stamp jitter and frequent drops",
        imu_jitter_frac=0.2,
        camera_jitter_frac=0.3,
        imu_drop_prob=0.05,
        camera_drop_prob=0.15,
        rate_scale_range=(0.75, 1.25),
    ),
    ScenarioVariant.FAR: VariantSpec(
        "target 5.5-8 m away (1-2 pixels wide at the start in a 64x48 frame)",
        target_distance_range_m=(5.5, 8.0),
    ),
    ScenarioVariant.OFF_HEADING: VariantSpec(
        "target 0.6-1.2 rad off the start heading: at the edge of the 90 degree view or outside it",
        target_bearing_abs_range_rad=(0.6, 1.2),
    ),
    ScenarioVariant.OCCLUSION: VariantSpec(
        "the target disappears from the frames 1-2 times for 0.5-2 s each (memory: where was it?)",
        occlusion_count_range=(1, 2),
        occlusion_duration_range_s=(0.5, 2.0),
    ),
    ScenarioVariant.DROPOUT: VariantSpec(
        "the camera delivers nothing 2-4 times for 0.2-0.5 s each",
        blackout_count_range=(2, 4),
        blackout_duration_range_s=(0.2, 0.5),
    ),
    ScenarioVariant.RATES: VariantSpec(
        "sensor rates unlike training that change mid-flight every 1-3 s: IMU 100-400 Hz, camera 10-60 Hz",
        rate_switch_interval_range_s=(1.0, 3.0),
        imu_rate_range_hz=(100.0, 400.0),
        camera_rate_range_hz=(10.0, 60.0),
        imu_jitter_frac=0.1,
        camera_jitter_frac=0.15,
    ),
    ScenarioVariant.DELAY: VariantSpec(
        "camera frames arrive 30-100 ms after capture (stamped at capture), IMU on time",
        camera_latency_range_s=(0.03, 0.1),
        camera_latency_jitter_s=0.01,
    ),
    ScenarioVariant.STORM: VariantSpec(
        "strong wind of 2.5-4 m/s with 1-2 m/s gusts",
        wind_mean_speed_range_mps=(2.5, 4.0),
        wind_gust_amplitude_range_mps=(1.0, 2.0),
    ),
    ScenarioVariant.STORM_LIGHTING: VariantSpec(
        "wind of 1.5-3 m/s with gusts, a dim or bright scene with a colour cast, and distractors",
        brightness_range=(0.45, 1.7),
        tint_max=0.3,
        sun_elevation_range_rad=(0.25, 1.5),
        distractor_count_range=(2, 4),
        wind_mean_speed_range_mps=(1.5, 3.0),
        wind_gust_amplitude_range_mps=(0.5, 1.5),
    ),
    ScenarioVariant.MEMORY: VariantSpec(
        "all the timing shifts at once: occlusion, camera dropouts, changing rates and camera latency",
        occlusion_count_range=(1, 2),
        occlusion_duration_range_s=(0.5, 1.5),
        blackout_count_range=(1, 3),
        blackout_duration_range_s=(0.2, 0.4),
        rate_switch_interval_range_s=(1.0, 3.0),
        imu_rate_range_hz=(100.0, 400.0),
        camera_rate_range_hz=(10.0, 60.0),
        imu_jitter_frac=0.1,
        camera_jitter_frac=0.15,
        camera_latency_range_s=(0.03, 0.1),
        camera_latency_jitter_s=0.01,
    ),
}


def variant_from_name(name: str | ScenarioVariant) -> ScenarioVariant:
    """The variant called ``name`` (a :class:`ScenarioVariant` passes through).

    Raises:
        SimError: ``name`` is not a variant; the message lists the valid names.
    """
    if isinstance(name, ScenarioVariant):
        return name
    try:
        return ScenarioVariant(str(name).strip().lower())
    except ValueError:
        valid = ", ".join(repr(variant.value) for variant in ScenarioVariant)
        raise SimError(f"Unknown scenario variant {name!r}; use one of {valid}.") from None


def variant_spec(variant: str | ScenarioVariant) -> VariantSpec:
    """The :class:`VariantSpec` of a variant given by enum or name."""
    return VARIANTS[variant_from_name(variant)]


def _check_fraction(name: str, value: float, upper: float) -> None:
    if not (isinstance(value, (int, float)) and 0 <= value <= upper):
        raise SimError(f"SimConfig.{name} must be in [0, {upper}], got {value!r}.")


def _check_range(name: str, value: Range) -> None:
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
        and value[0] <= value[1]
    )
    if not ok:
        raise SimError(f"{name} must be a (low, high) tuple of finite numbers with low <= high, got {value!r}.")
