"""The input watchdog: which required streams are alive, and when to fall back to hover.

Plain logic with an injected clock (integer nanoseconds), so it is tested without ROS. The
node feeds it the *arrival* time of every valid message (node clock, i.e. sim time under
``use_sim_time``); header stamps play no part here.

States:

* ``WAITING``  since start, some required stream has not delivered a valid message yet;
* ``OK``       every required stream delivered one within the last ``stale_timeout_s``;
* ``STALE``    after having been OK, some stream has been silent (or invalid) longer than that.

The node publishes the hover command at a fixed rate whenever the state is not OK and only
publishes policy commands while it is OK. :meth:`Watchdog.feed` returns ``True`` for the
message that ends a STALE period: the caller resets the policy state before flying on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum

NS_PER_S = 1_000_000_000


class WatchdogStatus(Enum):
    """Whether the policy may fly."""

    WAITING = "waiting"
    OK = "ok"
    STALE = "stale"


class Watchdog:
    """Tracks the last valid message time of each required stream.

    Args:
        streams: names of the required streams (e.g. ``("imu", "camera")``).
        stale_timeout_s: a stream silent longer than this is stale.
        now_ns: the clock, integer nanoseconds.

    Raises:
        ValueError: no stream or a timeout that is not > 0.
    """

    def __init__(self, streams: Iterable[str], stale_timeout_s: float, now_ns: Callable[[], int]) -> None:
        names = tuple(streams)
        if not names:
            raise ValueError("Watchdog needs at least one stream to watch, got none.")
        if not stale_timeout_s > 0:
            raise ValueError(f"Watchdog stale_timeout_s must be > 0, got {stale_timeout_s!r}.")
        self.streams = names
        self.timeout_ns = int(round(stale_timeout_s * NS_PER_S))
        self._now_ns = now_ns
        self._last_ns: dict[str, int | None] = {name: None for name in names}
        self.status = WatchdogStatus.WAITING
        self.failsafe_entries = 0  # OK -> STALE transitions
        self.recoveries = 0  # STALE -> OK transitions

    def feed(self, stream: str, now_ns: int | None = None) -> bool:
        """Record a valid message of ``stream`` at ``now_ns`` (default: the clock's now).

        Returns:
            True if this message ends a STALE period (the caller must reset the policy).

        Raises:
            ValueError: ``stream`` is not one of the watched streams.
        """
        if stream not in self._last_ns:
            raise ValueError(f"Watchdog watches {list(self.streams)}, not {stream!r}.")
        now = self._now_ns() if now_ns is None else now_ns
        self._last_ns[stream] = now
        if self.status is WatchdogStatus.OK or self.stale_streams(now):
            return False
        recovered = self.status is WatchdogStatus.STALE
        self.status = WatchdogStatus.OK
        self.recoveries += recovered
        return recovered

    def check(self, now_ns: int | None = None) -> WatchdogStatus:
        """Re-evaluate at ``now_ns`` (default: the clock's now); call periodically and before publishing."""
        if self.status is WatchdogStatus.OK and self.stale_streams(now_ns):
            self.status = WatchdogStatus.STALE
            self.failsafe_entries += 1
        return self.status

    def stale_streams(self, now_ns: int | None = None) -> list[str]:
        """Streams with no valid message yet or none within the timeout."""
        now = self._now_ns() if now_ns is None else now_ns
        return [
            name for name, last in self._last_ns.items() if last is None or now - last > self.timeout_ns
        ]

    def silence_s(self, stream: str, now_ns: int | None = None) -> float | None:
        """Seconds since the last valid message of ``stream`` (None if never)."""
        last = self._last_ns[stream]
        if last is None:
            return None
        now = self._now_ns() if now_ns is None else now_ns
        return (now - last) / NS_PER_S
