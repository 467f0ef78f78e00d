"""``lnn-ros verify-arm``: registered from :mod:`lnn_ros_tools.arm.verify`."""

from __future__ import annotations

import argparse

from lnn_ros_tools.arm.verify import add_verify_arm_parser


def register(subparsers: argparse._SubParsersAction) -> None:
    add_verify_arm_parser(subparsers)
