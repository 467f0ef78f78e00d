"""What the simulator node measures during a flight over ROS 2, and the files it writes. ROS-free.

Latency is measured entirely inside the simulator process, on one monotonic wall clock:

* ``latency``: for every command whose header stamp is the stamp of a sensor message the
  simulator published, ``arrival wall time - publish wall time`` of that message (publish time:
  just before the message is handed to ``publish``). It covers serialisation and DDS transport
  both ways, the policy node's queueing and its computation, and the simulator's taking of the
  command message.
* ``stamp_to_arrival``: the same arrival measured from the wall time the stamp *stands for*
  (episode start + stamp / real-time factor), so it also counts how late the simulator
  published (pacing lag). With sim time paced at real time this is "stamp to command".

Control deadline: once the first command arrived (the policy is flying), every IMU sample
published afterwards is *checked*; it misses its deadline when no command with its stamp
arrived within ``deadline_ms`` of its publication, either late (it came afterwards) or lost
(never: the sample or the command was dropped, or the policy did not step on it).

Commands with an all-zero twist are the policy node's failsafe hover (stamped with its clock,
not a sensor stamp); they are counted apart and never matched to a sensor message.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lnn_ros.runtime.records import Command
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.world.episode import EpisodeResult
from lnn_ros.units import NS_PER_MS, NS_PER_S


class Percentiles(NamedTuple):
    """Summary of a sample of durations in milliseconds (NaN when empty)."""

    samples: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, values_ms: np.ndarray) -> Percentiles:
        values = np.asarray(values_ms, dtype=np.float64)
        if values.size == 0:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        p50, p90, p99 = np.percentile(values, (50.0, 90.0, 99.0))
        return cls(int(values.size), float(p50), float(p90), float(p99), float(values.max()), float(values.mean()))

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else round(v, 4) if isinstance(v, float) else v)
                for k, v in self._asdict().items()}


class CommandArrival(NamedTuple):
    """One ``cmd_vel`` message and when it arrived at the simulator (wall and sim time, ns).

    Wall times are ``time.perf_counter_ns`` readings. With rclpy's message info (Iron+),
    ``arrival_wall_ns`` is the middleware's reception, ``sent_wall_ns`` the node's publish
    (the message's source timestamp) and ``handled_wall_ns`` when the simulator's callback ran;
    without it (Humble) the arrival is the callback's start and the other two are None.
    """

    command: Command
    arrival_wall_ns: int
    arrival_sim_ns: int
    sent_wall_ns: int | None = None
    handled_wall_ns: int | None = None

    @property
    def stamp_ns(self) -> int:
        """The command's header stamp."""
        return self.command.stamp_ns


class LatencyLog:
    """Publish times of sensor messages and arrival times of commands, on one wall clock (ns).

    Args:
        wall_start_ns: wall time of sim time 0.
        real_time_factor: sim seconds per wall second.
    """

    def __init__(self, wall_start_ns: int, real_time_factor: float) -> None:
        self.wall_start_ns = wall_start_ns
        self.real_time_factor = real_time_factor
        self._imu_published: dict[int, int] = {}
        self._image_published: dict[int, int] = {}
        self._imu_order: list[int] = []
        self.images_published = 0
        self.commands: list[CommandArrival] = []
        self.pacing_lag_ns: list[int] = []

    def wall_of(self, sim_ns: int) -> int:
        """The wall time that sim time ``sim_ns`` stands for."""
        return self.wall_start_ns + round(sim_ns / self.real_time_factor)

    def sim_of(self, wall_ns: int) -> int:
        """The sim time that wall time ``wall_ns`` stands for."""
        return round((wall_ns - self.wall_start_ns) * self.real_time_factor)

    def imu_published(self, stamp_ns: int, wall_ns: int) -> None:
        self._imu_published[stamp_ns] = wall_ns
        self._imu_order.append(stamp_ns)
        self.pacing_lag_ns.append(wall_ns - self.wall_of(stamp_ns))

    def image_published(self, stamp_ns: int, wall_ns: int) -> None:
        self._image_published[stamp_ns] = wall_ns
        self.images_published += 1

    def command(self, record: CommandArrival) -> None:
        self.commands.append(record)

    @property
    def imu_count(self) -> int:
        return len(self._imu_order)

    def published_wall_ns(self, stamp_ns: int) -> int | None:
        """Publish wall time of the sensor message stamped ``stamp_ns`` (IMU first), or None."""
        wall = self._imu_published.get(stamp_ns)
        return self._image_published.get(stamp_ns) if wall is None else wall

    def matched(self) -> list[tuple[CommandArrival, int]]:
        """(command, publish wall ns of its sensor message) for every non-hover command with a known stamp, first arrival only."""
        seen: set[int] = set()
        out = []
        for record in self.commands:
            if is_hover(record.command.heading_array()) or record.stamp_ns in seen:
                continue
            wall = self.published_wall_ns(record.stamp_ns)
            if wall is not None:
                seen.add(record.stamp_ns)
                out.append((record, wall))
        return out

    def summary(self, deadline_ms: float) -> dict[str, Any]:
        """Counts, latency percentiles and missed deadlines (see the module docstring)."""
        matched = self.matched()
        latency_ms = np.array([(c.arrival_wall_ns - wall) / NS_PER_MS for c, wall in matched])
        stamp_ms = np.array([(c.arrival_wall_ns - self.wall_of(c.stamp_ns)) / NS_PER_MS for c, _ in matched])
        hover = sum(is_hover(c.command.heading_array()) for c in self.commands)
        arrival = {c.stamp_ns: c.arrival_wall_ns for c, _ in matched}
        deadline_ns = deadline_ms * NS_PER_MS
        checked = late = lost = 0
        if matched:
            first_arrival = min(c.arrival_wall_ns for c, _ in matched)
            for stamp in self._imu_order:
                published = self._imu_published[stamp]
                if published < first_arrival:
                    continue
                checked += 1
                came = arrival.get(stamp)
                if came is None:
                    lost += 1
                elif came - published > deadline_ns:
                    late += 1
        return {
            "imu_published": self.imu_count,
            "images_published": self.images_published,
            "commands_received": len(self.commands),
            "commands_matched": len(matched),
            "hover_commands": hover,
            "unmatched_commands": len(self.commands) - hover - len(matched),
            "latency_ms": Percentiles.of(latency_ms).to_dict(),
            "stamp_to_arrival_ms": Percentiles.of(stamp_ms).to_dict(),
            "deadline": {
                "deadline_ms": deadline_ms,
                "checked": checked,
                "missed": late + lost,
                "late": late,
                "lost": lost,
                "missed_fraction": round((late + lost) / checked, 6) if checked else None,
            },
            "pacing_lag_ms": Percentiles.of(np.array(self.pacing_lag_ns) / NS_PER_MS).to_dict(),
            "hops": self.hops(matched),
        }

    def hops(self, matched: list[tuple[CommandArrival, int]]) -> dict[str, Any]:
        """Per-hop latency (ms percentiles) of the matched commands, from middleware timestamps.

        ``sensor_to_node_publish``: sensor publish -> the node's cmd_vel publish (the source
        timestamp): transport to the node plus the node's work, which the node splits itself
        (its /diagnostics ``latency`` runs from the middleware's reception to the publish);
        ``node_to_sim``: the node's publish -> the simulator's middleware reception;
        ``sim_pickup``: reception -> the simulator's callback (the simulator's own delay, not
        counted in the latency above). Without message info (Humble) only a note is given.
        """
        timed = [(c, wall) for c, wall in matched if c.sent_wall_ns is not None and c.handled_wall_ns is not None]
        if not timed:
            return {"available": False, "note": "no middleware timestamps (rclpy without message info, e.g. Humble)"}

        def ms(values: list[int]) -> dict[str, Any]:
            return Percentiles.of(np.array(values, dtype=np.float64) / NS_PER_MS).to_dict()

        return {
            "available": True,
            "commands": len(timed),
            "sensor_to_node_publish": ms([c.sent_wall_ns - wall for c, wall in timed]),  # type: ignore[operator]
            "node_to_sim": ms([c.arrival_wall_ns - c.sent_wall_ns for c, _ in timed]),  # type: ignore[operator]
            "sim_pickup": ms([c.handled_wall_ns - c.arrival_wall_ns for c, _ in timed]),  # type: ignore[operator]
        }

    def latencies_ms(self) -> np.ndarray:
        """Publish-to-arrival latency of every matched command, ms."""
        return np.array([(c.arrival_wall_ns - wall) / NS_PER_MS for c, wall in self.matched()], dtype=np.float64)


NODE_HOP_KEYS = {
    "sensor_to_node": "transport_latency_ms",
    "node_compute": "step_latency_ms",
    "node_pickup": "pickup_latency_ms",
}


def node_hops(values: dict[str, str] | None, window: str) -> dict[str, Any]:
    """The policy node's own hops from the values of its last ``/diagnostics`` report.

    ``sensor_to_node``: sensor publish -> the node's middleware reception (``transport_latency_ms``);
    ``node_compute``: that reception -> the command handed to ``publish`` (``step_latency_ms``),
    of which ``node_pickup`` is the wait for the node's executor (reception -> its callback
    starting, ``pickup_latency_ms``); all over the commands in the node's statistics window (``window`` says which), p50 / p99 /
    max in ms. A hop the report does not carry (no report received, rclpy without message
    info, the events executor) is ``{"available": false, "note": ...}``.
    """
    out: dict[str, Any] = {}
    for hop, key in NODE_HOP_KEYS.items():
        try:
            numbers = {name: float(values[f"{key}.{name}"]) for name in ("p50", "p99", "max")} if values else None
        except (KeyError, ValueError):
            numbers = None
        if numbers is None or not all(math.isfinite(v) for v in numbers.values()):
            why = "no /diagnostics report from the policy node" if not values else f"its /diagnostics has no {key}"
            out[hop] = {"available": False, "note": why}
        else:
            out[hop] = {**{k: round(v, 4) for k, v in numbers.items()}, "source": f"policy node /diagnostics {key}, {window}"}
    return out


def is_hover(setpoint: np.ndarray) -> bool:
    """A failsafe hover command: every heading-frame set-point (vx, vy, vz, yaw rate) exactly zero."""
    return not setpoint.any()


def flight_result(result: EpisodeResult) -> dict[str, Any]:
    """The flight outcome as plain data."""
    start_distance = float(np.linalg.norm(result.start_position - result.target_position))
    return {
        "reached": result.reached,
        "time_to_reach_s": result.time_to_reach_s,
        "crashed": result.crashed,
        "crash_reason": result.crash_reason,
        "start_distance_m": round(start_distance, 4),
        "final_distance_m": round(result.final_distance_m, 4),
        "min_distance_m": round(result.min_distance_m, 4),
        "sim_duration_s": round(result.duration_s, 4),
        "target_position": [round(float(v), 4) for v in result.target_position],
        "start_position": [round(float(v), 4) for v in result.start_position],
        "imu_dropped_by_sensor": result.imu_dropped,
        "images_dropped_by_sensor": result.images_dropped,
        "command_timeouts": result.command_timeouts,
    }


class FlightRecord(NamedTuple):
    """The arrays of one flight (written by the simulator node, read by the demo's plot).

    Attributes:
        t_s: sim time of the trajectory samples [K].
        position: world position [K, 3].
        yaw_rad: yaw [K].
        command: the command flown [K, 4] (heading frame vx, vy, vz, yaw rate).
        target_position: [3].
        start_position: [3].
        latency_ms: publish-to-arrival latency of each matched command [C].
        latency_stamp_s: the sim-time stamp of each of those commands [C].
        success_radius_m: the success radius of the episode.
    """

    t_s: np.ndarray
    position: np.ndarray
    yaw_rad: np.ndarray
    command: np.ndarray
    target_position: np.ndarray
    start_position: np.ndarray
    latency_ms: np.ndarray
    latency_stamp_s: np.ndarray
    success_radius_m: float


def flight_record(result: EpisodeResult, log: LatencyLog, success_radius_m: float) -> FlightRecord:
    """Collect the arrays of a finished flight."""
    matched = log.matched()
    traj = result.trajectory
    return FlightRecord(
        t_s=traj.t_s,
        position=traj.position,
        yaw_rad=traj.yaw_rad,
        command=traj.command,
        target_position=result.target_position,
        start_position=result.start_position,
        latency_ms=np.array([(c.arrival_wall_ns - wall) / NS_PER_MS for c, wall in matched], dtype=np.float64),
        latency_stamp_s=np.array([c.stamp_ns / NS_PER_S for c, _ in matched], dtype=np.float64),
        success_radius_m=success_radius_m,
    )


def save_record(path: str | Path, record: FlightRecord) -> Path:
    """Write a :class:`FlightRecord` as .npz (no pickle)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        arrays = {name: np.asarray(value) for name, value in record._asdict().items()}
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return target


def load_record(path: str | Path) -> FlightRecord:
    """Read a :class:`FlightRecord` written by :func:`save_record`.

    Raises:
        SimError: the file is missing or lacks fields.
    """
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            values = {name: data[name] for name in FlightRecord._fields}
    except (OSError, ValueError, KeyError) as err:
        raise SimError(f"Cannot read flight record {str(path)!r}: {err}.") from None
    values["success_radius_m"] = float(values["success_radius_m"])
    return FlightRecord(**values)


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON (parent folders created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n")
    return target
