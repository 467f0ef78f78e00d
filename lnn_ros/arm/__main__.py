"""``python -m lnn_ros.arm [--cache-dir DIR]``: set up the aarch64 emulation (idempotent)."""

import sys

from lnn_ros.arm.emulation import main

sys.exit(main())
