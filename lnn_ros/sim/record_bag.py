"""``lnn-ros sim record-bag``: the expert flies the simulator; its sensors and commands go into rosbag2 bags.

No ROS is needed: the bag holds what ``ros2 bag record`` would hold next to ``sim_drone_node``
with the expert as the pilot (topics as :class:`~lnn_ros.bag.topics.BagTopics` names them, so
``lnn-ros replay``, ``bag-to-dataset``, ``train`` and ``play`` read it with their defaults):

* ``/imu`` (``sensor_msgs/msg/Imu``, ~200 Hz) and ``/camera/image_raw`` (``sensor_msgs/msg/Image``,
  rgb8, ~30 Hz): every sensor event of the episode, with the simulator's jittered stamps and
  drops and ``sim_drone_node``'s default frame ids;
* ``/cmd_vel`` (``geometry_msgs/msg/TwistStamped``): the privileged expert's command answering
  each IMU sample, stamped with that sample's stamp as ``lnn_node`` stamps the command a sample
  produced; linear x/y/z and angular z in the heading frame (what ``sim_drone_node`` flies), and
  flown from that stamp on (no latency).

Noise-injected bags (``noisy=True``, ``--noisy``): a simulator data-collection trick for
imitation learning (DART, :mod:`lnn_ros.sim.expert.noisy`). The vehicle flies the expert's
command plus slowly varying noise (:class:`~lnn_ros.sim.expert.noisy.NoisyExpert`), while
``/cmd_vel`` still carries the *clean* expert command computed from the true state: the
corrective command an autopilot would give while a disturbance is being flown. Such a bag is
training data (the label is not what moved the vehicle); a policy trained only on clean flights
never sees how to recover from its own drift. On a real robot the equivalent is a pilot or
autopilot whose corrections are recorded while the vehicle is perturbed.

Batches (:func:`record_bags`, ``--episodes N``): N episodes with consecutive seeds, one bag each
(``out/flight_<seed>``), flown in parallel worker processes. Seeds of training bags must lie in
:data:`lnn_ros.sim.seeds.TRAINING_SEEDS`, those of held-out bags (``held_out``) above it, so a
recorded training flight is never an evaluation episode (:func:`check_bag_seeds`).

The episode (seed, variant, duration, pilot) is written beside the bag's ``metadata.yaml`` as
``sim_episode.yaml`` (:mod:`lnn_ros.sim.bundle_check`; rosbag2 tools ignore the extra file).

Times: header stamps are sim time, nanoseconds since the episode start (as ``sim_drone_node``
stamps them). The log time of every message is the sim time at which the simulator delivered it,
i.e. a recorder without transport latency next to the node: an IMU sample and its command at
the sample's stamp, a camera frame at its stamp, or, with camera latency (the ``delay`` and
``memory`` variants), when it arrives, after the IMU samples stamped before that. ``--order
log`` replays the bag in the order the node received it; ``--order stamp`` in capture order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from lnn_ros.bag.topics import BagTopics
from lnn_ros.bag.writer import BagStorage, BagWriter
from lnn_ros.node_spec.params import DEFAULT_COMMAND_FRAME
from lnn_ros.runtime.records import Command, ImuSample
from lnn_ros.sim.bundle_check import write_episode
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.parallel import run_jobs
from lnn_ros.sim.seeds import EVALUATION_SEEDS, TRAINING_SEEDS
from lnn_ros.sim.world.config import SimConfig, variant_from_name
from lnn_ros.units import NS_PER_S

RECORD_SEED = 10_000  # held out: seeds below 10 000 are the shipped policies' training data
TRAINING_RECORD_SEED = TRAINING_SEEDS.start  # the default first seed of training bags
STORAGES = (BagStorage.MCAP.value, BagStorage.SQLITE3.value)
BAG_PREFIX = "flight_"  # a batch writes out/flight_<seed>


@dataclass(frozen=True)
class RecordBagConfig:
    """What to fly and how to write it.

    Attributes:
        seed: episode seed (start pose, target, noise, timing); the first seed of a batch.
        variant: scenario variant name (nominal or an out-of-distribution one).
        duration_s: episode length in sim time.
        storage: rosbag2 storage, ``mcap`` or ``sqlite3`` (the ROS 2 Humble default).
        topics: topic names of the three streams.
        imu_frame_id: ``header.frame_id`` of the IMU messages (``sim_drone_node``'s default).
        camera_frame_id: of the images (``sim_drone_node``'s default).
        command_frame_id: of the commands (``lnn_node``'s default ``frame_id``).
        noisy: the vehicle flies the expert plus noise (:class:`~lnn_ros.sim.expert.noisy.NoisyExpert`)
            while ``/cmd_vel`` records the clean expert command (see the module docstring).
    """

    seed: int = RECORD_SEED
    variant: str = "nominal"
    duration_s: float = SimConfig().duration_s
    storage: str = BagStorage.MCAP.value
    topics: BagTopics = BagTopics()
    imu_frame_id: str = "base_link"
    camera_frame_id: str = "camera_optical"
    command_frame_id: str = DEFAULT_COMMAND_FRAME  # what lnn_node stamps on cmd_vel (docs/ros.md)
    noisy: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SimError(f"The episode seed must be an integer >= 0, got {self.seed!r}.")
        variant_from_name(self.variant)  # raises SimError naming the valid variants
        self.sim_config()  # raises SimError for a duration that is not > 0
        if self.storage not in STORAGES:
            raise SimError(f"A recorded bag's storage must be one of {list(STORAGES)}, got {self.storage!r}.")

    def sim_config(self) -> SimConfig:
        """The simulator settings: the defaults with this episode length."""
        return dataclasses.replace(SimConfig(), duration_s=self.duration_s)

    @property
    def pilot(self) -> str:
        """Who flew: ``expert`` or ``noisy_expert`` (written to ``sim_episode.yaml``)."""
        return "noisy_expert" if self.noisy else "expert"


class RecordBagResult(NamedTuple):
    """What was recorded.

    Attributes:
        path: the bag (a rosbag2 folder).
        counts: messages written per topic (absolute names).
        duration_s: sim time flown (shorter than asked if the vehicle crashed).
        reached: the vehicle reached the target.
        final_distance_m: distance to the target at the end.
    """

    path: Path
    counts: dict[str, int]
    duration_s: float
    reached: bool
    final_distance_m: float


def record_expert_bag(out: str | Path, config: RecordBagConfig = RecordBagConfig()) -> RecordBagResult:
    """Fly one episode with the expert (with ``config.noisy``: expert plus noise) and write it to a new bag at ``out``.

    Every IMU sample is answered by the clean expert command computed from the true state right
    after it; that command is written to ``/cmd_vel``. Without ``noisy`` it is also what the
    vehicle flies; with ``noisy`` the vehicle flies :class:`~lnn_ros.sim.expert.noisy.NoisyExpert`'s
    command instead (as :func:`lnn_ros.sim.expert.demonstrations.record_demonstration` with
    ``expert_share=0``). Each message is logged at the sim time it was delivered.

    Raises:
        BagError: ``out`` exists already or cannot be written.
    """
    from lnn_ros.sim.expert.expert import expert_controller
    from lnn_ros.sim.expert.noisy import NoisyExpert
    from lnn_ros.sim.world.episode import (
        Simulator,  # rotorpy: loaded when flying, so the CLI lists the command without it
    )

    sim = Simulator(config.sim_config(), config.variant, config.seed)
    label = expert_controller(sim)  # the clean expert: /cmd_vel
    pilot = NoisyExpert()(sim) if config.noisy else label  # what the vehicle flies
    topics = config.topics
    with BagWriter(out, config.storage) as bag:
        for event in sim.events():
            delivered_ns = sim.now_ns  # the frame's arrival with camera latency, else its stamp
            command = label(event)  # reads the true state now, right after the event
            flown: Command | None = command if pilot is label else pilot(event)
            if isinstance(event, ImuSample):
                bag.write_imu(topics.imu, event, frame_id=config.imu_frame_id)  # delivered at its stamp
            else:
                bag.write_image(topics.camera, event, log_time_ns=delivered_ns, frame_id=config.camera_frame_id)
            if flown is not None:
                sim.set_command(flown, event.stamp_ns)
            if command is not None:
                bag.write_twist(topics.command, command, frame_id=config.command_frame_id)
    result = sim.result()
    if bag.path.is_dir():  # rosbag2: the episode beside metadata.yaml, for 'lnn-ros sim check-bundle --bags'
        write_episode(bag.path, config.seed, config.variant, config.duration_s, pilot=config.pilot)
    return RecordBagResult(
        path=bag.path,
        counts=dict(bag.counts),
        duration_s=sim.now_ns / NS_PER_S,
        reached=result.reached,
        final_distance_m=result.final_distance_m,
    )


def check_bag_seeds(first_seed: int, episodes: int = 1, held_out: bool = False) -> None:
    """Raise unless seeds ``first_seed .. first_seed + episodes - 1`` suit the bags' use.

    Training bags (``held_out`` False) need seeds in :data:`~lnn_ros.sim.seeds.TRAINING_SEEDS`;
    held-out bags (for ``lnn-ros replay`` and other checks) need seeds from
    :data:`~lnn_ros.sim.seeds.EVALUATION_SEEDS` on, which no training bag uses.

    Raises:
        SimError: naming the range, the offending seeds and the fix.
    """
    if episodes < 1:
        raise SimError(f"--episodes must be >= 1, got {episodes!r}.")
    last = first_seed + episodes - 1
    seeds = f"seed {first_seed}" if episodes == 1 else f"seeds {first_seed}..{last}"
    if held_out:
        if first_seed < EVALUATION_SEEDS.start or last >= EVALUATION_SEEDS.stop:
            raise SimError(
                f"Held-out bags need seeds from {EVALUATION_SEEDS.start} on (below it are training seeds), got {seeds}; "
                f"pass e.g. --seed {EVALUATION_SEEDS.start}, or drop --held-out to record training bags."
            )
    elif first_seed < TRAINING_SEEDS.start or last >= TRAINING_SEEDS.stop:
        raise SimError(
            f"Training bags need seeds in {TRAINING_SEEDS.start}..{TRAINING_SEEDS.stop - 1}, got {seeds}: seeds from "
            f"{EVALUATION_SEEDS.start} on are held out for evaluation. Pick a lower --seed (or fewer --episodes), "
            "or pass --held-out to record held-out bags."
        )


def bag_path(out: Path, seed: int) -> Path:
    """Where a batch writes the bag of ``seed``: ``out/flight_<seed>``."""
    return Path(out) / f"{BAG_PREFIX}{seed}"


def _record_job(job: tuple[Path, RecordBagConfig]) -> RecordBagResult:
    """Record one bag of a batch (runs in a worker process)."""
    return record_expert_bag(*job)


def record_bags(
    out: str | Path,
    episodes: int,
    config: RecordBagConfig = RecordBagConfig(seed=TRAINING_RECORD_SEED),
    held_out: bool = False,
    workers: int | None = None,
    on_result: Callable[[int, RecordBagResult], None] | None = None,
) -> list[RecordBagResult]:
    """Record ``episodes`` bags with seeds ``config.seed, config.seed + 1, ...`` into ``out/flight_<seed>``.

    Each bag depends only on its seed and settings, so the bags are the same however many
    processes record them. ``out`` may exist (e.g. clean and noisy bags in one folder); none of
    the bags may.

    Args:
        out: the folder of bags (created).
        episodes: how many.
        config: what every bag flies; ``config.seed`` is the first seed.
        held_out: the bags are held out (seeds from 10 000 on), else training bags (0..9999).
        workers: processes recording bags (None: one per core).
        on_result: called with (index, result) in seed order as bags are written.

    Raises:
        SimError: seeds outside the range of their use (:func:`check_bag_seeds`), or a bag exists already.
    """
    check_bag_seeds(config.seed, episodes, held_out)
    folder = Path(out)
    jobs = [(bag_path(folder, seed), dataclasses.replace(config, seed=seed)) for seed in range(config.seed, config.seed + episodes)]
    existing = [str(path) for path, _ in jobs if path.exists()]
    if existing:
        raise SimError(
            f"{len(existing)} of the {episodes} bags exist already ({existing[0]}, ...); "
            "record into another folder or start at another --seed."
        )
    folder.mkdir(parents=True, exist_ok=True)
    return run_jobs(_record_job, jobs, workers, on_result)
