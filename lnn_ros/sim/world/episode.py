"""One simulated episode: the vehicle flies a held velocity command while sensors fire in time order.

The simulator never calls a controller itself; it is driven from outside, which lets the same
class serve a synchronous closed loop (``next_event`` / ``events``), a ROS node pacing it in
real time (``advance_to(t_ns)`` on a wall-clock timer, ``set_command`` from a subscription),
and demonstration recording::

    sim = Simulator(SimConfig(seed=3), "wind")
    for event in sim.events():              # ImuSample / ImageFrame in stamp order
        command = controller(event)
        if command is not None:
            sim.set_command(command)         # flown from the event's stamp on
    result = sim.result()

Physics steps are cut at every sensor stamp, command stamp and command timeout, and are at
most ``physics_dt_s`` long (split evenly), so each reading sees the state at its exact stamp.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from lnn_ros.runtime.records import Command, ImageFrame, SensorRecord
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.world.config import CameraIntrinsics, ScenarioVariant, SimConfig, variant_from_name, variant_spec
from lnn_ros.sim.world.disturbances import Disturbances, sample_disturbances
from lnn_ros.sim.world.render import Renderer
from lnn_ros.sim.world.scene import Scene, sample_scene
from lnn_ros.sim.world.sensors import CameraSensor, ImuSensor, StreamClock, stream_timings
from lnn_ros.sim.world.vehicle import Vehicle
from lnn_ros.sim.world.wind import sample_wind
from lnn_ros.units import NS_PER_S

MAX_SPEED_BEFORE_DIVERGED_MPS = 30.0


class VehicleState(NamedTuple):
    """True (privileged) vehicle state; world frame z up, body FLU."""

    position: np.ndarray
    velocity: np.ndarray
    orientation: np.ndarray  # (x, y, z, w), body to world
    angular_velocity: np.ndarray  # body frame
    yaw_rad: float


class Trajectory(NamedTuple):
    """The true state after every physics step (and at t = 0).

    Attributes:
        t_s: sim time, shape (K,).
        position: world position, m, shape (K, 3).
        velocity: world velocity, m/s, shape (K, 3).
        yaw_rad: yaw, shape (K,).
        command: command applied during the step that ended there, heading frame
            ``[vx, vy, vz, yaw_rate]``, shape (K, 4).
    """

    t_s: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    yaw_rad: np.ndarray
    command: np.ndarray


@dataclass(frozen=True)
class EpisodeResult:
    """How an episode went.

    Attributes:
        seed: episode seed.
        variant: scenario variant.
        target_position: target centre (world, m).
        start_position: start position (world, m).
        reached: the vehicle stayed within ``success_radius_m`` of the target for ``success_hold_s``.
        time_to_reach_s: sim time at which that hold was complete (None if never).
        crashed: the vehicle hit the ground or the target, or its state diverged.
        crash_reason: why, in words (None if not crashed).
        final_distance_m: distance to the target centre at the end.
        min_distance_m: smallest distance to the target centre.
        duration_s: sim time flown.
        imu_delivered: IMU samples delivered.
        imu_dropped: IMU samples dropped.
        images_delivered: camera frames delivered.
        images_dropped: camera frames dropped.
        commands_received: calls of ``set_command``.
        command_timeouts: times the vehicle fell back to hover for lack of commands.
        trajectory: the true state over time.
        disturbances: the episode's occlusions, camera dropouts, rate schedules and camera latency.
        images_occluded: delivered frames in which the target was hidden.
    """

    seed: int
    variant: ScenarioVariant
    target_position: np.ndarray
    start_position: np.ndarray
    reached: bool
    time_to_reach_s: float | None
    crashed: bool
    crash_reason: str | None
    final_distance_m: float
    min_distance_m: float
    duration_s: float
    imu_delivered: int
    imu_dropped: int
    images_delivered: int
    images_dropped: int
    commands_received: int
    command_timeouts: int
    trajectory: Trajectory
    disturbances: Disturbances = Disturbances()
    images_occluded: int = 0


class Simulator:
    """A seeded episode that a controller drives from outside.

    Args:
        config: settings; ``config.seed`` is the seed unless ``seed`` is given.
        variant: scenario variant (enum or name).
        seed: overrides ``config.seed``.
        reference_physics: fly rotorpy's own dynamics, SE(3) controller and IMU instead of
            their float re-implementations (the same numbers to rounding, ~4x slower; for
            parity checks and benchmarks).

    Attributes:
        config: settings.
        variant: scenario variant.
        seed: the episode's seed.
        scene: start pose, target, distractors, lighting.
        imu_timing: the IMU stream's rate / jitter / drop probability in this episode.
        camera_timing: the camera stream's.
        intrinsics: camera intrinsics (for CameraInfo).
        vehicle: the true vehicle (rotorpy state, tracker, wind).
        imu: the IMU model (its per-episode biases are ``imu.accel_bias`` / ``imu.gyro_bias``).
        camera: the camera (``camera.renderer`` renders any pose of this scene).
        disturbances: occlusions, camera dropouts, rate schedules and camera latency.
    """

    def __init__(
        self,
        config: SimConfig = SimConfig(),
        variant: str | ScenarioVariant = ScenarioVariant.NOMINAL,
        seed: int | None = None,
        *,
        reference_physics: bool = False,
    ) -> None:
        self.config = config
        self.variant = variant_from_name(variant)
        self.seed = config.seed if seed is None else int(seed)
        spec = variant_spec(self.variant)
        # Independent streams: changing one (e.g. the variant's timing) leaves the others as they were.
        streams = np.random.SeedSequence(self.seed).spawn(9)
        scene_rng, timing_rng, imu_clock_rng, camera_clock_rng, imu_rng, camera_rng, wind_rng, motor_rng, event_rng = (
            np.random.default_rng(s) for s in streams
        )
        self.scene: Scene = sample_scene(config, spec, scene_rng)
        self.disturbances: Disturbances = sample_disturbances(spec, config.duration_s, event_rng)
        imu_timing, camera_timing = stream_timings(config, spec, timing_rng)
        d = self.disturbances
        if d.imu_rates:
            imu_timing = dataclasses.replace(imu_timing, rate_hz=d.imu_rates[0][1], schedule=d.imu_rates)
        if d.camera_rates:
            camera_timing = dataclasses.replace(camera_timing, rate_hz=d.camera_rates[0][1], schedule=d.camera_rates)
        if d.blackouts_ns:
            camera_timing = dataclasses.replace(camera_timing, blackouts_ns=d.blackouts_ns)
        self.imu_timing, self.camera_timing = imu_timing, camera_timing
        self._latency_rng = event_rng
        self._imu_clock = StreamClock(self.imu_timing, imu_clock_rng)
        self._camera_clock = StreamClock(self.camera_timing, camera_clock_rng)
        self.vehicle = Vehicle(
            config.vehicle,
            config.integrator,
            np.array(self.scene.start_position),
            self.scene.start_yaw_rad,
            sample_wind(spec, wind_rng),
            motor_rng,
            reference_physics,
        )
        self.intrinsics: CameraIntrinsics = config.intrinsics
        self.imu = ImuSensor(config, self.imu_timing.rate_hz, imu_rng, reference_physics)
        renderer = Renderer(self.intrinsics, math.radians(config.camera_pitch_deg), self.scene)
        self.camera = CameraSensor(config, renderer, camera_rng)
        self._target = self.scene.target_position
        self._end_ns = round(config.duration_s * NS_PER_S)
        self._dt_ns = round(config.physics_dt_s * NS_PER_S)
        self._hold_ns = round(config.success_hold_s * NS_PER_S)
        self._timeout_ns = round(config.command_timeout_s * NS_PER_S)
        self._now_ns = 0
        self._command = np.zeros(4)
        self._pending: list[tuple[int, int, np.ndarray]] = []  # heap of (stamp_ns, sequence, command)
        self._deadline_ns: int | None = None
        self._buffer: deque[SensorRecord] = deque()
        self._in_flight: deque[tuple[int, ImageFrame]] = deque()  # (delivery ns, frame) of delayed frames
        self._images_occluded = 0
        self._commands_received = 0
        self._command_timeouts = 0
        self._inside_since_ns: int | None = None
        self._reached_ns: int | None = None
        self._crash_reason: str | None = None
        self._min_distance = math.inf
        self._log: list[tuple[int, np.ndarray, np.ndarray, float, np.ndarray]] = []
        self._record()

    # ---------------------------------------------------------------- driving

    @property
    def now_ns(self) -> int:
        """Current sim time, ns since the episode start."""
        return self._now_ns

    @property
    def end_ns(self) -> int:
        """Sim time at which the episode ends, ns."""
        return self._end_ns

    @property
    def next_stamp_ns(self) -> int:
        """Sim time of the next sensor event (may lie past the episode end); for scheduling a timer.

        That is the event's stamp, or for a frame delayed by camera latency its delivery time.
        """
        if self._buffer:
            return self._buffer[0].stamp_ns
        return min(self._imu_clock.next_stamp_ns, self._camera_clock.next_stamp_ns, self._next_delivery_ns)

    @property
    def _next_delivery_ns(self) -> int:
        return self._in_flight[0][0] if self._in_flight else self._end_ns + 1

    @property
    def done(self) -> bool:
        """The episode is over: time is up, the vehicle crashed, or it reached the target with stop_on_success."""
        return (
            self._now_ns >= self._end_ns
            or self._crash_reason is not None
            or (self.config.stop_on_success and self._reached_ns is not None)
        )

    @property
    def command(self) -> Command:
        """The command being flown right now (after clipping, timeouts included)."""
        return Command.heading(self._now_ns, *(float(v) for v in self._command))

    def set_command(self, command: Command | Sequence[float] | np.ndarray, stamp_ns: int | None = None) -> None:
        """Fly ``command`` from ``stamp_ns`` on (now if None or already past).

        The command is clipped to ``max_speed_mps`` (norm of the velocity) and ``max_yaw_rate_rps``.
        Without a newer command for ``command_timeout_s`` the vehicle falls back to hover.

        Raises:
            SimError: the command is not 4 finite numbers.
        """
        values = command.heading_array() if isinstance(command, Command) else np.asarray(command, dtype=float).reshape(-1)
        if values.shape != (4,) or not np.all(np.isfinite(values)):
            raise SimError(f"A command must be 4 finite numbers [vx, vy, vz, yaw_rate], got {command!r}.")
        speed = float(np.linalg.norm(values[:3]))
        if speed > self.config.max_speed_mps:
            values[:3] *= self.config.max_speed_mps / speed
        values[3] = np.clip(values[3], -self.config.max_yaw_rate_rps, self.config.max_yaw_rate_rps)
        stamp = self._now_ns if stamp_ns is None else max(int(stamp_ns), self._now_ns)
        heapq.heappush(self._pending, (stamp, self._commands_received, values))
        self._commands_received += 1
        self._apply_due_commands()

    def advance_to(self, t_ns: int) -> list[SensorRecord]:
        """Simulate up to ``t_ns`` (capped at the episode end) and return the sensor events on the way.

        Events come in delivery order: stamp order (IMU before camera on equal stamps), except
        that with camera latency a frame stamped t comes at t + latency, after the IMU samples
        stamped before that. Returns [] once the episode is done.

        Raises:
            SimError: ``t_ns`` lies before the current sim time.
        """
        if t_ns < self._now_ns:
            raise SimError(f"Cannot advance back in time to {t_ns!r} ns; the simulation is at {self._now_ns} ns.")
        target = min(int(t_ns), self._end_ns)
        events: list[SensorRecord] = []
        while True:
            self._apply_due_commands()
            self._emit_due(events)
            if self.done or self._now_ns >= target:
                return events
            boundary = min(target, self._imu_clock.next_stamp_ns, self._camera_clock.next_stamp_ns, self._next_delivery_ns)
            if self._pending:
                boundary = min(boundary, self._pending[0][0])
            if self._deadline_ns is not None:
                boundary = min(boundary, self._deadline_ns)
            self._integrate_to(boundary)

    def next_event(self) -> SensorRecord | None:
        """Simulate up to the next sensor event and return it (None once the episode is done)."""
        while not self._buffer and not self.done:
            self._buffer.extend(self.advance_to(self.next_stamp_ns))
        return self._buffer.popleft() if self._buffer else None

    def events(self) -> Iterator[SensorRecord]:
        """All remaining sensor events in delivery order; commands set in between take effect at once."""
        while (event := self.next_event()) is not None:
            yield event

    # ---------------------------------------------------------------- observing

    @property
    def state(self) -> VehicleState:
        """The true vehicle state now (copies)."""
        v = self.vehicle
        return VehicleState(
            v.position.copy(), v.velocity.copy(), v.quaternion.copy(), v.state["w"].copy(), v.yaw
        )

    @property
    def target_position(self) -> np.ndarray:
        """Target centre (world, m)."""
        return self._target.copy()

    def result(self) -> EpisodeResult:
        """The outcome so far (final once :attr:`done`)."""
        t_ns, pos, vel, yaw, cmd = zip(*self._log)
        trajectory = Trajectory(
            t_s=np.array(t_ns, dtype=np.int64) / NS_PER_S,
            position=np.array(pos),
            velocity=np.array(vel),
            yaw_rad=np.array(yaw),
            command=np.array(cmd),
        )
        return EpisodeResult(
            seed=self.seed,
            variant=self.variant,
            target_position=self._target.copy(),
            start_position=np.array(self.scene.start_position),
            reached=self._reached_ns is not None,
            time_to_reach_s=None if self._reached_ns is None else self._reached_ns / NS_PER_S,
            crashed=self._crash_reason is not None,
            crash_reason=self._crash_reason,
            final_distance_m=float(np.linalg.norm(self.vehicle.position - self._target)),
            min_distance_m=self._min_distance,
            duration_s=self._now_ns / NS_PER_S,
            imu_delivered=self._imu_clock.delivered,
            imu_dropped=self._imu_clock.dropped,
            images_delivered=self._camera_clock.delivered,
            images_dropped=self._camera_clock.dropped,
            commands_received=self._commands_received,
            command_timeouts=self._command_timeouts,
            trajectory=trajectory,
            disturbances=self.disturbances,
            images_occluded=self._images_occluded,
        )

    # ---------------------------------------------------------------- internals

    def _apply_due_commands(self) -> None:
        while self._pending and self._pending[0][0] <= self._now_ns:
            stamp, _, values = heapq.heappop(self._pending)
            self._command = values
            self._deadline_ns = stamp + self._timeout_ns
        if self._deadline_ns is not None and self._deadline_ns <= self._now_ns:
            self._command = np.zeros(4)
            self._deadline_ns = None
            self._command_timeouts += 1

    def _emit_due(self, events: list[SensorRecord]) -> None:
        while self._imu_clock.next_stamp_ns <= self._now_ns:
            events.append(self.imu.sample(self._imu_clock.pop(), self.vehicle))
        d = self.disturbances
        while self._camera_clock.next_stamp_ns <= self._now_ns:
            stamp = self._camera_clock.pop()
            hidden = d.occluded(stamp)
            self._images_occluded += hidden
            frame = self.camera.capture(stamp, self.vehicle, hide_target=hidden)
            if d.camera_latency_ns == 0 and d.camera_latency_jitter_ns == 0:
                events.append(frame)
                continue
            delay = d.camera_latency_ns + int(self._latency_rng.integers(0, d.camera_latency_jitter_ns + 1))
            previous = self._in_flight[-1][0] if self._in_flight else 0
            self._in_flight.append((max(stamp + delay, previous), frame))  # frames arrive in capture order
        while self._in_flight and self._in_flight[0][0] <= self._now_ns:
            events.append(self._in_flight.popleft()[1])

    def _integrate_to(self, boundary_ns: int) -> None:
        start = self._now_ns
        span = boundary_ns - start
        steps = -(-span // self._dt_ns)
        for i in range(1, steps + 1):
            step_end = start + span * i // steps
            self.vehicle.step(self._now_ns / NS_PER_S, (step_end - self._now_ns) / NS_PER_S, self._command)
            self._now_ns = step_end
            self._record()
            if self._crash_reason is not None:
                return

    def _record(self) -> None:
        v = self.vehicle
        position = v.position
        self._log.append((self._now_ns, position.copy(), v.velocity.copy(), v.yaw, self._command.copy()))
        distance = float(np.linalg.norm(position - self._target))
        self._min_distance = min(self._min_distance, distance)
        if not (np.all(np.isfinite(position)) and np.linalg.norm(v.velocity) < MAX_SPEED_BEFORE_DIVERGED_MPS):
            self._crash_reason = f"state diverged at t={self._now_ns / NS_PER_S:.3f} s"
        elif position[2] < self.config.crash_height_m:
            self._crash_reason = f"hit the ground at t={self._now_ns / NS_PER_S:.3f} s"
        elif distance < self.config.target_radius_m + v.radius_m:
            self._crash_reason = f"hit the target at t={self._now_ns / NS_PER_S:.3f} s"
        if self._reached_ns is not None:
            return
        if distance <= self.config.success_radius_m and self._crash_reason is None:
            if self._inside_since_ns is None:
                self._inside_since_ns = self._now_ns
            if self._now_ns - self._inside_since_ns >= self._hold_ns:
                self._reached_ns = self._now_ns
        else:
            self._inside_since_ns = None
