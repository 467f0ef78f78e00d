"""``python -m lnn_ros_tools.arm [--cache-dir DIR]``: set up the aarch64 emulation (idempotent)."""

import sys

from lnn_ros_tools.arm.emulation import main

sys.exit(main())
