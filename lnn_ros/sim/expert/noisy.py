"""The expert with noise injected into what is flown (DART), for demonstrations that teach recovery.

Plain behaviour cloning of the expert fails here in a telling way: the IMU reveals the command
being flown (the gyro's yaw rate follows the commanded yaw rate, the tilt and the integrated
acceleration follow the commanded velocity), so a policy that copies "what the drone is doing
now" fits the demonstrations almost perfectly, ignores the camera and, in closed loop, keeps
flying straight past the target. Flying the expert's command plus a slowly varying random
perturbation while still *labelling* every step with the clean expert command breaks that
shortcut: the IMU now reports expert + noise, the label says expert, and only the image tells
the difference. (Laskey et al., "DART: Noise Injection for Robust Imitation Learning", 2017.)

The perturbation is an Ornstein-Uhlenbeck process per command axis, advanced at each IMU
stamp, with stationary std ``scale * sigma`` (``scale`` drawn once per episode) and time
constant ``tau_s``::

    n_k = a n_{k-1} + sqrt(1 - a^2) scale sigma w_k,   a = exp(-Δt / tau_s),   w_k ~ N(0, I)
    flown_k = expert(state_k) + n_k

Use it as the ``pilot_factory`` of :func:`lnn_ros.sim.record_demonstration` with
``expert_share=0``: the noisy pilot flies, the expert labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lnn_ros.runtime.records import Command, ImuSample, SensorRecord
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.expert import expert_for
from lnn_ros.sim.world.closed_loop import Controller
from lnn_ros.sim.world.episode import Simulator
from lnn_ros.units import NS_PER_S

_NOISE_STREAM = 0xDA27  # mixed with the episode seed: the noise never correlates with the sim's own streams


@dataclass(frozen=True)
class NoisyExpert:
    """A ``pilot_factory``: the expert's command plus Ornstein-Uhlenbeck noise (see the module docstring).

    Attributes:
        sigma: stationary std per axis ``[vx, vy, vz, yaw_rate]`` at scale 1 (m/s, rad/s).
        tau_s: correlation time of the noise.
        scale_range: the episode's noise scale is uniform in this range.
    """

    sigma: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.5)
    tau_s: float = 0.5
    scale_range: tuple[float, float] = (0.3, 1.5)

    def __post_init__(self) -> None:
        if len(self.sigma) != 4 or min(self.sigma) < 0 or not all(math.isfinite(s) for s in self.sigma):
            raise SimError(f"NoisyExpert.sigma must be 4 finite numbers >= 0, got {self.sigma!r}.")
        if not self.tau_s > 0:
            raise SimError(f"NoisyExpert.tau_s must be > 0, got {self.tau_s!r}.")
        low, high = self.scale_range
        if not 0 <= low <= high:
            raise SimError(f"NoisyExpert.scale_range must be (low, high) with 0 <= low <= high, got {self.scale_range!r}.")

    def __call__(self, sim: Simulator) -> Controller:
        expert = expert_for(sim)
        rng = np.random.default_rng([sim.seed, _NOISE_STREAM])
        sigma = rng.uniform(*self.scale_range) * np.asarray(self.sigma, dtype=float)
        noise = sigma * rng.standard_normal(4)
        last_ns: int | None = None

        def controller(event: SensorRecord) -> Command | None:
            nonlocal noise, last_ns
            if not isinstance(event, ImuSample):
                return None
            if last_ns is not None:
                decay = math.exp(-(event.stamp_ns - last_ns) / NS_PER_S / self.tau_s)
                noise = decay * noise + math.sqrt(1.0 - decay * decay) * sigma * rng.standard_normal(4)
            last_ns = event.stamp_ns
            return Command.heading(event.stamp_ns, *(expert.command(sim.state, event.stamp_ns).heading_array() + noise))

        return controller
