"""Expert demonstrations: fly seeded episodes, record sensor streams with expert labels, save as .npz.

One episode is one :class:`Demonstration` of plain numpy arrays, saved as one compressed
``.npz`` (no pickle). Labels are the expert's command computed from the true state at each
IMU stamp and at each image stamp.

DAgger: give a ``pilot_factory``; the pilot (e.g. the learned policy) then sees every event
and flies, while the expert only labels. With ``expert_share`` = beta, at each event the
latest command of the expert (it answers every IMU sample) is flown with probability beta,
else the pilot's latest command: DAgger's per-step mixture beta pi* + (1 - beta) pi.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lnn_ros.runtime.records import Command, ImageFrame, ImuSample
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.expert import ExpertConfig, expert_for
from lnn_ros.sim.parallel import check_picklable, resolve_workers, run_jobs
from lnn_ros.sim.world.closed_loop import Controller
from lnn_ros.sim.world.config import ScenarioVariant, SimConfig, variant_from_name
from lnn_ros.sim.world.episode import EpisodeResult, Simulator

FORMAT_VERSION = 1
PilotFactory = Callable[[Simulator], Controller]


class Demonstration(NamedTuple):
    """One recorded episode. N IMU samples, M images; commands are ``[vx, vy, vz, yaw_rate]``
    in the heading frame (see ``records.Command``).

    Attributes:
        seed: episode seed.
        variant: scenario variant name.
        imu_stamp_ns: int64 (N,).
        imu_angular_velocity: float32 (N, 3), rad/s, body.
        imu_linear_acceleration: float32 (N, 3), m/s^2, body (specific force).
        imu_orientation: float32 (N, 4), (x, y, z, w).
        imu_expert_command: float32 (N, 4), the expert's command at each IMU stamp (the label).
        imu_flown_command: float32 (N, 4), the command actually flown from each IMU stamp on.
        imu_true_position: float32 (N, 3), world, m.
        imu_true_velocity: float32 (N, 3), world, m/s.
        imu_true_yaw: float32 (N,), rad.
        image_stamp_ns: int64 (M,).
        images: uint8 (M, H, W, 3), rgb8.
        image_expert_command: float32 (M, 4), the expert's command at each image stamp.
        target_position: float64 (3,), world, m.
        start_position: float64 (3,), world, m.
        reached: the episode reached the target.
        time_to_reach_s: when (NaN if never).
        crashed: the episode crashed.
        final_distance_m: distance to the target at the end.
        expert_share: beta, the probability that the expert flew an event's command (1.0: expert only).
        image_imu_count: int64 (M,), IMU samples delivered before each image (its place in the
            delivery order; with camera latency a frame comes after IMU samples stamped later).
            Empty in files written before it existed: then the order is the stamp order.
    """

    seed: int
    variant: str
    imu_stamp_ns: np.ndarray
    imu_angular_velocity: np.ndarray
    imu_linear_acceleration: np.ndarray
    imu_orientation: np.ndarray
    imu_expert_command: np.ndarray
    imu_flown_command: np.ndarray
    imu_true_position: np.ndarray
    imu_true_velocity: np.ndarray
    imu_true_yaw: np.ndarray
    image_stamp_ns: np.ndarray
    images: np.ndarray
    image_expert_command: np.ndarray
    target_position: np.ndarray
    start_position: np.ndarray
    reached: bool
    time_to_reach_s: float
    crashed: bool
    final_distance_m: float
    expert_share: float
    image_imu_count: np.ndarray = np.zeros(0, dtype=np.int64)


_SCALARS = {
    "seed": int,
    "variant": str,
    "reached": bool,
    "time_to_reach_s": float,
    "crashed": bool,
    "final_distance_m": float,
    "expert_share": float,
}


def record_demonstration(
    config: SimConfig = SimConfig(),
    variant: str | ScenarioVariant = ScenarioVariant.NOMINAL,
    seed: int | None = None,
    pilot_factory: PilotFactory | None = None,
    expert_share: float = 1.0,
    expert_config: ExpertConfig | None = None,
) -> tuple[Demonstration, EpisodeResult]:
    """Fly one episode and record it with expert labels.

    Args:
        config: simulator settings.
        variant: scenario variant.
        seed: episode seed (``config.seed`` if None).
        pilot_factory: builds the pilot for this episode's simulator (DAgger); None: the expert flies.
        expert_share: beta, probability that an event's command comes from the expert (with a pilot).
        expert_config: expert gains and limits (default: the simulator's limits).

    Raises:
        SimError: ``expert_share`` is outside [0, 1].
    """
    if not 0.0 <= expert_share <= 1.0:
        raise SimError(f"expert_share must be in [0, 1], got {expert_share!r}.")
    sim = Simulator(config, variant, seed)
    expert = expert_for(sim, expert_config)
    pilot = None if pilot_factory is None else pilot_factory(sim)
    share = 1.0 if pilot is None else expert_share
    mix_rng = np.random.default_rng([sim.seed, 0xDA66E5])
    imu: list[ImuSample] = []
    imu_labels, flown, positions, velocities, yaws = [], [], [], [], []
    frames: list[ImageFrame] = []
    image_imu_count: list[int] = []
    image_labels = []
    expert_latest: Command | None = None
    pilot_latest: Command | Sequence[float] | None = None
    for event in sim.events():
        state = sim.state
        label = expert.command(state, event.stamp_ns)
        if isinstance(event, ImuSample):
            expert_latest = label
        chosen: Command | Sequence[float] | None
        if pilot is None:
            chosen = expert_latest
        else:
            answer = pilot(event)
            pilot_latest = pilot_latest if answer is None else answer
            chosen = expert_latest if mix_rng.uniform() < share else pilot_latest
        if chosen is not None:
            sim.set_command(chosen, event.stamp_ns)
        if isinstance(event, ImuSample):
            imu.append(event)
            imu_labels.append(label.heading_array())
            flown.append(sim.command.heading_array())
            positions.append(state.position)
            velocities.append(state.velocity)
            yaws.append(state.yaw_rad)
        else:
            frames.append(event)
            image_imu_count.append(len(imu))
            image_labels.append(label.heading_array())
    result = sim.result()
    h, w = config.image_height, config.image_width
    demo = Demonstration(
        seed=sim.seed,
        variant=sim.variant.value,
        imu_stamp_ns=np.array([s.stamp_ns for s in imu], dtype=np.int64),
        imu_angular_velocity=_stack([s.angular_velocity for s in imu], 3),
        imu_linear_acceleration=_stack([s.linear_acceleration for s in imu], 3),
        imu_orientation=_stack([s.orientation for s in imu], 4),
        imu_expert_command=_stack(imu_labels, 4),
        imu_flown_command=_stack(flown, 4),
        imu_true_position=_stack(positions, 3),
        imu_true_velocity=_stack(velocities, 3),
        imu_true_yaw=np.array(yaws, dtype=np.float32),
        image_stamp_ns=np.array([f.stamp_ns for f in frames], dtype=np.int64),
        images=np.array([f.to_array() for f in frames], dtype=np.uint8).reshape(-1, h, w, 3),
        image_expert_command=_stack(image_labels, 4),
        target_position=result.target_position,
        start_position=result.start_position,
        reached=result.reached,
        time_to_reach_s=math.nan if result.time_to_reach_s is None else result.time_to_reach_s,
        crashed=result.crashed,
        final_distance_m=result.final_distance_m,
        expert_share=share,
        image_imu_count=np.array(image_imu_count, dtype=np.int64),
    )
    return demo, result


class DemoJob(NamedTuple):
    """One episode of :func:`generate_demonstrations`."""

    path: Path
    config: SimConfig
    variant: ScenarioVariant
    seed: int
    pilot_factory: PilotFactory | None
    expert_share: float


def record_demo_job(job: DemoJob) -> EpisodeResult:
    """Record one episode into ``job.path`` (runs in a worker process)."""
    demo, result = record_demonstration(job.config, job.variant, job.seed, job.pilot_factory, job.expert_share)
    save_demonstration(job.path, demo)
    return result


def generate_demonstrations(
    out_dir: str | Path,
    n_episodes: int,
    config: SimConfig = SimConfig(),
    variants: Sequence[str | ScenarioVariant] = (ScenarioVariant.NOMINAL,),
    first_seed: int = 0,
    pilot_factory: PilotFactory | None = None,
    expert_share: float = 1.0,
    progress: Callable[[int, EpisodeResult], None] | None = None,
    workers: int | None = None,
) -> list[Path]:
    """Record ``n_episodes`` episodes into ``out_dir/episode_<seed>.npz``.

    Episode i has seed ``first_seed + i`` and variant ``variants[i % len(variants)]``. Each
    file depends only on its episode, so the files are the same however many processes
    record them.

    Args:
        out_dir: folder to write (created).
        n_episodes: how many episodes.
        config: simulator settings.
        variants: variants to cycle through.
        first_seed: seed of the first episode.
        pilot_factory: DAgger pilot (see :func:`record_demonstration`).
        expert_share: DAgger beta.
        progress: called with (index, result) after each episode, in episode order.
        workers: processes recording episodes (None: one per core; a ``pilot_factory`` that
            cannot be pickled, e.g. a closure, then records in this process).

    Returns:
        The files written, in order.

    Raises:
        SimError: bad counts or variants, or ``workers`` > 1 with a pilot factory that cannot be pickled.
    """
    if n_episodes < 1:
        raise SimError(f"n_episodes must be >= 1, got {n_episodes!r}.")
    if not variants:
        raise SimError("variants must name at least one scenario variant, got an empty sequence.")
    chosen = [variant_from_name(v) for v in variants]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        DemoJob(out / f"episode_{first_seed + i:06d}.npz", config, chosen[i % len(chosen)], first_seed + i, pilot_factory, expert_share)
        for i in range(n_episodes)
    ]
    count = resolve_workers(workers)
    if pilot_factory is not None and count > 1:
        try:
            check_picklable(pilot_factory, "pilot_factory")
        except SimError:
            if workers is not None:
                raise
            count = 1
    run_jobs(record_demo_job, jobs, count, progress)
    return [job.path for job in jobs]


def save_demonstration(path: str | Path, demo: Demonstration) -> Path:
    """Write one demonstration as a compressed .npz (loadable with ``allow_pickle=False``)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.asarray(getattr(demo, name)) for name in Demonstration._fields}
    arrays["format_version"] = np.asarray(FORMAT_VERSION)
    with target.open("wb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return target


def load_demonstration(path: str | Path) -> Demonstration:
    """Read one demonstration written by :func:`save_demonstration`.

    Raises:
        SimError: the file is missing, not an .npz, of another format version, or lacks fields.
    """
    source = Path(path)
    try:
        with np.load(source, allow_pickle=False) as data:
            contents = {name: data[name] for name in data.files}
    except (OSError, ValueError) as err:
        raise SimError(f"Cannot read demonstration file {str(source)!r}: {err}.") from None
    version = contents.get("format_version")
    if version is None or int(version) != FORMAT_VERSION:
        raise SimError(
            f"Demonstration file {str(source)!r} has format version {None if version is None else int(version)!r}; "
            f"this code reads version {FORMAT_VERSION}. Re-generate it with generate_demonstrations."
        )
    contents.setdefault("image_imu_count", np.zeros(0, dtype=np.int64))  # written before it existed
    missing = [name for name in Demonstration._fields if name not in contents]
    if missing:
        raise SimError(f"Demonstration file {str(source)!r} lacks fields {missing!r}; re-generate it.")
    values = {
        name: (_SCALARS[name](contents[name].item()) if name in _SCALARS else contents[name])
        for name in Demonstration._fields
    }
    return Demonstration(**values)


def load_demonstrations(folder: str | Path) -> list[Demonstration]:
    """All ``*.npz`` demonstrations of a folder, in file-name order.

    Raises:
        SimError: the folder holds no .npz file, or one of them is invalid.
    """
    paths = sorted(Path(folder).glob("*.npz"))
    if not paths:
        raise SimError(f"No demonstration (*.npz) found in {str(folder)!r}; run generate_demonstrations first.")
    return [load_demonstration(p) for p in paths]


def _stack(rows: Sequence[Sequence[float] | np.ndarray], width: int) -> np.ndarray:
    return np.array(rows, dtype=np.float32).reshape(-1, width)
