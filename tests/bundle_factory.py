"""The synthetic bundles of :mod:`lnn_ros_tools.synthetic.bundles` as module-scoped pytest fixtures.

A test module imports the fixtures it uses (``from bundle_factory import imu_bundle``); being
module-scoped, each importing module builds its own bundle once. The bundle builders are
re-exported for tests that call them directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lnn_ros_tools.synthetic.bundles import (
    CAMERA,
    DT_LIMITS,
    IMU_FEATURES,
    TWIST_OUTPUTS,
    FactoryBundle,
    TinyEncoder,
    imu_features,
    make_imu_bundle,
    make_imu_camera_bundle,
    make_vector_bundle,
    narrowed_copy,
    small_cell_config,
)

__all__ = [
    "CAMERA",
    "DT_LIMITS",
    "IMU_FEATURES",
    "NARROW_LIMIT",
    "TWIST_OUTPUTS",
    "FactoryBundle",
    "TinyEncoder",
    "camera_bundle",
    "imu_bundle",
    "imu_features",
    "make_imu_bundle",
    "make_imu_camera_bundle",
    "make_vector_bundle",
    "narrow_bundle",
    "narrowed_copy",
    "small_cell_config",
]

NARROW_LIMIT = 0.05


@pytest.fixture(scope="module")
def imu_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`make_imu_bundle`'s folder."""
    return make_imu_bundle(tmp_path_factory.mktemp("imu")).path


@pytest.fixture(scope="module")
def camera_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`make_imu_camera_bundle`'s folder."""
    return make_imu_camera_bundle(tmp_path_factory.mktemp("imu_camera")).path


@pytest.fixture(scope="module")
def narrow_bundle(camera_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The IMU + camera bundle with every output limited to [-NARROW_LIMIT, NARROW_LIMIT]."""
    return narrowed_copy(camera_bundle, tmp_path_factory.mktemp("narrow") / "bundle", NARROW_LIMIT)
