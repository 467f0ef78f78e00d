"""Wind for the ``wind`` variant: rotorpy's ConstantWind plus SinusoidWind gusts, seeded."""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from lnn_ros.sim.world._rotorpy import ConstantWind, SinusoidWind
from lnn_ros.sim.world.config import VariantSpec


class WindProfile(Protocol):
    """rotorpy's wind interface: world-frame wind velocity (m/s) at time t and position."""

    def update(self, t: float, position: np.ndarray) -> np.ndarray: ...


class SumWind:
    """The sum of several rotorpy wind profiles."""

    def __init__(self, *profiles: WindProfile) -> None:
        self.profiles = profiles

    def update(self, t: float, position: np.ndarray) -> np.ndarray:
        """World-frame wind velocity, m/s, shape (3,)."""
        return sum((np.asarray(p.update(t, position), dtype=float) for p in self.profiles), np.zeros(3))


def sample_wind(spec: VariantSpec, rng: np.random.Generator) -> WindProfile | None:
    """A steady wind of random horizontal direction plus sinusoidal gusts, or None in calm variants.

    Gusts: amplitude per axis drawn from the spec (vertical at a third of it), frequencies
    0.1-0.6 Hz, random phases.
    """
    if not spec.has_wind:
        return None
    speed = rng.uniform(*spec.wind_mean_speed_range_mps)
    heading = rng.uniform(-math.pi, math.pi)
    steady = ConstantWind(speed * math.cos(heading), speed * math.sin(heading), 0.0)
    amplitudes = rng.uniform(*spec.wind_gust_amplitude_range_mps, size=3) * np.array([1.0, 1.0, 1 / 3])
    gusts = SinusoidWind(
        amplitudes=amplitudes,
        frequencies=rng.uniform(0.1, 0.6, size=3),
        phase=rng.uniform(0.0, 10.0, size=3),
    )
    return SumWind(steady, gusts)
