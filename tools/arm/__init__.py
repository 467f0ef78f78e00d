"""aarch64 verification: do exported bundles give the same numbers on ARM onnxruntime?

``lnn-ros verify-arm BUNDLE...`` runs every graph of each bundle (step rollout, window,
encoder) on this x86 machine's onnxruntime and, on the same recorded inputs, on the
aarch64 (manylinux) builds of the *same* onnxruntime and numpy versions, executed by
qemu user-mode emulation of a Cortex-A76 (default, the qemu model nearest to Jetson Orin's
Cortex-A78AE) or a Cortex-A72 (Raspberry Pi 4), then compares every output.

What a pass proves: the CPU execution provider of the aarch64 onnxruntime wheel (its ARM
NEON kernels, graph optimisations and numpy) computes the bundle's outputs within the
tolerance (default 1e-5 max-abs) of x86, over a few hundred closed-loop recurrent steps
with irregular dt, for the instruction set of the emulated core. qemu emulates ARM floating
point in software, bit-exact to the architecture (IEEE 754), so a difference comes from the
code that runs (other kernels, FMA, vector widths), not from the emulator.

What it does not prove: speed (the emulated run is ~30x slower than native and says
nothing about latency on a board); the CUDA or TensorRT execution providers of a Jetson
(not emulated); JetPack's own onnxruntime builds if they differ from the PyPI wheel; the
Python on the robot (the sysroot is Debian's arm64 Python 3.X, the numerics come from the
wheels); behaviour of real silicon beyond what qemu models (errata, other core types).

Set-up (once per machine, as root with apt and PyPI reachable; ``tools/arm/setup_emulation.sh``
or automatically on first use) takes 20-35 s and about 200 MB in ``$LNN_ROS_ARM_CACHE``
(default ``~/.cache/lnn_ros/arm64``); see :mod:`lnn_ros_tools.arm.emulation`.
"""

from lnn_ros_tools.arm.compare import OutputDiff, OutputKey, PlatformInfo, VerifyReport, offset_reference
from lnn_ros_tools.arm.cpus import ArmCpu
from lnn_ros_tools.arm.emulation import Emulation, default_cache_dir, ensure_emulation
from lnn_ros_tools.arm.errors import ArmError, ArmSetupError, ArmVerifyError
from lnn_ros_tools.arm.verify import add_verify_arm_parser, compare_saved, run_verify_arm, verify_bundles

__all__ = [
    "ArmCpu",
    "ArmError",
    "ArmSetupError",
    "ArmVerifyError",
    "Emulation",
    "OutputDiff",
    "OutputKey",
    "PlatformInfo",
    "VerifyReport",
    "add_verify_arm_parser",
    "compare_saved",
    "default_cache_dir",
    "ensure_emulation",
    "offset_reference",
    "run_verify_arm",
    "verify_bundles",
]
