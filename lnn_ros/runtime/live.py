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

Per failsafe tick (:meth:`LiveLoop.tick`, at ``failsafe_rate_hz``): while the watchdog is not
OK (or the clock reads 0) the hover command, stamped with the clock, is returned for publishing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lnn_ros.engine.outcome import Outcome
from lnn_ros.runtime.policy import PolicyRunner
from lnn_ros.runtime.records import Command, ImageFrame, ImuSample, Stream
from lnn_ros.runtime.report import Report, build_report
from lnn_ros.runtime.stats import RateMeter, RollingWindow
from lnn_ros.runtime.watchdog import Watchdog, WatchdogStatus
from lnn_ros.units import NS_PER_S

_ENCODED = (Stream.CAMERA, Outcome.ENCODED)

@dataclass(frozen=True)
class LiveConfig:
    """Settings of the live loop (the node's parameters of the same names).

    Attributes:
        stale_timeout_s: a required stream silent (or invalid) this long -> failsafe.
        stats_window: samples kept for the latency and age percentiles.
        rate_window_s: input rates are measured over this window (the diagnostics period).
    """

    stale_timeout_s: float = 0.5
    stats_window: int = 1000
    rate_window_s: float = 1.0


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
        self.frame_latency_s = RollingWindow(window)
        self.age_s = RollingWindow(window)
        self.rates = {s.value: RateMeter(max(window, 2)) for s in streams}
        self.commands_published = 0  # returned for publishing
        self.commands_withheld = 0  # computed while not OK, by a message that started flying, or at clock 0
        self.hover_commands = 0  # returned by tick()

    # ------------------------------------------------------------------ messages
    def on_imu(self, sample: ImuSample, start_ns: int | None = None) -> Command | None:
        """Handle one IMU sample; returns the command to publish, if any.

        ``start_ns`` (``time.perf_counter_ns``) is when handling began, e.g. at the top of a
        callback before the message was converted; it starts the latency measurement.
        """
        start = time.perf_counter_ns() if start_ns is None else start_ns
        return self._handle(Stream.IMU, self.runner.on_imu(sample), start)

    def on_image(self, frame: ImageFrame, start_ns: int | None = None) -> Command | None:
        """Handle one camera frame; returns the command to publish (camera-driven bundles only)."""
        start = time.perf_counter_ns() if start_ns is None else start_ns
        counters = self.runner.counters
        encoded = counters[_ENCODED]
        command = self.runner.on_image(frame)
        if counters[_ENCODED] != encoded:
            self.frame_latency_s.add((time.perf_counter_ns() - start) / NS_PER_S)
        return self._handle(Stream.CAMERA, command, start)

    def _handle(self, stream: Stream, command: Command | None, start_ns: int) -> Command | None:
        now = self._now_ns()
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
        self.age_s.add((now - command.stamp_ns) / NS_PER_S)
        self.latency_s.add((time.perf_counter_ns() - start_ns) / NS_PER_S)
        return command

    # ------------------------------------------------------------------ ticks
    def tick(self) -> Command | None:
        """The failsafe tick: the hover command (stamped now) while the watchdog is not OK or the clock reads 0."""
        now = self._now_ns()
        if now != 0 and self.watchdog.check(now) is WatchdogStatus.OK:
            return None
        self.hover_commands += 1
        return self.runner.hover_command(now)

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
            frame_latency_s=self.frame_latency_s.summary() if Stream.CAMERA in runner.streams else None,
            preprocess_s=runner.image_cost_s.summary() if runner.image_cost_s is not None else None,
            age_s=self.age_s.summary(),
            rates_hz={name: meter.rate_hz(now, self.config.rate_window_s) for name, meter in self.rates.items()},
            counters=runner.counters_dict(),
            commands_published=self.commands_published,
            hover_published=self.hover_commands,
            bundle_name=bundle.manifest.name,
            bundle_hash=bundle.digest,
            execution_provider=runner.engine.provider,
        )
