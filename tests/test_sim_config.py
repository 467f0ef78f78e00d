"""SimConfig validation, the variant registry and variant_from_name."""

from __future__ import annotations

import dataclasses
import math

import pytest

from lnn_ros.sim.errors import SimError
from lnn_ros.sim.world.config import VARIANTS, ScenarioVariant, SimConfig, variant_from_name, variant_spec


def test_every_variant_has_a_spec_and_a_name_round_trip() -> None:
    assert set(VARIANTS) == set(ScenarioVariant)
    for variant in ScenarioVariant:
        assert variant_from_name(variant.value) is variant
        assert variant_from_name(variant) is variant
        assert variant_spec(variant.value) is VARIANTS[variant]
    assert variant_from_name("  Wind ") is ScenarioVariant.WIND


def test_unknown_variant_names_the_valid_ones() -> None:
    with pytest.raises(SimError) as info:
        variant_from_name("fog")
    message = str(info.value)
    assert "'fog'" in message
    for variant in ScenarioVariant:
        assert repr(variant.value) in message


def test_only_the_wind_variants_blow_wind() -> None:
    windy = [ScenarioVariant.WIND, ScenarioVariant.STORM, ScenarioVariant.STORM_LIGHTING]
    assert [v for v in ScenarioVariant if VARIANTS[v].has_wind] == windy


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("physics_dt_s", 0.0, "physics_dt_s"),
        ("physics_dt_s", 0.05, "<= 0.01"),
        ("imu_rate_hz", -5.0, "imu_rate_hz"),
        ("imu_jitter_frac", 0.6, "imu_jitter_frac"),
        ("camera_drop_prob", 1.0, "camera_drop_prob"),
        ("image_width", 4, "image_width"),
        ("image_height", 48.0, "image_height"),
        ("target_height_range_m", (2.0, 1.0), "target_height_range_m"),
        ("target_distance_range_m", (0.5, 3.0), "success_radius_m"),
        ("duration_s", math.nan, "duration_s"),
    ],
)
def test_bad_settings_are_rejected_with_the_field_and_value(field: str, value: object, fragment: str) -> None:
    with pytest.raises(SimError) as info:
        dataclasses.replace(SimConfig(), **{field: value})
    assert fragment in str(info.value)
    assert repr(value) in str(info.value)


def test_intrinsics_follow_the_field_of_view() -> None:
    config = SimConfig(image_width=64, image_height=48, camera_hfov_deg=90.0)
    k = config.intrinsics
    assert (k.width, k.height, k.cx, k.cy) == (64, 48, 32.0, 24.0)
    assert k.fx == pytest.approx(32.0)
    assert k.fy == k.fx
