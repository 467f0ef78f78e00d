"""What counts as a successful flight, and the other measures of one episode.

The task: fly to the red target and hold station near it, for inspection, until the episode
ends. So success is defined from the task, not from what the expert happens to achieve:

* **target region**: within :data:`TARGET_REGION_M` of the target's centre (close enough to
  inspect it from a 64x48 camera; the target itself is 0.2 m in radius and touching it is a
  crash);
* **reached and held**: the vehicle enters the region and stays in it, without a single exit,
  until the end of the episode, and the final stay lasts at least :data:`MIN_FINAL_HOLD_S`
  (arriving in the last instant does not count);
* **no crash** at any time (ground, target, or a diverged state).

A policy that reaches the target and then drifts away, orbits in and out, or hits the
target fails. The measures beside success: final distance, time to reach (the start of the
final stay), crashes, and control effort (mean commanded speed and yaw rate, and how much the
command moves: mean |Δcommand| per second).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:  # the episode module imports rotorpy; the CLI must load without it (tests/test_sim_optional.py)
    from lnn_ros.sim.world.episode import EpisodeResult

TARGET_REGION_M = 1.0
MIN_FINAL_HOLD_S = 2.0


class FlightQuality(NamedTuple):
    """The measures of one episode.

    Attributes:
        success: reached the region, stayed to the end (>= MIN_FINAL_HOLD_S), never crashed.
        crashed: the episode crashed.
        time_to_reach_s: when the final stay in the region began (None when it never ended inside).
        final_distance_m: distance to the target centre at the end.
        min_distance_m: smallest distance to the target centre.
        mean_speed_command_mps: mean norm of the commanded velocity.
        mean_yaw_rate_command_rps: mean |commanded yaw rate|.
        command_activity: mean |Δ command| per second over the four outputs (m/s/s and rad/s/s summed).
    """

    success: bool
    crashed: bool
    time_to_reach_s: float | None
    final_distance_m: float
    min_distance_m: float
    mean_speed_command_mps: float
    mean_yaw_rate_command_rps: float
    command_activity: float


def flight_quality(
    result: EpisodeResult, region_m: float = TARGET_REGION_M, min_hold_s: float = MIN_FINAL_HOLD_S
) -> FlightQuality:
    """Measure one finished episode by the strict rule above."""
    trajectory = result.trajectory
    t_s = trajectory.t_s
    distance = np.linalg.norm(trajectory.position - result.target_position, axis=1)
    outside = np.flatnonzero(distance > region_m)
    if outside.size == 0:
        arrived_s: float | None = float(t_s[0])
    elif outside[-1] + 1 < len(t_s):
        arrived_s = float(t_s[outside[-1] + 1])
    else:
        arrived_s = None
    held = arrived_s is not None and float(t_s[-1]) - arrived_s >= min_hold_s
    commands = trajectory.command
    duration_s = max(float(t_s[-1] - t_s[0]), 1e-9)
    return FlightQuality(
        success=bool(held and not result.crashed),
        crashed=result.crashed,
        time_to_reach_s=arrived_s if held and not result.crashed else None,
        final_distance_m=float(distance[-1]),
        min_distance_m=float(distance.min()),
        mean_speed_command_mps=_time_mean(np.linalg.norm(commands[:, :3], axis=1), t_s),
        mean_yaw_rate_command_rps=_time_mean(np.abs(commands[:, 3]), t_s),
        command_activity=float(np.abs(np.diff(commands, axis=0)).sum() / duration_s),
    )


def _time_mean(values: np.ndarray, t_s: np.ndarray) -> float:
    """Mean over time of a quantity held over each physics step (step i ends at t_s[i])."""
    if len(t_s) < 2:
        return math.nan
    weights = np.diff(t_s)
    return float((values[1:] * weights).sum() / weights.sum())
