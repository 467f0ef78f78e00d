"""The emulated ARM cores: the qemu CPU model and the ``/proc/cpuinfo`` a real board shows.

onnxruntime reads ``/proc/cpuinfo`` at import time (pytorch/cpuinfo) to pick its kernels, and
crashes on the host's x86 text. qemu's ``-L SYSROOT`` serves ``SYSROOT/proc/cpuinfo`` instead,
so the emulation writes there the text of the board being emulated.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class _CoreId(NamedTuple):
    board: str
    features: str
    variant: str
    part: str
    revision: int


class ArmCpu(Enum):
    """CPU models offered for the emulation (the qemu ``-cpu`` name is the value).

    qemu's default ``max`` enables SVE/SME, which neither board has; these models do not.
    """

    CORTEX_A72 = "cortex-a72"
    CORTEX_A76 = "cortex-a76"

    @classmethod
    def parse(cls, value: str | ArmCpu) -> ArmCpu:
        """The member for ``value`` (``'cortex-a76'``).

        Raises:
            ValueError: naming the valid choices.
        """
        if isinstance(value, ArmCpu):
            return value
        for member in cls:
            if member.value == value:
                return member
        raise ValueError(f"Unknown ARM CPU {value!r}; use one of {[m.value for m in cls]}.")

    @property
    def board(self) -> str:
        """The board this core stands for."""
        return _CORES[self].board

    def cpuinfo(self, processors: int) -> str:
        """``/proc/cpuinfo`` text of a Linux arm64 board with ``processors`` such cores."""
        core = _CORES[self]
        block = (
            "BogoMIPS\t: 108.00\n"
            f"Features\t: {core.features}\n"
            "CPU implementer\t: 0x41\n"
            "CPU architecture: 8\n"
            f"CPU variant\t: {core.variant}\n"
            f"CPU part\t: {core.part}\n"
            f"CPU revision\t: {core.revision}\n"
        )
        return "".join(f"processor\t: {index}\n{block}\n" for index in range(max(1, processors)))


_CORES = {
    # Raspberry Pi 4 (BCM2711): ARMv8.0-A, no crypto extension.
    ArmCpu.CORTEX_A72: _CoreId(
        board="Raspberry Pi 4 (Cortex-A72)",
        features="fp asimd evtstrm crc32 cpuid",
        variant="0x0",
        part="0xd08",
        revision=3,
    ),
    # Raspberry Pi 5 (BCM2712), the qemu model nearest to Jetson Orin's Cortex-A78AE: ARMv8.2-A.
    ArmCpu.CORTEX_A76: _CoreId(
        board="Cortex-A76 (Raspberry Pi 5; nearest qemu model to Jetson Orin's Cortex-A78AE)",
        features=(
            "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
            "asimdrdm lrcpc dcpop asimddp"
        ),
        variant="0x4",
        part="0xd0b",
        revision=1,
    ),
}
