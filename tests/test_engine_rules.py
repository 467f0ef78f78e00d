"""The engine's Δt and input rules, each on a real onnxruntime session.

The graph here is a hand-written leaky integrator whose output is easy to predict, so each
rule's effect on the state can be checked exactly:

    hidden_out = hidden + dt * (x_norm @ W - hidden),   y = scale * hidden_out[:O]
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lnn_ros.bundle import DtLimits, FeatureSpec, GraphSpec, Manifest, ModelSpec, OutputSpec, write_manifest
from lnn_ros.engine import Engine, EngineConfig, Outcome, SessionConfig
from lnn_ros.errors import BundleError, EngineError

F, H, O = 3, 4, 2
MS = 1_000_000
W = np.arange(F * H, dtype=np.float32).reshape(F, H) / 10.0
MEAN = np.array([1.0, -2.0, 0.5], dtype=np.float32)
STD = np.array([2.0, 0.5, 1.0], dtype=np.float32)


class Integrator(torch.nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.register_buffer("w", torch.from_numpy(W))
        self.scale = scale

    def forward(self, x: torch.Tensor, hidden: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden_out = hidden + dt * (x @ self.w - hidden)
        return self.scale * hidden_out[:, :O], hidden_out


def reference_step(hidden: np.ndarray, raw: np.ndarray, dt_s: float, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    x = (raw - MEAN) / STD
    hidden = hidden + dt_s * (x @ W - hidden)
    return scale * hidden[:O], hidden


def make_bundle(folder: Path, *, scale: float = 1.0, limit: float = 100.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Integrator(scale),
            (torch.zeros(1, F), torch.zeros(1, H), torch.zeros(1, 1)),
            str(folder / "step.onnx"),
            input_names=["x", "hidden", "dt"],
            output_names=["y", "hidden_out"],
            dynamic_axes={name: {0: "batch"} for name in ("x", "hidden", "dt", "y", "hidden_out")},
            opset_version=17,
            dynamo=False,
        )
    manifest = Manifest(
        name="integrator",
        model=ModelSpec(kind="test_integrator", input_size=F, state_size=H, output_size=O),
        graphs={"step": GraphSpec(file="step.onnx")},
        features=tuple(
            FeatureSpec(name=f"f{i}", source="vector", index=i, mean=float(MEAN[i]), std=float(STD[i])) for i in range(F)
        ),
        outputs=(
            OutputSpec(name="vx", unit="m/s", min=-limit, max=limit, twist_field="linear.x"),
            OutputSpec(name="yaw_rate", unit="rad/s", min=-limit, max=limit, twist_field="angular.z"),
        ),
        dt=DtLimits(min_s=1e-4, max_s=0.5, max_gap_s=2.0),
    )
    write_manifest(folder, manifest)
    return folder


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("integrator"))


@pytest.fixture(params=[True, False], ids=["io_binding", "session_run"])
def engine(request: pytest.FixtureRequest, bundle: Path) -> Engine:
    return Engine(bundle, EngineConfig(io_binding=request.param))


def feed(engine: Engine, raws: list[np.ndarray], stamps_ms: list[int]) -> list:
    return [engine.step(raw, stamp * MS) for raw, stamp in zip(raws, stamps_ms)]


def test_first_message_only_initialises_then_steps_match_reference(engine: Engine) -> None:
    rng = np.random.default_rng(0)
    raws = [rng.normal(size=F).astype(np.float32) for _ in range(50)]
    stamps = np.cumsum(rng.integers(1, 40, size=50)).tolist()
    results = feed(engine, raws, stamps)
    assert results[0].outcome is Outcome.INITIALISED and results[0].output is None
    hidden = np.zeros(H, dtype=np.float32)
    for i in range(1, 50):
        dt_s = (stamps[i] - stamps[i - 1]) / 1000
        expected_y, hidden = reference_step(hidden, raws[i], dt_s)
        assert results[i].outcome is Outcome.STEPPED
        assert results[i].dt_s == pytest.approx(dt_s)
    np.testing.assert_allclose(engine.hidden, hidden, atol=1e-5)
    np.testing.assert_allclose(results[-1].output, expected_y, atol=1e-5)
    assert [r.outcome for r in results].count(Outcome.STEPPED) == 49


def test_duplicate_and_older_stamps_are_dropped_and_counted(engine: Engine) -> None:
    ones = np.ones(F, dtype=np.float32)
    feed(engine, [ones, ones], [100, 110])
    hidden = engine.hidden
    dup, old = feed(engine, [ones * 5, ones * 7], [110, 105])
    assert dup.outcome is Outcome.DUPLICATE and dup.output is None
    assert old.outcome is Outcome.OUT_OF_ORDER and old.output is None
    np.testing.assert_array_equal(engine.hidden, hidden)
    # The next step's Δt is measured from the last accepted stamp (110 ms), not the dropped ones.
    (nxt,) = feed(engine, [ones], [130])
    assert nxt.outcome is Outcome.STEPPED and nxt.dt_s == pytest.approx(0.02)


def test_gap_above_limit_resets_state_and_restarts(engine: Engine) -> None:
    ones = np.ones(F, dtype=np.float32)
    feed(engine, [ones, ones, ones], [0, 100, 200])
    assert np.abs(engine.hidden).sum() > 0
    (gap,) = feed(engine, [ones], [200 + 2001])
    assert gap.outcome is Outcome.GAP_RESET and gap.output is None
    np.testing.assert_array_equal(engine.hidden, np.zeros(H))
    (after,) = feed(engine, [ones], [2201 + 10])
    assert after.outcome is Outcome.STEPPED and after.dt_s == pytest.approx(0.01)


def test_one_bogus_future_stamp_does_not_stall_the_stream(engine: Engine) -> None:
    ones = np.ones(F, dtype=np.float32)
    feed(engine, [ones, ones], [0, 10])
    (future,) = feed(engine, [ones], [10 + 5 * 60 * 1000])  # one message stamped five minutes ahead
    assert future.outcome is Outcome.GAP_RESET
    # The real stream goes on: jumping back by more than the gap restarts, it is not "out of order".
    statuses = [r.outcome for r in feed(engine, [ones] * 3, [20, 30, 40])]
    assert statuses == [Outcome.GAP_RESET, Outcome.STEPPED, Outcome.STEPPED]


def test_dt_between_max_and_gap_is_clamped(engine: Engine) -> None:
    ones = np.ones(F, dtype=np.float32)
    _, step = feed(engine, [ones, ones], [0, 1500])
    assert step.outcome is Outcome.STEPPED and step.dt_s == pytest.approx(0.5)
    assert engine.counters.dt_clamped == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_input_is_rejected_with_state_and_stamp_untouched(engine: Engine, bad: float) -> None:
    ones = np.ones(F, dtype=np.float32)
    feed(engine, [ones, ones], [0, 10])
    hidden = engine.hidden
    (rejected,) = feed(engine, [np.array([1.0, bad, 1.0], dtype=np.float32)], [20])
    assert rejected.outcome is Outcome.NONFINITE_INPUT and rejected.output is None
    np.testing.assert_array_equal(engine.hidden, hidden)
    (nxt,) = feed(engine, [ones], [30])
    assert nxt.dt_s == pytest.approx(0.02), "Δt must span the rejected message"


def test_explicit_reset_zeroes_state_and_reinitialises(engine: Engine) -> None:
    ones = np.ones(F, dtype=np.float32)
    feed(engine, [ones, ones], [0, 10])
    engine.reset()
    np.testing.assert_array_equal(engine.hidden, np.zeros(H))
    (first,) = feed(engine, [ones], [20])
    assert first.outcome is Outcome.INITIALISED
    assert engine.counters.explicit_resets == 1


def test_outputs_are_clamped_to_manifest_limits(tmp_path: Path) -> None:
    engine = Engine(make_bundle(tmp_path / "clamped", scale=1000.0, limit=0.25))
    big = np.full(F, 10.0, dtype=np.float32)
    results = feed(engine, [big] * 5, [0, 100, 200, 300, 400])
    for result in results[1:]:
        assert result.outcome is Outcome.STEPPED
        assert np.all(np.abs(result.output) <= 0.25)
    assert engine.counters.outputs_clamped >= 1


def test_nonfinite_output_resets_state_and_gives_no_output(tmp_path: Path) -> None:
    engine = Engine(make_bundle(tmp_path / "overflow", scale=1e38))
    big = np.full(F, 1e3, dtype=np.float32)
    results = feed(engine, [big, big], [0, 100])
    assert results[1].outcome is Outcome.NONFINITE_OUTPUT and results[1].output is None
    np.testing.assert_array_equal(engine.hidden, np.zeros(H))


def test_engine_config_overrides_gap(bundle: Path) -> None:
    engine = Engine(bundle, EngineConfig(max_gap_s=0.05, max_dt_s=0.05))
    ones = np.ones(F, dtype=np.float32)
    assert [r.outcome for r in feed(engine, [ones] * 3, [0, 40, 100])] == [
        Outcome.INITIALISED,
        Outcome.STEPPED,
        Outcome.GAP_RESET,
    ]
    with pytest.raises(EngineError, match="max_dt_s <= max_gap_s"):
        Engine(bundle, EngineConfig(max_gap_s=-1.0))


def test_unavailable_provider_falls_back_to_cpu(bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(bundle, EngineConfig(session=SessionConfig(providers=("tensorrt", "cuda", "cpu"))))
    assert engine.provider == "CPUExecutionProvider"
    assert "not available" in caplog.text
    with pytest.raises(EngineError, match="Unknown execution provider 'vulkan'"):
        SessionConfig(providers=("vulkan",))


def test_graph_that_disagrees_with_manifest_is_rejected(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "bad")
    text = (folder / "manifest.yaml").read_text().replace("state_size: 4", "state_size: 5")
    (folder / "manifest.yaml").write_text(text)
    with pytest.raises(BundleError, match=r"step.onnx: input 'hidden' axis 1 is 4 but the manifest says 5"):
        Engine(folder)


def test_tampered_graph_fails_hash_check_naming_the_file(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "tampered")
    with (folder / "step.onnx").open("ab") as stream:
        stream.write(b"\0")
    with pytest.raises(BundleError, match=r"step.onnx: SHA-256 is [0-9a-f]+ but field 'files.step.onnx'"):
        Engine(folder)


def test_engine_never_imports_torch(bundle: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from lnn_ros.engine import Engine\n"
        "from lnn_ros.engine.cli import run_info\n"
        f"e = Engine({str(bundle)!r})\n"
        "e.step(np.zeros(3, dtype=np.float32), 0); e.step(np.zeros(3, dtype=np.float32), 10**7)\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
