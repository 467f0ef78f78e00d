"""Planned steps through the window graph (Engine.plan, PolicyRunner.plan_imu, replay batch): equal to step calls."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import camera_bundle  # noqa: F401 (module-scoped fixture)

from lnn_ros.bag.replay import ReplayConfig, replay_bag
from lnn_ros.engine import Engine, Outcome
from lnn_ros_tools.synthetic.bundles import make_imu_bundle
from lnn_ros_tools.synthetic.flight import write_flight

MS = 1_000_000
WINDOW = 4


@pytest.fixture(scope="module")
def windowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_imu_bundle(tmp_path_factory.mktemp("plan"), window_steps=WINDOW).path


def inputs(count: int, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(count, 6)).astype(np.float32)
    stamps = (10**9 + np.cumsum(rng.integers(2 * MS, 9 * MS, size=count))).tolist()
    return features, stamps


def rollout(engine: Engine, features: np.ndarray, stamps: list[int]) -> tuple[list[Outcome], np.ndarray]:
    outcomes, outputs = [], []
    for row, stamp in zip(features, stamps):
        result = engine.step(row, stamp)
        outcomes.append(result.outcome)
        outputs.append(np.full(4, np.nan) if result.output is None else result.output.copy())
    return outcomes, np.array(outputs)


@pytest.mark.parametrize("planned", [3, 4, 7, 11])
def test_planned_steps_equal_step_calls(windowed: Path, planned: int) -> None:
    features, stamps = inputs(12)
    plain, batched = Engine(windowed), Engine(windowed)
    for engine in (plain, batched):
        engine.step(features[0], stamps[0] - 5 * MS)  # starts the stamp clock
    assert batched.plan(features[:planned], stamps[:planned]) == planned
    want, want_y = rollout(plain, features, stamps)
    got, got_y = rollout(batched, features, stamps)
    assert got == want == [Outcome.STEPPED] * 12
    np.testing.assert_allclose(got_y, want_y, atol=1e-6, rtol=0)
    np.testing.assert_allclose(batched.hidden, plain.hidden, atol=1e-6, rtol=0)


@pytest.mark.parametrize("stop", [0, 2, 4, 5])
def test_a_step_off_the_plan_drops_it_and_keeps_the_state_right(windowed: Path, stop: int) -> None:
    """A different input after ``stop`` planned steps: the state of the consumed prefix is recomputed."""
    features, stamps = inputs(9)
    plain, batched = Engine(windowed), Engine(windowed)
    for engine in (plain, batched):
        engine.step(features[0], stamps[0] - 5 * MS)
    batched.plan(features, stamps)
    changed = features.copy()
    changed[stop] += 0.5  # this step is not the planned one
    want, want_y = rollout(plain, changed, stamps)
    got, got_y = rollout(batched, changed, stamps)
    assert got == want
    np.testing.assert_allclose(got_y, want_y, atol=1e-6, rtol=0)
    np.testing.assert_allclose(batched.hidden, plain.hidden, atol=1e-6, rtol=0)


def test_plan_stops_before_steps_that_would_not_step(windowed: Path) -> None:
    features, stamps = inputs(8)
    engine = Engine(windowed)
    assert engine.plan(features, stamps) == 0  # no stamp yet: the first input only initialises
    engine.step(features[0], stamps[0] - 5 * MS)
    stamps[5] = stamps[4]  # a duplicate
    assert engine.plan(features, stamps) == 5
    features[2, 1] = np.nan
    assert engine.plan(features, stamps) == 2


def test_reset_gap_and_hidden_reads_in_the_middle_of_a_plan(windowed: Path) -> None:
    features, stamps = inputs(10)
    stamps[6:] = [s + 5 * 10**9 for s in stamps[6:]]  # a gap reset at step 6
    plain, batched = Engine(windowed), Engine(windowed)
    for engine in (plain, batched):
        engine.step(features[0], stamps[0] - 5 * MS)
    batched.plan(features, stamps)
    for i, (row, stamp) in enumerate(zip(features, stamps)):
        if i == 3:
            np.testing.assert_allclose(batched.hidden, plain.hidden, atol=1e-6, rtol=0)
        a, b = plain.step(row, stamp), batched.step(row, stamp)
        assert a.outcome is b.outcome
        if a.output is not None:
            assert b.output is not None
            np.testing.assert_allclose(b.output, a.output, atol=1e-6, rtol=0)
    np.testing.assert_allclose(batched.hidden, plain.hidden, atol=1e-6, rtol=0)
    batched.plan(features[:1], [stamps[-1] + MS])
    batched.reset()
    plain.reset()
    assert batched.step(features[0], stamps[-1] + MS).outcome is Outcome.INITIALISED  # the plan went with the reset
    np.testing.assert_array_equal(batched.hidden, np.zeros(8, dtype=np.float32))


def test_a_bundle_without_window_graph_plans_nothing(tmp_path: Path) -> None:
    engine = Engine(make_imu_bundle(tmp_path, window_steps=None).path)
    features, stamps = inputs(4)
    engine.step(features[0], stamps[0] - 5 * MS)
    assert not engine.can_plan and engine.plan(features, stamps) == 0


def _csv(path: Path) -> tuple[list[list[str]], np.ndarray]:
    rows = list(csv.reader(path.open()))
    return [r[:2] for r in rows], np.array([[float(v) for v in r[2:6]] for r in rows[1:]])


def test_batched_replay_equals_step_by_step_replay(camera_bundle: Path, tmp_path: Path) -> None:
    """200 Hz IMU + 30 Hz camera: same commands (to 1e-6), stamps, log times and counters."""
    bag = write_flight(tmp_path / "flight", seconds=3.0)
    plain = replay_bag(bag, camera_bundle, tmp_path / "plain", ReplayConfig(progress=False, plot=False))
    batched = replay_bag(
        bag, camera_bundle, tmp_path / "batched", ReplayConfig(progress=False, plot=False, batch=True, batch_messages=5)
    )
    assert plain.commands > 500 and batched.commands == plain.commands
    assert batched.counters == plain.counters
    keys_plain, values_plain = _csv(plain.files["commands_csv"])
    keys_batched, values_batched = _csv(batched.files["commands_csv"])
    assert keys_batched == keys_plain
    np.testing.assert_allclose(values_batched, values_plain, atol=1e-6, rtol=0)
