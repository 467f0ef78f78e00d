"""What ``lnn_node`` does per message and per timer tick, without ROS: :class:`LiveLoop`.

The node calls it from its callbacks with the ROS clock; the bag replay calls it with the
bag's log time; both therefore make the same decisions. Per message:

* the record goes to the :class:`~lnn_ros.runtime.PolicyRunner`;
* while the clock reads 0 (``use_sim_time`` before the first ``/clock``) there is no arrival
  time to judge freshness by: the message feeds neither the watchdog nor the rate meters and
  its command (if any) is withheld;
* an invalid outcome (NaN, stale stamp, wrong image) stops there and does not count as a sign
  of life;
* a valid one feeds its stream to the :class:`~lnn_ros.runtime.Watchdog`, and a computed
  command (published or not) feeds the watchdog's ``command`` stream (``Stream.COMMAND``):
  inputs that keep coming without commands (every stamp a gap reset, a graph returning NaN)
  end in failsafe once flying, reported as ``stale: command``;
* whenever the watchdog enters OK and the state is not a fresh one (the end of a stale
  period, or WAITING -> OK after the runner stepped on a held value that then went silent),
  the runner is reset and this message's command (if any) is withheld, so flying starts from
  a zero state on the next message;
* a command is returned for publishing only while the watchdog is OK (else it is withheld).

Before the runner, every message's header stamp goes through its stream's
:class:`~lnn_ros.runtime.stamp_gate.StampGate` (too old, from the future, ahead of its own time
base, several time bases on one topic; missed messages estimated from stamp gaps). A message it
rejects is counted (``imu_too_old`` ...) and is no sign of life. Not while the clock reads 0.

Per tick (:meth:`LiveLoop.tick`, every ``tick_period_s`` = 1 / ``failsafe_rate_hz``):

* watchdog OK: if the next tick would come later than ``max_command_gap_s`` after the last
  command returned for publishing, the last command is returned again (a *hold*), so the
  command stream never goes silent for longer than that while the stale timeout decides;
* watchdog not OK (or clock 0): the hover command; with ``failsafe_action`` ``stop``, only for
  ``failsafe_hover_s`` after the watchdog left OK (or after the first tick, while waiting for
  the inputs), then nothing at all, so the autopilot's own offboard-loss failsafe takes over.
  The next policy command (inputs back) resumes publishing.

Time base of ``cmd_vel``: a policy command carries the header stamp of the sensor message
that produced it; a hold or a hover carries the stamp of the last command published plus the
clock time elapsed since it (the clock itself before any command): one time base, the sensors',
which the stamp checks keep within ``max_age_s`` / ``max_future_s`` of the node clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import numpy as np

from lnn_ros.engine.outcome import Outcome
from lnn_ros.runtime.policy import PolicyRunner
from lnn_ros.runtime.records import Command, ImageFrame, ImuSample, Stream
from lnn_ros.runtime.report import Report, build_report
from lnn_ros.runtime.stamp_gate import StampGate, StampLimits
from lnn_ros.runtime.stats import RateMeter, RollingWindow
from lnn_ros.runtime.watchdog import Watchdog, WatchdogStatus
from lnn_ros.units import NS_PER_S, seconds_to_ns

_ENCODED = (Stream.CAMERA, Outcome.ENCODED)


class FailsafeAction(Enum):
    """What the node does once it has hovered ``failsafe_hover_s`` without valid inputs."""

    HOVER = "hover"  # keep publishing hover
    STOP = "stop"  # stop publishing: the autopilot's offboard-loss failsafe (land / return) takes over


class FailsafeOutput(Enum):
    """What the tick publishes now (reported as ``failsafe_output``)."""

    NONE = "none"  # flying: policy commands (and holds)
    HOVER = "hover"
    STOPPED = "stopped"


@dataclass(frozen=True)
class LiveConfig:
    """Settings of the live loop (the node's parameters of the same names).

    Attributes:
        stale_timeout_s: a required stream silent (or invalid) this long -> failsafe.
        stats_window: samples kept for the latency and age percentiles.
        rate_window_s: input rates are measured over this window (the diagnostics period).
        tick_period_s: period of :meth:`LiveLoop.tick` (1 / ``failsafe_rate_hz``).
        max_command_gap_s: longest silence of the command stream while flying (holds fill it);
            at least ``tick_period_s``.
        failsafe_hover_s: with ``failsafe_action`` STOP, hover this long, then stop publishing.
        failsafe_action: keep hovering, or stop publishing after ``failsafe_hover_s``.
        max_age_s, max_future_s, time_base_tolerance_s: stamp checks (0 = off), see
            :class:`~lnn_ros.runtime.stamp_gate.StampGate`.
        imu_rate_hz, camera_rate_hz: expected input rates for ``<stream>_missed`` (0: learnt).
    """

    stale_timeout_s: float = 0.5
    stats_window: int = 1000
    rate_window_s: float = 1.0
    tick_period_s: float = 0.05
    max_command_gap_s: float = 0.15
    failsafe_hover_s: float = 2.0
    failsafe_action: FailsafeAction = FailsafeAction.STOP
    max_age_s: float = 0.5
    max_future_s: float = 0.1
    time_base_tolerance_s: float = 0.1
    imu_rate_hz: float = 0.0
    camera_rate_hz: float = 0.0

    def __post_init__(self) -> None:
        if not self.tick_period_s > 0:
            raise ValueError(f"LiveConfig.tick_period_s must be > 0, got {self.tick_period_s!r}.")
        if not self.max_command_gap_s >= self.tick_period_s:
            raise ValueError(
                f"max_command_gap_s ({self.max_command_gap_s!r} s) must be at least the tick period "
                f"1 / failsafe_rate_hz ({self.tick_period_s!r} s): the tick publishes the holds."
            )
        if not self.failsafe_hover_s >= 0:
            raise ValueError(f"failsafe_hover_s must be >= 0, got {self.failsafe_hover_s!r}.")

    def stamp_limits(self, stream: Stream, max_gap_s: float) -> StampLimits:
        """The stamp checks of ``stream`` (its expected rate; the engine's ``max_gap_s``)."""
        rate = {Stream.IMU: self.imu_rate_hz, Stream.CAMERA: self.camera_rate_hz}.get(stream, 0.0)
        return StampLimits(self.max_age_s, self.max_future_s, self.time_base_tolerance_s, rate, max_gap_s)


class LiveBatch(NamedTuple):
    """What :meth:`LiveLoop.run_batch` returned for publishing: one command per IMU sample of the batch.

    ``stamps_ns`` [K] int64 (the samples' stamps), ``values`` [K,O] float32, ``twists`` [K,6] float64.
    """

    stamps_ns: np.ndarray
    values: np.ndarray
    twists: np.ndarray


class LiveLoop:
    """The node's message handling on an injected clock (integer nanoseconds).

    Args:
        runner: the policy (its streams are the watchdog's required streams).
        config: watchdog timeout and statistics sizes.
        now_ns: the clock: the node clock in ``lnn_node``, the log time in replay.
    """

    def __init__(self, runner: PolicyRunner, config: LiveConfig, now_ns: Callable[[], int]) -> None:
        self.runner = runner
        self.config = config
        self._now_ns = now_ns
        streams = runner.streams
        self.watchdog = Watchdog([s.value for s in streams], config.stale_timeout_s, now_ns, output=Stream.COMMAND.value)
        window = config.stats_window
        self.latency_s = RollingWindow(window)
        # Sensor publish -> the node's middleware reception, of the messages that produced a command:
        # recorded by the ROS node from message info (empty in a replay and without message info).
        self.transport_s = RollingWindow(window)
        # The node's middleware reception -> its callback starting (the wait for the executor), same messages.
        self.pickup_s = RollingWindow(window)
        self.frame_latency_s = RollingWindow(window)
        self.age_s = RollingWindow(window)
        self.rates = {s.value: RateMeter(max(window, 2)) for s in streams}
        max_gap_s = runner.engine.clock.max_gap_ns / NS_PER_S
        self.gates = {s: StampGate(s, config.stamp_limits(s, max_gap_s), runner.counters) for s in streams}
        self._imu_gate = self.gates.get(Stream.IMU)
        self._camera_gate = self.gates.get(Stream.CAMERA)
        self.commands_published = 0  # returned for publishing
        self.commands_withheld = 0  # computed while not OK, by a message that started flying, or at clock 0
        self.hover_commands = 0  # hover returned by tick()
        self.hold_commands = 0  # the last command again, returned by tick() to bound the silence
        self.failsafe_stops = 0  # times publishing stopped after failsafe_hover_s
        self.output = FailsafeOutput.HOVER
        self._hold_after_ns = seconds_to_ns(config.max_command_gap_s - config.tick_period_s)
        self._hover_for_ns = seconds_to_ns(config.failsafe_hover_s)
        self._stop = config.failsafe_action is FailsafeAction.STOP
        self._failsafe_since_ns: int | None = None  # clock when the watchdog last left OK (or the first tick)
        self._last: Command | None = None  # the last command returned for publishing
        self._last_ns = 0  # the clock when it was
        self.max_command_gap_ns = 0  # longest clock time between two commands returned while publishing

    # ------------------------------------------------------------------ messages
    def on_imu(self, sample: ImuSample, start_ns: int | None = None) -> Command | None:
        """Handle one IMU sample; returns the command to publish, if any.

        ``start_ns`` (``time.perf_counter_ns``) is when handling began, e.g. at the top of a
        callback before the message was converted; it starts the latency measurement.
        """
        start = time.perf_counter_ns() if start_ns is None else start_ns
        now = self._now_ns()  # the arrival time, read once per message
        gate = self._imu_gate
        if gate is not None and now != 0 and self._rejected(Stream.IMU, gate, sample.stamp_ns, now):
            return None
        return self._handle(Stream.IMU, self.runner.on_imu(sample), start, now)

    def on_image(self, frame: ImageFrame, start_ns: int | None = None) -> Command | None:
        """Handle one camera frame; returns the command to publish (camera-driven bundles only)."""
        start = time.perf_counter_ns() if start_ns is None else start_ns
        now = self._now_ns()
        gate = self._camera_gate
        if gate is not None and now != 0 and self._rejected(Stream.CAMERA, gate, frame.stamp_ns, now):
            return None
        counters = self.runner.counters
        encoded = counters[_ENCODED]
        command = self.runner.on_image(frame)
        if counters[_ENCODED] != encoded:
            self.frame_latency_s.add((time.perf_counter_ns() - start) / NS_PER_S)
        return self._handle(Stream.CAMERA, command, start, now)

    def _rejected(self, stream: Stream, gate: StampGate, stamp_ns: int, now: int) -> bool:
        """The gate's verdict; a rejected message is counted as received and dropped, like the runner's drops."""
        outcome = gate.check(stamp_ns, now)
        if outcome is None:
            return False
        runner = self.runner
        runner.counters[gate.received_key] += 1
        runner.last_outcome = outcome
        self.rates[stream.value].tick(now)
        return True

    def _handle(self, stream: Stream, command: Command | None, start_ns: int, now: int) -> Command | None:
        if now == 0:  # the clock has not started: no arrival time to judge freshness by
            self.commands_withheld += command is not None
            return None
        self.rates[stream.value].tick(now)
        runner = self.runner
        if not runner.last_outcome.valid:
            return None
        watchdog = self.watchdog
        was_ok = watchdog.status is WatchdogStatus.OK
        recovered = watchdog.feed(stream.value, now)
        if command is not None:
            recovered = watchdog.feed(Stream.COMMAND.value, now) or recovered
        if not was_ok and watchdog.status is WatchdogStatus.OK and (recovered or runner.has_state):
            runner.reset()  # fly from a zero state, not one built while the watchdog was not OK
            self.commands_withheld += command is not None
            return None
        if command is None:
            return None
        if watchdog.check(now) is not WatchdogStatus.OK:
            self.commands_withheld += 1
            return None
        self.commands_published += 1
        self._sent(command, now)
        self.age_s.add((now - command.stamp_ns) / NS_PER_S)
        self.latency_s.add((time.perf_counter_ns() - start_ns) / NS_PER_S)
        return command

    def _sent(self, command: Command, now: int) -> None:
        """Remember the command returned for publishing at ``now`` (for holds, stamps and the gap statistic)."""
        if self._last is not None and self.output is not FailsafeOutput.STOPPED:
            gap = now - self._last_ns
            if gap > self.max_command_gap_ns:
                self.max_command_gap_ns = gap
        self._last = command
        self._last_ns = now
        self.output = FailsafeOutput.NONE if self.watchdog.status is WatchdogStatus.OK else FailsafeOutput.HOVER

    # ------------------------------------------------------------------ batches (replay)
    def run_batch(
        self,
        is_frame: np.ndarray,
        now_ns: np.ndarray,
        stamps_ns: np.ndarray,
        imu: np.ndarray,
        frames: Sequence[ImageFrame],
        ticks_ns: np.ndarray,
    ) -> LiveBatch | None:
        """:meth:`on_imu` / :meth:`on_image` of a run of messages and the failsafe :meth:`tick` s among
        them, at once, for a caller that knows them in advance (a bag replay).

        Args:
            is_frame: [M] bool, True for a camera frame, False for an IMU sample, in call order.
            now_ns: [M] int64, the clock when each message is handled (non-decreasing, none 0).
            stamps_ns: [M] int64, their header stamps.
            imu: [K,10] float64, the IMU samples' angular velocity, linear acceleration and
                orientation, in order.
            frames: the frames, in order.
            ticks_ns: int64, the clock of each tick due among them (a tick comes before the first
                message whose clock is at or after it; there is no tick before the first message).

        Taken only when the step-by-step calls would all be the common case: flying (watchdog OK,
        no failsafe output), every stamp accepted by its gate, every IMU sample stepping and
        published (no stream stale at any check, no hold due at a tick), every frame held
        (:meth:`PolicyRunner.run_batch`). Then every command is returned (one per IMU sample)
        and the loop, its gates, watchdog, statistics and the runner end as the calls one by one
        leave them; the step latency of each command (and frame latency) is the batch's wall time
        shared out evenly. Otherwise returns None and changes nothing: call them one by one.
        """
        start = time.perf_counter_ns()
        watchdog = self.watchdog
        last = self._last
        if (
            not len(now_ns)
            or watchdog.status is not WatchdogStatus.OK
            or self.output is not FailsafeOutput.NONE
            or last is None
            or not (now_ns != 0).all()
            or (frames and self._camera_gate is None)
        ):
            return None
        imu_at = np.flatnonzero(~is_frame)
        frame_at = np.flatnonzero(is_frame)
        imu_now = now_ns[imu_at]
        frame_now = now_ns[frame_at]
        imu_stamps = stamps_ns[imu_at]
        if not len(imu_at):
            return None
        commits = []
        for gate, at in ((self._imu_gate, imu_at), (self._camera_gate, frame_at)):
            if gate is not None and len(at):
                commit = gate.accept_run(stamps_ns[at], now_ns[at])
                if commit is None:
                    return None
                commits.append(commit)
        if not self._fresh_throughout(imu_at, frame_at, now_ns, ticks_ns):
            return None
        run = self.runner.run_batch(imu, imu_stamps, frames, np.searchsorted(imu_at, frame_at))
        if run is None:
            return None
        for commit in commits:
            commit()
        for stream, at in ((Stream.IMU, imu_now), (Stream.CAMERA, frame_now)):
            if len(at):
                self.rates[stream.value].extend(at)
                watchdog.feed(stream.value, int(at[-1]))
        watchdog.feed(Stream.COMMAND.value, int(imu_now[-1]))
        if len(ticks_ns):
            self._failsafe_since_ns = None
        count = len(imu_at)
        self.commands_published += count
        gaps = np.diff(imu_now, prepend=np.int64(self._last_ns))
        self.max_command_gap_ns = max(self.max_command_gap_ns, int(gaps.max()))
        values = run.values
        self._last = Command(int(imu_stamps[-1]), tuple(run.twists[-1].tolist()), values[-1].copy())
        self._last_ns = int(imu_now[-1])
        self.age_s.extend((imu_now - imu_stamps) / NS_PER_S)
        elapsed_s = (time.perf_counter_ns() - start) / NS_PER_S
        if frames:
            self.frame_latency_s.extend(np.full(len(frames), run.encode_s / len(frames)))
        self.latency_s.extend(np.full(count, (elapsed_s - run.encode_s) / count))
        return LiveBatch(imu_stamps, values, run.twists)

    def _fresh_throughout(self, imu_at: np.ndarray, frame_at: np.ndarray, now_ns: np.ndarray, ticks_ns: np.ndarray) -> bool:
        """Whether no watchdog check of a batch (before each publish, at each tick) finds a stale
        stream, and no tick is due to send a hold (see :meth:`run_batch`)."""
        watchdog = self.watchdog
        timeout = watchdog.timeout_ns
        last_ns = watchdog._last_ns  # the feeds before the batch, read only
        imu_now = now_ns[imu_at]
        frame_now = now_ns[frame_at]
        # IMU and command are fed at each sample before its check: only the camera can be stale there.
        if Stream.CAMERA.value in last_ns:
            camera_before = np.concatenate([[last_ns[Stream.CAMERA.value] or 0], frame_now])
            if (imu_now - camera_before[np.searchsorted(frame_at, imu_at)] > timeout).any():
                return False
        if not len(ticks_ns):
            return True
        handled = np.searchsorted(now_ns, ticks_ns, side="left")  # messages handled before each tick
        imu_before = np.searchsorted(imu_at, handled)
        sources = [
            (Stream.IMU.value, imu_now, imu_before),
            (Stream.COMMAND.value, imu_now, imu_before),
        ]
        if Stream.CAMERA.value in last_ns:
            sources.append((Stream.CAMERA.value, frame_now, np.searchsorted(frame_at, handled)))
        for name, times, before in sources:
            previous = last_ns[name]
            if previous is None:
                return False
            if (ticks_ns - np.concatenate([[previous], times])[before] > timeout).any():
                return False
        published = np.concatenate([[self._last_ns], imu_now])[imu_before]
        return not (ticks_ns - published >= self._hold_after_ns).any()

    # ------------------------------------------------------------------ ticks
    def tick(self) -> Command | None:
        """The timer tick: a hold while flying when the command stream would go silent too long; hover
        (then, with ``failsafe_action`` STOP, nothing) while the watchdog is not OK or the clock reads 0."""
        now = self._now_ns()
        last = self._last
        if now != 0 and self.watchdog.check(now) is WatchdogStatus.OK:
            self._failsafe_since_ns = None
            if last is None or now - self._last_ns < self._hold_after_ns:
                return None
            self.hold_commands += 1
            hold = Command(self._stamp(now), last.twist, last.values)
            self._sent(hold, now)
            return hold
        if now == 0:  # no clock yet (use_sim_time before /clock): nothing to time the failsafe by
            self.hover_commands += 1
            return self.runner.hover_command(0)
        since = self._failsafe_since_ns
        if since is None:
            self._failsafe_since_ns = since = now
        if self._stop and now - since >= self._hover_for_ns:
            if self.output is not FailsafeOutput.STOPPED:
                self.output = FailsafeOutput.STOPPED
                self.failsafe_stops += 1
            return None
        self.hover_commands += 1
        hover = self.runner.hover_command(self._stamp(now))
        self._sent(hover, now)
        return hover

    def _stamp(self, now: int) -> int:
        """A tick command's stamp: the last command's stamp + the clock time since it (the clock before any)."""
        last = self._last
        return now if last is None else last.stamp_ns + (now - self._last_ns)

    def reset(self) -> None:
        """Zero the policy state (the ``~/reset`` service)."""
        self.runner.reset()

    def report(self) -> Report:
        """The diagnostics report at the clock's now."""
        now = self._now_ns()
        runner = self.runner
        bundle = runner.engine.bundle
        return build_report(
            status=self.watchdog.check(now),
            stale_streams=self.watchdog.stale_streams(now),
            failsafe_entries=self.watchdog.failsafe_entries,
            recoveries=self.watchdog.recoveries,
            latency_s=self.latency_s.summary(),
            transport_s=self.transport_s.summary() if self.transport_s.count else None,
            pickup_s=self.pickup_s.summary() if self.pickup_s.count else None,
            frame_latency_s=self.frame_latency_s.summary() if Stream.CAMERA in runner.streams else None,
            preprocess_s=runner.image_cost_s.summary() if runner.image_cost_s is not None else None,
            age_s=self.age_s.summary(),
            rates_hz={name: meter.rate_hz(now, self.config.rate_window_s) for name, meter in self.rates.items()},
            counters=runner.counters_dict(),
            commands_published=self.commands_published,
            hover_published=self.hover_commands,
            hold_published=self.hold_commands,
            failsafe_output=self.output.value,
            failsafe_stops=self.failsafe_stops,
            max_command_gap_s=self.max_command_gap_ns / NS_PER_S,
            expected_rates_hz={s.value: gate.expected_rate_hz for s, gate in self.gates.items()},
            mixed_time_base=[s.value for s, gate in self.gates.items() if gate.mixed],
            bundle_name=bundle.manifest.name,
            bundle_hash=bundle.digest,
            execution_provider=runner.engine.provider,
        )

