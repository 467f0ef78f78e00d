"""The shipped drone policies (models/drone_cfc, drone_wired_cfc and the baselines) load and fly.

Everything runs through the torch-free path the node uses (Engine + PolicyRunner).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lnn_ros.bundle import load_bundle
from lnn_ros.sim import SimConfig, Simulator, record_demonstration, run_closed_loop
from lnn_ros.sim.demo import shipped_model
from lnn_ros.sim.pilot import BundlePilot
from lnn_ros.sim.seeds import EVALUATION_SEEDS, evaluation_seeds
from lnn_ros_examples.drone_policy.evaluate import OFFLINE_FIRST_SEED, replay_commands
from lnn_ros_examples.drone_policy.recipe import SHIPPED_KINDS

KINDS = SHIPPED_KINDS
TWIST = {"vx": ("linear.x", "m/s", 2.0), "vy": ("linear.y", "m/s", 2.0), "vz": ("linear.z", "m/s", 2.0),
         "yaw_rate": ("angular.z", "rad/s", 1.5)}  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_bundle_is_small_and_describes_its_inputs_and_outputs(kind: str) -> None:
    folder = shipped_model(f"drone_{kind}")
    assert folder == Path(__file__).resolve().parent.parent / "models" / f"drone_{kind}"
    bundle = load_bundle(folder)  # checks every file hash
    manifest = bundle.manifest
    assert manifest.model.kind == kind
    assert sum(p.stat().st_size for p in folder.iterdir()) < 1_000_000
    assert set(manifest.graphs) == {"step", "encoder"}
    camera = manifest.camera
    assert camera is not None and (camera.width, camera.height, camera.encoding) == (64, 48, "rgb8")
    assert camera.embedding_size == 16
    sources = [(f.source, f.field if f.source == "imu" else f.index) for f in manifest.features]
    assert sources[:6] == [("imu", f"{g}.{a}") for g in ("angular_velocity", "linear_acceleration") for a in "xyz"]
    assert sources[6:] == [("camera", i) for i in range(16)]
    assert all(f.std > 0 for f in manifest.features[:6])
    outputs = {o.name: (o.twist_field, o.unit, o.min, o.max) for o in manifest.outputs}
    assert outputs == {name: (field, unit, -limit, limit) for name, (field, unit, limit) in TWIST.items()}
    assert manifest.dt.max_gap_s <= 1.0


@pytest.fixture(scope="module")
def held_out_demo():  # type: ignore[no-untyped-def]
    assert OFFLINE_FIRST_SEED in EVALUATION_SEEDS
    demo, _ = record_demonstration(dataclasses.replace(SimConfig(), duration_s=4.0), "nominal", OFFLINE_FIRST_SEED + 7)
    return demo


def test_cfc_tracks_a_held_out_expert_demonstration_better_than_trivial_predictors(held_out_demo) -> None:  # type: ignore[no-untyped-def]
    commands, labels = replay_commands(load_bundle(shipped_model("drone_cfc")), held_out_demo)
    assert len(commands) > 600
    rmse = float(np.sqrt(((commands - labels) ** 2).mean()))
    hover = float(np.sqrt((labels**2).mean()))
    mean = float(np.sqrt(((labels - labels.mean(axis=0)) ** 2).mean()))
    assert rmse < 0.5 * min(hover, mean), (rmse, hover, mean)


def test_cfc_flies_to_the_target_in_closed_loop() -> None:
    sim = Simulator(dataclasses.replace(SimConfig(), duration_s=6.0), "nominal", evaluation_seeds("nominal", 2)[1])
    result = run_closed_loop(sim, BundlePilot(shipped_model("drone_cfc"))(sim))
    assert result.reached and not result.crashed, result.final_distance_m
    assert result.final_distance_m < 1.0
