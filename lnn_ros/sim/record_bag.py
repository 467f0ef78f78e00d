"""``lnn-ros sim record-bag``: the expert flies the simulator; its sensors and commands go into a rosbag2 bag.

No ROS is needed: the bag holds what ``ros2 bag record`` would hold next to ``sim_drone_node``
with the expert as the pilot (topics as :class:`~lnn_ros.bag.topics.BagTopics` names them, so
``lnn-ros replay``, ``bag-to-dataset`` and ``play`` read it with their defaults):

* ``/imu`` (``sensor_msgs/msg/Imu``, ~200 Hz) and ``/camera/image_raw`` (``sensor_msgs/msg/Image``,
  rgb8, ~30 Hz): every sensor event of the episode, with the simulator's jittered stamps and
  drops and ``sim_drone_node``'s default frame ids;
* ``/cmd_vel`` (``geometry_msgs/msg/TwistStamped``): the privileged expert's command answering
  each IMU sample, stamped with that sample's stamp as ``lnn_node`` stamps the command a sample
  produced; linear x/y/z and angular z in the heading frame (what ``sim_drone_node`` flies), and
  flown from that stamp on (no latency).

The episode (seed, variant, duration) is written beside the bag's ``metadata.yaml`` as
``sim_episode.yaml`` (:mod:`lnn_ros.sim.bundle_check`; rosbag2 tools ignore the extra file).

Times: header stamps are sim time, nanoseconds since the episode start (as ``sim_drone_node``
stamps them). The log time of every message is its header stamp, i.e. a recorder without
transport latency; so ``--order log`` and ``--order stamp`` replay the bag in the same order, and
a policy replayed on it sees the sensor stream the expert answered.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from lnn_ros.bag.topics import BagTopics
from lnn_ros.bag.writer import BagStorage, BagWriter
from lnn_ros.node_spec.params import DEFAULT_COMMAND_FRAME
from lnn_ros.runtime.records import ImuSample
from lnn_ros.sim.bundle_check import write_episode
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.world.config import SimConfig, variant_from_name
from lnn_ros.units import NS_PER_S

RECORD_SEED = 10_000  # held out: seeds below 10 000 are the shipped policies' training data
STORAGES = (BagStorage.MCAP.value, BagStorage.SQLITE3.value)


@dataclass(frozen=True)
class RecordBagConfig:
    """What to fly and how to write it.

    Attributes:
        seed: episode seed (start pose, target, noise, timing).
        variant: scenario variant name (nominal or an out-of-distribution one).
        duration_s: episode length in sim time.
        storage: rosbag2 storage, ``mcap`` or ``sqlite3`` (the ROS 2 Humble default).
        topics: topic names of the three streams.
        imu_frame_id: ``header.frame_id`` of the IMU messages (``sim_drone_node``'s default).
        camera_frame_id: of the images (``sim_drone_node``'s default).
        command_frame_id: of the commands (``lnn_node``'s default ``frame_id``).
    """

    seed: int = RECORD_SEED
    variant: str = "nominal"
    duration_s: float = SimConfig().duration_s
    storage: str = BagStorage.MCAP.value
    topics: BagTopics = BagTopics()
    imu_frame_id: str = "base_link"
    camera_frame_id: str = "camera_optical"
    command_frame_id: str = DEFAULT_COMMAND_FRAME  # what lnn_node stamps on cmd_vel (docs/ros.md)

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


class RecordBagResult(NamedTuple):
    """What was recorded.

    Attributes:
        path: the bag (a rosbag2 folder).
        counts: messages written per topic (absolute names).
        duration_s: sim time flown (shorter than asked if the vehicle crashed).
        reached: the expert reached the target.
        final_distance_m: distance to the target at the end.
    """

    path: Path
    counts: dict[str, int]
    duration_s: float
    reached: bool
    final_distance_m: float


def record_expert_bag(out: str | Path, config: RecordBagConfig = RecordBagConfig()) -> RecordBagResult:
    """Fly one episode with the expert and write its sensors and commands to a new bag at ``out``.

    Raises:
        BagError: ``out`` exists already or cannot be written.
    """
    from lnn_ros.sim.expert.expert import expert_controller
    from lnn_ros.sim.world.episode import (
        Simulator,  # rotorpy: loaded when flying, so the CLI lists the command without it
    )

    sim = Simulator(config.sim_config(), config.variant, config.seed)
    expert = expert_controller(sim)
    topics = config.topics
    with BagWriter(out, config.storage) as bag:
        for event in sim.events():
            command = expert(event)  # reads the true state now, right after the event
            if isinstance(event, ImuSample):
                bag.write_imu(topics.imu, event, frame_id=config.imu_frame_id)
            else:
                bag.write_image(topics.camera, event, frame_id=config.camera_frame_id)
            if command is not None:
                sim.set_command(command, event.stamp_ns)
                bag.write_twist(topics.command, command, frame_id=config.command_frame_id)
    result = sim.result()
    if bag.path.is_dir():  # rosbag2: the episode beside metadata.yaml, for 'lnn-ros sim check-bundle --bags'
        write_episode(bag.path, config.seed, config.variant, config.duration_s)
    return RecordBagResult(
        path=bag.path,
        counts=dict(bag.counts),
        duration_s=sim.now_ns / NS_PER_S,
        reached=result.reached,
        final_distance_m=result.final_distance_m,
    )
