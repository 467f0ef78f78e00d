"""rotorpy, imported without torch.

rotorpy's modules do ``try: import torch`` only for their batched (GPU) classes, which we never
use; when torch is installed that import alone costs over a second and drags torch into a
process that should stay torch-free. So torch (and roma, torchdiffeq) are hidden while rotorpy
is imported, unless the process already loaded them.

rotorpy draws its noise from numpy's global legacy RNG; the simulator's subclasses
(``sensors.SeededImu``, ``vehicle.FixedStepMultirotor``) draw from the episode's own seeded
generators instead, so episodes are reproducible and the caller's ``np.random`` is untouched.
"""

from __future__ import annotations

import sys

_HIDDEN = ("torch", "roma", "torchdiffeq")
_blocked = [name for name in _HIDDEN if name not in sys.modules]
for _name in _blocked:
    sys.modules[_name] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
try:
    from rotorpy.controllers.quadrotor_control import SE3Control
    from rotorpy.sensors.imu import Imu
    from rotorpy.vehicles.crazyflie_params import quad_params as CRAZYFLIE_PARAMS
    from rotorpy.vehicles.hummingbird_params import quad_params as HUMMINGBIRD_PARAMS
    from rotorpy.vehicles.multirotor import Multirotor
    from rotorpy.wind.default_winds import ConstantWind, SinusoidWind
finally:
    for _name in _blocked:
        if sys.modules.get(_name, 0) is None:
            del sys.modules[_name]

__all__ = [
    "CRAZYFLIE_PARAMS",
    "HUMMINGBIRD_PARAMS",
    "ConstantWind",
    "Imu",
    "Multirotor",
    "SE3Control",
    "SinusoidWind",
]

