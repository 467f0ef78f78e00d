"""The input watchdog: which required streams are alive, and when to fall back to hover.

Plain logic with an injected clock (integer nanoseconds), so it is tested without ROS. The
node feeds it the *arrival* time of every valid message (node clock, i.e. sim time under
``use_sim_time``); header stamps play no part here.

States:

* ``WAITING``  since start, some required input has not delivered a valid message yet;
* ``OK``       every required input delivered one within the last ``stale_timeout_s`` and,
  with an ``output`` stream, the policy produced an output within that time too;
* ``STALE``    after having been OK, some input has been silent (or invalid) longer than that,
  or (``output``) inputs kept coming but the policy produced nothing for that long (e.g. a
  driver whose every stamp is a gap reset, or a graph that only outputs NaN/Inf).

The optional ``output`` stream (:class:`~lnn_ros.runtime.LiveLoop` uses ``Stream.COMMAND``'s
name, ``"command"``, and feeds it whenever the policy computes a command) is not needed to leave
WAITING, so the node hovers from the start until the inputs are there; every entry into OK
starts its timer at the entry time; from then on it is required like an input, to stay OK and
to leave STALE. :meth:`Watchdog.stale_streams` names it only when every input is fresh, so the
diagnostics give the cause (``stale: imu`` when the IMU stopped, ``stale: command`` when the
IMU flows but no command comes out).

A time more than ``stale_timeout_s`` *before* a stream's last message (the clock stepped back:
a sim-time loop, an NTP/GPS step) also counts as stale: the stream's freshness is unknown, so
the watchdog fails safe instead of trusting a "last message" in the future; its next message
refreshes it (and, if that ends a STALE period, the caller resets the state).

The node publishes the hover command at a fixed rate whenever the state is not OK and only
publishes policy commands while it is OK. :meth:`Watchdog.feed` returns ``True`` for the
message that ends a STALE period: the caller resets the policy state before flying on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum

from lnn_ros.units import NS_PER_S


class WatchdogStatus(Enum):
    """Whether the policy may fly."""

    WAITING = "waiting"
    OK = "ok"
    STALE = "stale"


class Watchdog:
    """Tracks the last valid message time of each required stream.

    Args:
        streams: names of the required input streams (e.g. ``("imu", "camera")``).
        stale_timeout_s: a stream silent longer than this is stale.
        now_ns: the clock, integer nanoseconds.
        output: name of the pseudo-stream that proves the policy produces outputs (e.g.
            ``"command"``), required once flying; ``None`` watches the inputs only.

    Raises:
        ValueError: no stream, a timeout that is not > 0, or ``output`` among ``streams``.
    """

    def __init__(
        self, streams: Iterable[str], stale_timeout_s: float, now_ns: Callable[[], int], *, output: str | None = None
    ) -> None:
        names = tuple(streams)
        if not names:
            raise ValueError("Watchdog needs at least one stream to watch, got none.")
        if not stale_timeout_s > 0:
            raise ValueError(f"Watchdog stale_timeout_s must be > 0, got {stale_timeout_s!r}.")
        if output is not None and output in names:
            raise ValueError(f"Watchdog output {output!r} is also an input stream {list(names)}; give it another name.")
        self.streams = names
        self.output = output
        self.timeout_ns = round(stale_timeout_s * NS_PER_S)
        self._now_ns = now_ns
        self._last_ns: dict[str, int | None] = {name: None for name in names}
        if output is not None:
            self._last_ns[output] = None
        self.status = WatchdogStatus.WAITING
        self.failsafe_entries = 0  # OK -> STALE transitions
        self.recoveries = 0  # STALE -> OK transitions

    def feed(self, stream: str, now_ns: int | None = None) -> bool:
        """Record a valid message of ``stream`` (an input or the output) at ``now_ns`` (default: the clock's now).

        Returns:
            True if this message ends a STALE period (the caller must reset the policy).

        Raises:
            ValueError: ``stream`` is not one of the watched streams.
        """
        if stream not in self._last_ns:
            raise ValueError(f"Watchdog watches {list(self._last_ns)}, not {stream!r}.")
        now = self._now_ns() if now_ns is None else now_ns
        self._last_ns[stream] = now
        status = self.status
        if status is WatchdogStatus.OK or not self._fresh(now, status is WatchdogStatus.STALE):
            return False
        self.status = WatchdogStatus.OK
        if self.output is not None:
            self._last_ns[self.output] = now  # entering OK starts the output's timer
        recovered = status is WatchdogStatus.STALE
        self.recoveries += recovered
        return recovered

    def check(self, now_ns: int | None = None) -> WatchdogStatus:
        """Re-evaluate at ``now_ns`` (default: the clock's now); call periodically and before publishing."""
        if self.status is WatchdogStatus.OK:
            now = self._now_ns() if now_ns is None else now_ns
            if not self._fresh(now, True):
                self.status = WatchdogStatus.STALE
                self.failsafe_entries += 1
        return self.status

    def stale_streams(self, now_ns: int | None = None) -> list[str]:
        """Inputs with no valid message yet or none within the timeout; else the output if it is stale.

        The output is listed only after the first entry into OK and only when every input is
        fresh: it names why the watchdog is not OK.
        """
        now = self._now_ns() if now_ns is None else now_ns
        stale = [name for name in self.streams if self._stale(self._last_ns[name], now)]
        output = self.output
        if (
            not stale
            and output is not None
            and self.status is not WatchdogStatus.WAITING
            and self._stale(self._last_ns[output], now)
        ):
            stale.append(output)
        return stale

    def silence_s(self, stream: str, now_ns: int | None = None) -> float | None:
        """Seconds since the last valid message of ``stream`` (None if never; negative if the clock stepped back)."""
        last = self._last_ns[stream]
        if last is None:
            return None
        now = self._now_ns() if now_ns is None else now_ns
        return (now - last) / NS_PER_S

    # ------------------------------------------------------------------ internals
    def _stale(self, last_ns: int | None, now_ns: int) -> bool:
        """Never seen, silent longer than the timeout, or last seen more than the timeout in the future."""
        return last_ns is None or not -self.timeout_ns <= now_ns - last_ns <= self.timeout_ns

    def _fresh(self, now_ns: int, with_output: bool) -> bool:
        """Every input (and, if asked, the output) fresh at ``now_ns``; no allocation."""
        last = self._last_ns
        for name in self.streams:
            if self._stale(last[name], now_ns):
                return False
        return not (with_output and self.output is not None and self._stale(last[self.output], now_ns))
