"""Speed of the simulator's parts, measured in process CPU time (robust to a busy machine).

``compare_physics`` flies the same expert episodes with rotorpy's own dynamics, SE(3)
controller and IMU (``Simulator(..., reference_physics=True)``) and with their float
re-implementations, interleaved per seed, and reports the CPU seconds of each. Regenerate with::

    python -m lnn_ros_benchmarks.sim            # writes results/bench_sim_physics.json
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lnn_ros.sim.expert.expert import expert_controller, fly_expert
from lnn_ros.sim.world.closed_loop import run_closed_loop
from lnn_ros.sim.world.config import VARIANTS, ScenarioVariant, SimConfig
from lnn_ros.sim.world.episode import EpisodeResult, Simulator
from lnn_ros.sim.world.frames import quat_from_yaw, quat_to_matrix
from lnn_ros.sim.world.render import Renderer
from lnn_ros.sim.world.scene import sample_scene
from lnn_ros.sim.world.vehicle import Vehicle
from lnn_ros_benchmarks.report import machine, write_report


class SpeedReport(NamedTuple):
    """Measured speeds (CPU time of this process)."""

    physics_steps_per_s: float  # vehicle steps of physics_dt_s (dynamics + SE3 tracker only)
    physics_realtime_factor: float  # sim seconds per CPU second, dynamics only
    render_ms_per_frame: float  # one camera frame with the distractors variant's scene
    episode_realtime_factor: float  # a whole expert episode: dynamics, IMU, camera, expert

    def describe(self) -> str:
        """One line per figure."""
        return (
            f"physics: {self.physics_steps_per_s:.0f} steps/s ({self.physics_realtime_factor:.1f}x real time)\n"
            f"render: {self.render_ms_per_frame:.2f} ms/frame\n"
            f"expert episode: {self.episode_realtime_factor:.1f}x real time"
        )


def measure_speed(config: SimConfig = SimConfig(), steps: int = 2000, frames: int = 300) -> SpeedReport:
    """Time the physics, the renderer and a full expert episode under ``config``."""
    vehicle = Vehicle(config.vehicle, config.integrator, np.array([0.0, 0.0, 1.0]), 0.0)
    command = np.array([0.5, 0.2, 0.0, 0.3])
    start = time.process_time()
    for i in range(steps):
        vehicle.step(i * config.physics_dt_s, config.physics_dt_s, command)
    physics_s = time.process_time() - start

    scene = sample_scene(config, VARIANTS[ScenarioVariant.DISTRACTORS], np.random.default_rng(0))
    renderer = Renderer(config.intrinsics, math.radians(config.camera_pitch_deg), scene)
    rotation = quat_to_matrix(quat_from_yaw(scene.start_yaw_rad))
    rng = np.random.default_rng(0)
    start = time.process_time()
    for _ in range(frames):
        renderer.render(np.array(scene.start_position), rotation, rng, config.image_noise_std)
    render_s = time.process_time() - start

    start = time.process_time()
    result = fly_expert(config, ScenarioVariant.NOMINAL, config.seed)
    episode_s = time.process_time() - start
    return SpeedReport(
        physics_steps_per_s=steps / physics_s,
        physics_realtime_factor=steps * config.physics_dt_s / physics_s,
        render_ms_per_frame=1e3 * render_s / frames,
        episode_realtime_factor=result.duration_s / episode_s,
    )


class PhysicsComparison(NamedTuple):
    """CPU seconds per expert episode: rotorpy's functions (reference) vs the float re-implementations."""

    variant: str
    seeds: list[int]
    reference_s: list[float]
    fast_s: list[float]
    max_position_gap_m: float  # largest distance between the two trajectories, any seed, any step

    @property
    def speedup(self) -> float:
        """Ratio of the median CPU seconds per episode (reference / fast)."""
        return statistics.median(self.reference_s) / statistics.median(self.fast_s)


def _timed_episode(config: SimConfig, variant: str, seed: int, reference: bool) -> tuple[float, EpisodeResult]:
    start = time.process_time()
    sim = Simulator(config, variant, seed, reference_physics=reference)
    result = run_closed_loop(sim, expert_controller(sim))
    return time.process_time() - start, result


def compare_physics(config: SimConfig, variant: str, seeds: list[int]) -> PhysicsComparison:
    """Fly each seed with the reference and the fast physics (interleaved) and time both."""
    reference_s, fast_s, gap = [], [], 0.0
    for seed in seeds:
        ref_time, ref = _timed_episode(config, variant, seed, reference=True)
        fast_time, fast = _timed_episode(config, variant, seed, reference=False)
        reference_s.append(ref_time)
        fast_s.append(fast_time)
        gap = max(gap, float(np.abs(ref.trajectory.position - fast.trajectory.position).max()))
    return PhysicsComparison(variant, list(seeds), reference_s, fast_s, gap)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Simulator speed: rotorpy's functions vs the float physics, per expert episode."
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds per variant (default 5)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per episode (default 10)")
    parser.add_argument(
        "--variants", nargs="+", default=["nominal", "wind"], help="scenario variants (default nominal wind)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results/bench_sim_physics.json"), help="JSON report ('-': none)"
    )
    args = parser.parse_args(argv)
    config = SimConfig(duration_s=args.duration)
    load_before = os.getloadavg()
    rows = {}
    for variant in args.variants:
        comparison = compare_physics(config, variant, list(range(args.seeds)))
        ref, fast = statistics.median(comparison.reference_s), statistics.median(comparison.fast_s)
        print(
            f"{variant:12s} rotorpy {ref:.2f} s, float physics {fast:.2f} s per {args.duration:g} s episode "
            f"-> {comparison.speedup:.2f}x (trajectories within {comparison.max_position_gap_m:.1e} m)",
            flush=True,
        )
        rows[variant] = {
            "reference_s_median": round(ref, 3),
            "fast_s_median": round(fast, 3),
            "speedup": round(comparison.speedup, 2),
            "reference_s": [round(t, 3) for t in comparison.reference_s],
            "fast_s": [round(t, 3) for t in comparison.fast_s],
            "max_position_gap_m": comparison.max_position_gap_m,
        }
    if str(args.out) != "-":
        report = {
            "command": "python -m lnn_ros_benchmarks.sim"
            + (f" --seeds {args.seeds}" if args.seeds != 5 else "")
            + (f" --duration {args.duration:g}" if args.duration != 10.0 else "")
            + (f" --variants {' '.join(args.variants)}" if args.variants != ["nominal", "wind"] else ""),
            "machine": machine(load_before),
            "notes": "CPU seconds (process time) per expert episode, seeds 0..N-1, the reference (rotorpy's "
                     "Multirotor._s_dot_fn, SE3Control.update, Imu.measurement) and the float physics interleaved "
                     "per seed; the speed-up is the ratio of the medians.",
            "episode_s": args.duration,
            "variants": rows,
        }  # fmt: skip
        write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
