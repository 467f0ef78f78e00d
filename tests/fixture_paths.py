"""Paths of the committed test fixtures."""

from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "flight_small"
"""The small flight bag; regenerate: ``python -m lnn_ros_tools.synthetic.flight tests/fixtures/flight_small``."""
