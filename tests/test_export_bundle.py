"""export_bundle: the folder it writes loads, hashes protect it, and the Engine reproduces PyTorch."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from bundle_factory import FactoryBundle, make_imu_camera_bundle, make_vector_bundle

from lnn_ros.bundle import DtLimits, FeatureSpec, OutputSpec, load_bundle
from lnn_ros.cells import build_cell
from lnn_ros.engine import Engine, EngineConfig, Outcome
from lnn_ros.errors import BundleError
from lnn_ros.onnx_export import ExportError, export_bundle, export_bundle_with_report

TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def vector_bundle(tmp_path_factory: pytest.TempPathFactory) -> FactoryBundle:
    return make_vector_bundle(tmp_path_factory.mktemp("vector") / "bundle", "cfc", inputs=3, outputs=2)


@pytest.fixture(scope="module")
def camera_bundle(tmp_path_factory: pytest.TempPathFactory) -> FactoryBundle:
    return make_imu_camera_bundle(tmp_path_factory.mktemp("camera") / "bundle")


def irregular_stamps_ns(count: int, seed: int) -> np.ndarray:
    gaps_s = np.exp(np.random.default_rng(seed).uniform(np.log(1e-4), np.log(0.5), count - 1))
    return np.concatenate([[5 * 10**9], 5 * 10**9 + np.cumsum(np.round(gaps_s * 1e9))]).astype(np.int64)


def test_manifest_describes_the_export(vector_bundle: FactoryBundle) -> None:
    manifest = load_bundle(vector_bundle.path).manifest
    assert manifest.opset == 17
    assert manifest.model.kind == "cfc" and manifest.model.config == vector_bundle.cell.config()
    assert {role: spec.file for role, spec in manifest.graphs.items()} == {"step": "step.onnx", "window": "window.onnx"}
    assert manifest.graphs["window"].steps == 8
    assert set(manifest.producer) == {"lnn_ros", "torch", "onnx", "onnxruntime"}
    assert [f.std for f in manifest.features] == [1.0, 2.0, 3.0]
    assert sorted(manifest.files) == ["step.onnx", "window.onnx"]
    assert not [p.name for p in vector_bundle.path.iterdir() if p.name.startswith(".export-")]  # staging removed


def test_engine_equals_torch_step_by_step(vector_bundle: FactoryBundle) -> None:
    """Raw features and ns stamps into the Engine; the same normalisation and Δt into the cell."""
    manifest = load_bundle(vector_bundle.path).manifest
    engine = Engine(vector_bundle.path, EngineConfig(clamp_outputs=False))
    mean = np.array([f.mean for f in manifest.features], dtype=np.float32)
    std = np.array([f.std for f in manifest.features], dtype=np.float32)
    stamps_ns = irregular_stamps_ns(150, seed=1)
    raw = (np.random.default_rng(2).standard_normal((len(stamps_ns), 3)) * std + mean).astype(np.float32)
    cell, hidden, compared = vector_bundle.cell.eval(), vector_bundle.cell.initial_state(1), 0
    for i, stamp_ns in enumerate(stamps_ns):
        result = engine.step(raw[i], int(stamp_ns))
        if i == 0:
            assert result.outcome is Outcome.INITIALISED and result.output is None
            continue
        assert result.outcome is Outcome.STEPPED
        dt_s = (stamps_ns[i] - stamps_ns[i - 1]) / 1e9
        x = torch.from_numpy((raw[i] - mean) / std)[None]
        with torch.no_grad():
            y, hidden = cell(x, hidden, torch.tensor([[dt_s]], dtype=torch.float32))
        assert result.output is not None
        np.testing.assert_allclose(result.output, y[0].numpy(), rtol=0, atol=TOLERANCE)
        compared += 1
    assert compared == len(stamps_ns) - 1
    np.testing.assert_allclose(engine.hidden, hidden[0].numpy(), rtol=0, atol=TOLERANCE)


def test_camera_bundle_encoder_in_engine_equals_torch(camera_bundle: FactoryBundle) -> None:
    manifest = load_bundle(camera_bundle.path).manifest
    assert manifest.camera is not None and "encoder" in manifest.graphs
    engine = Engine(camera_bundle.path)
    image = np.random.default_rng(0).standard_normal((1, 3, 24, 32)).astype(np.float32)
    assert camera_bundle.encoder is not None
    with torch.no_grad():
        expected = camera_bundle.encoder.eval()(torch.from_numpy(image))[0].numpy()
    np.testing.assert_allclose(engine.encode(image), expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("victim", ["step.onnx", "window.onnx"])
def test_tampered_graph_is_refused_naming_the_file(vector_bundle: FactoryBundle, tmp_path: Path, victim: str) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in vector_bundle.path.iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    load_bundle(copy)  # intact copy loads
    data = bytearray((copy / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / victim).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{victim}: SHA-256 is [0-9a-f]{{64}} but field 'files.{victim}'"):
        load_bundle(copy)


def test_report_has_parity_and_engine_figures(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cell = build_cell({"kind": "ltc", "input_size": 2, "wiring": 6, "ode_unfolds": 2})
    result = export_bundle_with_report(
        cell,
        tmp_path / "ltc",
        name="ltc_test",
        features=[FeatureSpec(f"v{i}", "vector", index=i) for i in range(2)],
        outputs=[OutputSpec(f"y{i}", "", -1.0, 1.0) for i in range(6)],
        dt=DtLimits(1e-4, 1.0, 2.0),
        window_steps=None,
    )
    assert result.parity.passed and result.parity.window_error is None
    assert result.engine_error <= TOLERANCE
    assert sorted(result.manifest.graphs) == ["step"]


def test_reexport_without_window_removes_the_stale_window_graph(tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    make_vector_bundle(folder, "mlp", window_steps=4)
    (folder / "notes.txt").write_text("kept")
    assert (folder / "window.onnx").is_file()
    make_vector_bundle(folder, "mlp", window_steps=None)
    assert not (folder / "window.onnx").exists()
    assert (folder / "notes.txt").read_text() == "kept"
    assert sorted(load_bundle(folder).manifest.files) == ["step.onnx"]


def test_inconsistent_description_fails_before_writing(tmp_path: Path) -> None:
    cell = build_cell({"kind": "mlp", "input_size": 3, "output_size": 2})
    features = [FeatureSpec(f"v{i}", "vector", index=i) for i in range(2)]  # one short
    with pytest.raises(ExportError, match="lists 2 features but model.input_size is 3"):
        export_bundle(cell, tmp_path / "b", name="b", features=features, outputs=[OutputSpec("y0", "", -1, 1), OutputSpec("y1", "", -1, 1)], dt=DtLimits())
    assert not (tmp_path / "b").exists()
    with pytest.raises(ExportError, match="need both an encoder and a CameraSpec"):
        export_bundle(
            cell,
            tmp_path / "b",
            name="b",
            features=[dataclasses.replace(features[0], name="v9", index=2), *features],
            outputs=[OutputSpec("y0", "", -1, 1), OutputSpec("y1", "", -1, 1)],
            dt=DtLimits(),
            encoder=torch.nn.Flatten(),
        )


def test_manifest_yaml_is_plain_yaml(vector_bundle: FactoryBundle) -> None:
    data = yaml.safe_load((vector_bundle.path / "manifest.yaml").read_text())
    assert data["producer"]["torch"] == str(torch.__version__)
    assert data["dt"] == {"unit": "s", "min_s": 1e-4, "max_s": 0.5, "max_gap_s": 1.0}


def test_failed_parity_leaves_the_previous_bundle_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lnn_ros.onnx_export.bundle_writer as writer
    from lnn_ros.onnx_export import ParityError

    folder = tmp_path / "bundle"
    first = make_vector_bundle(folder, "mlp", window_steps=None)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real_verify = writer.verify_graphs

    def broken_verify(*args: object, **kwargs: object) -> object:
        return dataclasses.replace(real_verify(*args, **kwargs), step_one_step_error=1.0)

    monkeypatch.setattr(writer, "verify_graphs", broken_verify)
    with pytest.raises(ParityError, match=r"step_one_step 1\.000e\+00 > 1\.0e-05"):
        make_vector_bundle(folder, "cfc", window_steps=4, seed=1)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no staging left, nothing replaced
    assert load_bundle(folder).manifest.model.kind == first.manifest.model.kind == "mlp"


SHIPPED_CFC = Path(__file__).resolve().parents[1] / "models" / "drone_cfc"


@pytest.mark.parametrize("which", ["exported_now", "shipped_with_dt_guard"])
def test_engine_reads_x_and_hidden_from_one_buffer_and_equals_the_bundles_graph(
    vector_bundle: FactoryBundle, which: str
) -> None:
    """The CfC step graph starts with Concat(x, hidden): the engine binds both as one buffer
    (lnn_ros.engine.fused_input; for a graph still ending in Where(Δt > 0, ...), like the shipped
    ones, after folding that guard away). Outputs and state are bit-equal to the bundle's own
    graph run without io_binding, through gaps, drops, set_hidden and reset."""
    path = vector_bundle.path if which == "exported_now" else SHIPPED_CFC
    fused, plain = Engine(path), Engine(path, EngineConfig(io_binding=False))
    assert fused.fused_input and not plain.fused_input
    assert fused.fused_output is (which == "exported_now")  # [hidden_out, y] as one output: the new export only
    stamps_ns = irregular_stamps_ns(120, seed=3)
    stamps_ns[40] = stamps_ns[39]  # a duplicate
    stamps_ns[80:] += 20 * 10**9  # a gap above max_gap_s: reset
    features = fused.manifest.model.input_size
    raw = np.random.default_rng(4).standard_normal((len(stamps_ns), features)).astype(np.float32)
    for i, stamp_ns in enumerate(stamps_ns):
        if i == 60:
            state = np.random.default_rng(5).standard_normal(fused.hidden.shape).astype(np.float32)
            fused.set_hidden(state)
            plain.set_hidden(state)
        if i == 100:
            fused.reset()
            plain.reset()
        a, b = fused.step(raw[i], int(stamp_ns)), plain.step(raw[i], int(stamp_ns))
        assert a.outcome is b.outcome and a.dt_s == b.dt_s, i
        if a.output is not None:
            np.testing.assert_array_equal(a.output, b.output, err_msg=str(i))
        np.testing.assert_array_equal(fused.hidden, plain.hidden, err_msg=str(i))


def test_graphs_without_the_concat_pattern_are_used_as_they_are(vector_bundle: FactoryBundle) -> None:
    import onnx

    from lnn_ros.engine.fused_input import fused_input_graph

    data = load_bundle(vector_bundle.path).graph_data("step")
    rewritten = fused_input_graph(data)
    assert rewritten is not None
    assert [i.name for i in onnx.load_from_string(rewritten).graph.input] == ["xh", "dt"]
    model = onnx.load_from_string(data)
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    concat.input[:] = ["hidden", "x"]  # another order: another function of the buffer
    assert fused_input_graph(model.SerializeToString()) is None


def test_the_final_split_of_hidden_and_y_becomes_one_output_only_in_that_order(vector_bundle: FactoryBundle) -> None:
    """The exported CfC step graph ends in Split([h', y]) -> (hidden_out, y): the rewrite writes
    [h', y] as one output; a graph whose Split gives (y, hidden_out) keeps its two outputs."""
    import onnx

    from lnn_ros.engine.fused_input import FUSED_OUTPUT, fused_input_graph

    data = load_bundle(vector_bundle.path).graph_data("step")
    rewritten = fused_input_graph(data)
    assert rewritten is not None
    graph = onnx.load_from_string(rewritten).graph
    assert [o.name for o in graph.output] == [FUSED_OUTPUT] and "Split" not in [n.op_type for n in graph.node]
    model = onnx.load_from_string(data)
    split = next(n for n in model.graph.node if n.op_type == "Split")
    split.output[:] = ["y", "hidden_out"]  # another order: [y, h'] is not the buffer's [hidden | y]
    rewritten = fused_input_graph(model.SerializeToString())
    assert rewritten is not None  # the input side still applies
    assert sorted(o.name for o in onnx.load_from_string(rewritten).graph.output) == ["hidden_out", "y"]

