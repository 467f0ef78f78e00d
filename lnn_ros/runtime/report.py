"""The node's diagnostics report as plain data (the ROS node wraps it in /diagnostics).

:func:`build_report` is pure Python, shared by ``lnn_node`` and the bag replay. Keys (all
values are strings, numbers in plain decimal):

* ``state``: watchdog state (``ok`` / ``waiting`` / ``stale``), ``failsafe``: ``true`` while
  the watchdog is not OK, ``failsafe_output``: ``none`` (flying), ``hover`` or ``stopped``
  (``failsafe_action: stop`` after ``failsafe_hover_s``), ``failsafe_stops``, ``stale_streams``
  (the silent inputs, or ``command`` when the inputs arrive but the policy produces no
  command), ``failsafe_entries``, ``recoveries``;
* ``mixed_time_base``: inputs whose stamps switch between time bases (several publishers on
  one topic?): level ERROR, their messages are dropped (``<stream>_mixed_time_base``);
* ``command_gap_ms.max``: the longest node-clock time between two commands while publishing
  (bounded by ``max_command_gap_s`` while flying); ``hold_published``: holds of the last command;
* ``<stream>.expected_rate_hz``: the rate behind ``<stream>_missed`` (messages estimated lost
  from stamp gaps; 0 while it is being learnt);
* ``step_latency_ms.p50/p99/max``: message handed over -> command ready to publish (convert,
  fuse, step, clamp), over the window;
* ``transport_latency_ms.p50/p99/max`` (``lnn_node`` with message info, Iron and later): sensor
  publish -> the node's middleware reception (``received_timestamp - source_timestamp``) of the
  messages that produced a command, over the window: the hop before ``step_latency_ms``
  (between machines it includes their clock offset);
* ``pickup_latency_ms.p50/p99/max`` (same messages): the node's middleware reception -> its
  callback starting, i.e. the wait for the executor; the first part of ``step_latency_ms``;
* ``frame_latency_ms.p50/p99/max`` (camera bundles): camera callback time of frames that were
  decoded and encoded (the inline encoder's cost);
* ``preprocess_ms.p50/p99/max`` (camera bundles): the camera preprocessing alone (jpeg / png
  decoding, crop, resize, colour, normalise; :attr:`lnn_ros.runtime.image.ImageDecoder.cost_s`);
* ``message_age_ms.p50/p99``: node clock - header stamp of the message, at step time;
* ``<stream>.rate_hz``: received messages per second over the last period;
* ``dropped``: total messages received but not used (sum of the per-reason counts);
* every non-zero ``<stream>_<outcome>`` counter (:mod:`lnn_ros.runtime.counters`: ``imu_received``,
  ``imu_stepped``, ``imu_duplicate``, ``camera_out_of_order``, ``camera_wrong_size``, ...) and the
  engine's own (``dt_clamped``, ``outputs_clamped``, ``explicit_resets``);
* ``resets``: explicit resets (service and watchdog recoveries) + gap resets + non-finite output resets;
* ``commands_published``, ``hover_published``, ``bundle``, ``bundle_hash``, ``execution_provider``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from lnn_ros.runtime.counters import DROPPED_NAMES, RESET_NAMES
from lnn_ros.runtime.records import Stream
from lnn_ros.runtime.stats import Summary
from lnn_ros.runtime.watchdog import WatchdogStatus

COMMAND = Stream.COMMAND.value

class Level(IntEnum):
    """``DiagnosticStatus.level`` values."""

    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class Report:
    """One diagnostics status, ROS-free."""

    level: Level
    message: str
    values: tuple[tuple[str, str], ...]


def _ms(value_s: float) -> str:
    return f"{value_s * 1e3:.3f}"


def build_report(
    *,
    status: WatchdogStatus,
    stale_streams: Sequence[str],
    failsafe_entries: int,
    recoveries: int,
    latency_s: Summary,
    frame_latency_s: Summary | None,
    age_s: Summary,
    rates_hz: Mapping[str, float],
    counters: Mapping[str, int],
    commands_published: int,
    hover_published: int,
    bundle_name: str,
    hold_published: int = 0,
    failsafe_output: str = "none",
    failsafe_stops: int = 0,
    max_command_gap_s: float = 0.0,
    expected_rates_hz: Mapping[str, float] | None = None,
    mixed_time_base: Sequence[str] = (),
    bundle_hash: str,
    execution_provider: str,
    preprocess_s: Summary | None = None,
    transport_s: Summary | None = None,
    pickup_s: Summary | None = None,
) -> Report:
    """Assemble the report; latencies and age are given in seconds."""
    output = "stopped publishing" if failsafe_output == "stopped" else "hover"
    if mixed_time_base:
        level, message = Level.ERROR, (
            f"{', '.join(mixed_time_base)} stamps on several time bases (more than one publisher?): messages dropped"
        )
    elif status is WatchdogStatus.OK:
        level, message = Level.OK, "flying"
    elif status is WatchdogStatus.WAITING:
        level, message = Level.WARN, f"failsafe ({output}): waiting for {', '.join(stale_streams)}"
    elif list(stale_streams) == [COMMAND]:
        level, message = Level.ERROR, f"failsafe ({output}): inputs arrive but no {COMMAND} is produced"
    else:
        level, message = Level.ERROR, f"failsafe ({output}): stale input {', '.join(stale_streams)}"
    values: list[tuple[str, str]] = [
        ("state", status.value),
        ("failsafe", "false" if status is WatchdogStatus.OK else "true"),
        ("failsafe_output", failsafe_output),
        ("failsafe_stops", str(failsafe_stops)),
        ("stale_streams", ",".join(stale_streams)),
        ("mixed_time_base", ",".join(mixed_time_base)),
        ("failsafe_entries", str(failsafe_entries)),
        ("recoveries", str(recoveries)),
        ("step_latency_ms.p50", _ms(latency_s.p50)),
        ("step_latency_ms.p99", _ms(latency_s.p99)),
        ("step_latency_ms.max", _ms(latency_s.max)),
    ]
    optional = (
        ("transport_latency_ms", transport_s),
        ("pickup_latency_ms", pickup_s),
        ("frame_latency_ms", frame_latency_s),
        ("preprocess_ms", preprocess_s),
    )
    for key, summary in optional:
        if summary is not None:
            values += [(f"{key}.{name}", _ms(getattr(summary, name))) for name in ("p50", "p99", "max")]
    values += [
        ("message_age_ms.p50", _ms(age_s.p50)),
        ("message_age_ms.p99", _ms(age_s.p99)),
    ]
    values += [(f"{stream}.rate_hz", f"{rate:.2f}") for stream, rate in rates_hz.items()]
    values += [(f"{stream}.expected_rate_hz", f"{rate:.2f}") for stream, rate in (expected_rates_hz or {}).items()]
    values.append(("dropped", str(sum(counters.get(name, 0) for name in DROPPED_NAMES))))
    values.append(("resets", str(sum(counters.get(name, 0) for name in RESET_NAMES))))
    values += [(name, str(count)) for name, count in counters.items()]
    values += [
        ("commands_published", str(commands_published)),
        ("hover_published", str(hover_published)),
        ("hold_published", str(hold_published)),
        ("command_gap_ms.max", _ms(max_command_gap_s)),
        ("bundle", bundle_name),
        ("bundle_hash", bundle_hash),
        ("execution_provider", execution_provider),
    ]
    return Report(level, message, tuple(values))
