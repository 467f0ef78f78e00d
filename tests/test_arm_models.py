"""Every shipped bundle in models/ and the bundles the tests export give the same numbers on aarch64.

One emulated onnxruntime process checks them all (see lnn_ros/arm). Like the other arm tests it
FAILS when the emulation cannot be set up, unless LNN_ROS_SKIP_ARM=1 is set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bundle_factory import make_imu_bundle, make_imu_camera_bundle, make_vector_bundle

from lnn_ros.bundle import load_bundle
from lnn_ros_tools.arm import ArmSetupError, ensure_emulation, verify_bundles

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.parent for p in (REPO / "models").glob("*/manifest.yaml"))

pytestmark = pytest.mark.timeout(900)


def test_models_folder_ships_bundles() -> None:
    names = {p.name for p in SHIPPED}
    assert {"sine_cfc", "drone_cfc"} <= names, names
    for path in SHIPPED:
        load_bundle(path)  # hashes and manifest are valid


def test_every_shipped_and_exported_bundle_matches_on_aarch64(tmp_path: Path) -> None:
    if os.environ.get("LNN_ROS_SKIP_ARM") == "1":
        pytest.skip("LNN_ROS_SKIP_ARM=1: aarch64 emulation tests skipped on request")
    try:
        ensure_emulation()
    except ArmSetupError as exc:
        pytest.fail(f"aarch64 emulation unavailable (set LNN_ROS_SKIP_ARM=1 to skip): {exc}")
    exported = [
        make_vector_bundle(tmp_path / "vector_ltc", kind="ltc").path,
        make_imu_bundle(tmp_path / "imu_wired_cfc", kind="wired_cfc").path,
        make_imu_camera_bundle(tmp_path / "imu_camera_cfc", kind="cfc").path,
    ]
    bundles = [*SHIPPED, *exported]
    report = verify_bundles(bundles, steps=300, tolerance=1e-5)
    print(report.format())
    assert report.passed, report.format()
    checked = {(Path(d.key.bundle).name, d.key.graph) for d in report.diffs}
    for path in bundles:
        for role in load_bundle(path).manifest.graphs:
            assert (path.name, role) in checked, f"{path.name} {role} graph was not checked"
