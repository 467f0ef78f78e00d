"""Planned steps through the window graph (Engine.plan, PolicyRunner.plan_imu, replay batch): equal to step calls."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from bundle_factory import camera_bundle  # noqa: F401 (module-scoped fixture)

from lnn_ros.bag.replay import ReplayConfig, replay_bag
from lnn_ros.engine import Engine, Outcome
from lnn_ros.engine.plan import UnrolledSteps, unrolled_step_graph
from lnn_ros.engine.session import open_session, run_options
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


SHIPPED = sorted(p for p in (Path(__file__).resolve().parent.parent / "models").iterdir() if (p / "manifest.yaml").exists())


def _unrolled(bundle: Path, steps: int, factored: bool) -> tuple[UnrolledSteps, ort.InferenceSession]:
    """The bundle's UnrolledSteps and its step graph's own session."""
    engine = Engine(bundle)
    model = engine.manifest.model
    config = engine.config.session
    data = engine.bundle.graph_data("step")
    unrolled = UnrolledSteps(data, steps, lambda graph: open_session(graph, config)[0], run_options("CPUExecutionProvider"),
                             (model.input_size, model.state_size, model.output_size), factored=factored)
    return unrolled, open_session(data, config)[0]


@pytest.mark.parametrize("bundle", SHIPPED, ids=[p.name for p in SHIPPED])
def test_unrolled_steps_equal_step_graph_calls(bundle: Path) -> None:
    """UnrolledSteps (T = 16; 77 steps: whole calls and a short last one) against the step graph called once
    per step: bit for bit when not factored (and where only the readout is: the GRU); to 1e-6 when the
    first layer's input share is factored (the CfC bundles: a few 1e-7)."""
    plain, step = _unrolled(bundle, 16, factored=False)
    factored, _ = _unrolled(bundle, 16, factored=True)
    rng = np.random.default_rng(5)
    count, features, state = 77, plain.x.shape[1], plain.h.shape[1]
    x = rng.normal(size=(count, features)).astype(np.float32)
    dt = rng.uniform(0.001, 0.02, size=count).astype(np.float32)
    hidden = (0.3 * rng.normal(size=(1, state))).astype(np.float32)
    expected, h = [], hidden
    for k in range(count):
        y, h = step.run(None, {"x": x[k : k + 1], "hidden": h, "dt": dt[k : k + 1, None]})
        expected.append(y[0])
    got_y, got_h = plain.run(x, dt, hidden)
    np.testing.assert_array_equal(got_y, np.array(expected))
    np.testing.assert_array_equal(got_h, h)
    fast_y, fast_h = factored.run(x, dt, hidden)
    np.testing.assert_allclose(fast_y, np.array(expected), atol=1e-6, rtol=0)
    np.testing.assert_allclose(fast_h, h, atol=1e-6, rtol=0)
    if bundle.name == "drone_gru":  # Concat(x, dt) -> Gemm is not the first-layer shape: only the readout is factored
        np.testing.assert_array_equal(fast_y, got_y)


@pytest.mark.parametrize("bundle", SHIPPED, ids=[p.name for p in SHIPPED])
def test_factored_unrolling_takes_the_shapes_it_knows(bundle: Path) -> None:
    """Factored: a CfC step loses its Concat and its readout Gemm (one readout Gemm for all T steps); a GRU its
    readout; an LSTM (readout behind a Slice) and the stacked MLP keep every node."""
    engine = Engine(bundle)
    model = engine.manifest.model
    sizes = (model.input_size, model.state_size, model.output_size)
    steps = 8
    graphs = [onnx.load_from_string(unrolled_step_graph(engine.bundle.graph_data("step"), steps, sizes, f)).graph
              for f in (False, True)]
    plain, factored = ([n.op_type for n in g.node] for g in graphs)
    saved = {"drone_cfc": 2, "sine_cfc": 2, "drone_gru": 1}.get(bundle.name, 0)
    # once per call: the x-share Gemm (its Split replaces the Split of x); the readout Gemm replaces the Concat of y
    assert len(factored) == len(plain) - saved * steps + (saved == 2)
    assert factored.count("Concat") == plain.count("Concat") - (steps if saved == 2 else 0) - (1 if saved else 0)
    assert {i.name for i in graphs[1].input} == {"x", "hidden", *(f"dt_{k}" for k in range(steps))}
    assert [o.name for o in graphs[1].output] == ["y", "h"]
