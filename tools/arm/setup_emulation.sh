#!/usr/bin/env bash
# Set up the aarch64 emulation used by `lnn-ros verify-arm`: qemu-aarch64-static, an arm64
# Python sysroot and aarch64 wheels of this environment's exact onnxruntime/numpy versions.
# Idempotent: a complete cache is left alone. The first run needs root (dpkg
# --add-architecture arm64, apt-get update), apt and PyPI: 20-35 s and about 200 MB.
#
# Usage: tools/arm/setup_emulation.sh [--cache-dir DIR]
# Environment: LNN_ROS_ARM_CACHE (default ~/.cache/lnn_ros/arm64), PYTHON (the Python
# that has lnn_ros' dependencies; default: the repo's .venv, else python3).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$repo/.venv/bin/python" ]]; then python="$repo/.venv/bin/python"; else python="python3"; fi
fi
exec "$python" -m lnn_ros_tools.arm "$@"
