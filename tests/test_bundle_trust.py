"""The bundle is a trust boundary: each hostile or damaged bundle of issue 12 gives one clear
BundleError (or loads, when it is harmless), never a traceback, a hang or a silent default.

Every case starts from a real exported bundle (tests/bundle_factory.py) and breaks one thing.
"""

from __future__ import annotations

import os
import shutil
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from bundle_factory import FactoryBundle, make_vector_bundle
from onnx import helper

from lnn_ros.bundle import BundleError, Manifest, ManifestError, bundle_digest, load_bundle, sha256_file
from lnn_ros.bundle.store import parse_manifest
from lnn_ros.bundle.strict_yaml import PurePythonStrictLoader, load_strict_yaml
from lnn_ros.cli import main
from lnn_ros.engine import Engine
from lnn_ros.engine.session import check_bundle_graphs


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> FactoryBundle:
    return make_vector_bundle(tmp_path_factory.mktemp("genuine"), inputs=3, outputs=2, window_steps=4)


@pytest.fixture()
def bundle(genuine: FactoryBundle, tmp_path: Path) -> Path:
    """A fresh copy of the genuine bundle to break."""
    return Path(shutil.copytree(genuine.path, tmp_path / "bundle"))


def manifest_of(folder: Path) -> dict[str, Any]:
    data = yaml.safe_load((folder / "manifest.yaml").read_text())
    assert isinstance(data, dict)
    return data


def write_yaml(folder: Path, data: dict[str, Any]) -> None:
    (folder / "manifest.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def edit_manifest(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = manifest_of(folder)
    change(data)
    write_yaml(folder, data)


def rehash(folder: Path) -> None:
    """Re-record the hashes of the graph files (as an attacker who edits the manifest would)."""
    edit_manifest(folder, lambda data: data.update(files={name: sha256_file(folder / name) for name in data["files"]}))


def edit_graph(folder: Path, name: str, change: Callable[[onnx.ModelProto], None], **save: Any) -> None:
    model = onnx.load(str(folder / name))
    change(model)
    onnx.save_model(model, str(folder / name), **save)


def fails(folder: Path, match: str, kind: type[Exception] = BundleError) -> str:
    with pytest.raises(kind, match=match) as error:
        bundle = load_bundle(folder)
        check_bundle_graphs(bundle)
        Engine(bundle)
    return str(error.value)


# ---------------------------------------------------------------------- manifest text
def test_non_utf8_manifest_names_the_byte(bundle: Path) -> None:
    text = (bundle / "manifest.yaml").read_bytes()
    (bundle / "manifest.yaml").write_bytes(text.replace(b"description: ", b"description: caf\xe9 ", 1))
    message = fails(bundle, r"manifest.yaml: is not UTF-8 text: byte 0xe9 at offset \d+ \(line \d+\)", ManifestError)
    assert message.startswith(str(bundle))


def test_utf16_manifest_is_named_as_such(bundle: Path) -> None:
    text = (bundle / "manifest.yaml").read_text(encoding="utf-8")
    (bundle / "manifest.yaml").write_bytes(text.encode("utf-16"))
    fails(bundle, r"manifest.yaml: is UTF-16 text .* save it as UTF-8", ManifestError)
    (bundle / "manifest.yaml").write_bytes(text.encode("utf-16-le"))  # without a byte-order mark
    fails(bundle, r"manifest.yaml: holds a NUL byte .*UTF-16 without a byte-order mark", ManifestError)


def test_utf8_byte_order_mark_is_accepted(bundle: Path) -> None:
    text = (bundle / "manifest.yaml").read_bytes()
    (bundle / "manifest.yaml").write_bytes(b"\xef\xbb\xbf" + text)
    load_bundle(bundle)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_refused_without_recursion_error(bundle: Path, style: str) -> None:
    depth = 100_000 if style == "flow" else 500
    nested = "[" * depth + "]" * depth if style == "flow" else "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + "  " * depth + "x"
    (bundle / "manifest.yaml").write_text(f"model_notes: {nested}\n" if style == "flow" else nested)
    # ours at depth 33, or libyaml's own flow-depth limit when it scans ahead: either way one clear error
    fails(bundle, r"manifest.yaml: (line \d+: nests deeper than 32 levels|is not valid YAML .*exceeded maximum nesting depth)", ManifestError)


@pytest.mark.timeout(20)
def test_alias_bomb_in_a_free_text_field_is_refused_before_it_expands(bundle: Path) -> None:
    lines = ['lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    data = manifest_of(bundle)
    text = yaml.safe_dump(data, sort_keys=False).replace("description:", "description: *l9\nold_description:", 1)
    (bundle / "manifest.yaml").write_text("\n".join(lines) + "\n" + text)
    tracemalloc.start()
    try:
        fails(bundle, r"manifest.yaml: line 1: defines the anchor '&l0'; anchors and aliases are not allowed", ManifestError)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20  # 9**10 strings would be tens of GB


@pytest.mark.timeout(20)
def test_10mb_manifest_is_refused_by_its_size_without_reading_it(bundle: Path) -> None:
    text = (bundle / "manifest.yaml").read_text()
    padding = "# " + "x" * 98 + "\n"
    (bundle / "manifest.yaml").write_text(text + padding * 100_000)  # 10 MB of comments: valid YAML
    tracemalloc.start()
    try:
        fails(bundle, r"the manifest is 10\d{6} bytes, above the limit of 1048576 bytes")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a: !!python/object/apply:os.system ['true']\n", r"line 1: uses the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
        ("a: !!binary aGVsbG8=\n", r"uses the tag 'tag:yaml.org,2002:binary'"),
        ("base: &b {x: 1}\nother:\n  <<: {y: 2}\n", r"defines the anchor '&b'"),
        ("other:\n  <<: {y: 2}\n", r"line 2: uses a merge key '<<'"),
        ("? [a, b]\n: 1\n", r"has a key that is a list or mapping"),
        ("a: 1\n---\nb: 2\n", r"is not valid YAML \(expected a single document"),
        ("a: [1, 2\n", r"is not valid YAML"),
        ("a: 2001-13-45\n", r"has a value that cannot be read \(ValueError"),
        ("- 1\n- 2\n", r"must be a YAML mapping, got list"),
        ("", r"must be a YAML mapping, got NoneType"),
    ],
)
def test_yaml_beyond_plain_data_is_refused(text: str, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        parse_manifest(text.encode())
    with pytest.raises(ManifestError, match=match):  # the same with PyYAML's pure-Python parser (no libyaml)
        Manifest.from_dict(load_strict_yaml(text.encode(), "manifest.yaml", PurePythonStrictLoader))


@pytest.mark.parametrize("loader", [None, PurePythonStrictLoader])
def test_both_parsers_read_a_manifest_alike_and_refuse_depth(genuine: FactoryBundle, loader: Any) -> None:
    data = (genuine.path / "manifest.yaml").read_bytes()
    assert load_strict_yaml(data, "m", loader) == yaml.safe_load(data)
    with pytest.raises(ManifestError, match=r"m: line 33: nests deeper than 32 levels"):
        load_strict_yaml(("a:\n" + "".join(f"{'  ' * i}- \n" for i in range(1, 40))).encode(), "m", loader)


def test_duplicate_keys_are_an_error_naming_both_lines(bundle: Path) -> None:
    text = (bundle / "manifest.yaml").read_text()
    (bundle / "manifest.yaml").write_text(text + "name: another_policy\n")
    fails(bundle, r"line \d+: repeats the key 'name' of line \d+ in the same mapping \(YAML would silently keep the last value\)", ManifestError)


# ---------------------------------------------------------------------- schema
def test_typo_in_an_optional_key_is_an_error_with_did_you_mean(bundle: Path) -> None:
    def typo(data: dict[str, Any]) -> None:
        feature = data["inputs"]["features"][1]
        feature["stdev"] = feature.pop("std")

    edit_manifest(bundle, typo)
    fails(bundle, r"manifest.yaml: field 'inputs.features\[1\].stdev' is not a known field; did you mean 'std'\?", ManifestError)


def test_unknown_top_level_key_lists_the_allowed_ones(bundle: Path) -> None:
    edit_manifest(bundle, lambda data: data.update(zzz=1))
    fails(bundle, r"field 'zzz' is not a known field; allowed keys are \['description', 'dt',", ManifestError)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["inputs"]["features"][0].update(std=1e-45), r"'inputs.features\[0\].std' is 1e-45, below 1e-06"),
        (lambda d: d["inputs"]["features"][0].update(std=-1.0), r"'inputs.features\[0\].std' must be > 0, got -1.0"),
        (lambda d: d["inputs"]["features"][0].update(mean=1e39), r"'inputs.features\[0\].mean' must be a finite number \(float32\), got 1e\+39"),
        (lambda d: d["inputs"]["features"][0].update(mean=float("nan")), r"'inputs.features\[0\].mean' must be a finite number \(float32\), got nan"),
        (lambda d: d["outputs"][1].update(max="fast"), r"manifest.yaml: field 'outputs\[1\].max' must be a finite number, got 'fast'."),
        (lambda d: d["outputs"][0].update(min=5.0, max=5.0), r"'outputs\[0\]' has min equal to max \(5.0\); the limits must leave a range"),
        (lambda d: d["outputs"][0].update(max=float("inf")), r"'outputs\[0\].max' must be a finite number \(float32\), got inf"),
        (lambda d: d["model"].update(state_size=10**12), r"'model.state_size' must be an integer in \[1, 1048576\]"),
        (lambda d: d["files"].update({"step.onnx": "ab"}), r"'files.step.onnx' must be a SHA-256 as 64 lowercase hex digits, got 'ab'"),
        (lambda d: d["files"].update({"extra.bin": "a" * 64}), r"'files.extra.bin' names a file no graph uses"),
        (lambda d: d.update(description=["a", "list"]), r"field 'description' must be text, got \['a', 'list'\]"),
    ],
)
def test_numeric_and_type_sanity(bundle: Path, change: Callable[[dict[str, Any]], None], match: str) -> None:
    edit_manifest(bundle, change)
    fails(bundle, match, ManifestError)


# ---------------------------------------------------------------------- where graphs come from
@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("/etc/step.onnx", r"'graphs.step.file' is '/etc/step.onnx': a graph must be named relative to the bundle folder"),
        ("../elsewhere/step.onnx", r"'graphs.step.file' is '../elsewhere/step.onnx': a graph must be a file inside the bundle folder"),
        ("sub/../step.onnx", r"no '..', '.', empty parts"),
        ("C:\\models\\step.onnx", r"no absolute path"),
    ],
)
def test_absolute_and_parent_graph_paths_are_refused(bundle: Path, name: str, match: str) -> None:
    def point(data: dict[str, Any]) -> None:
        data["graphs"]["step"]["file"] = name
        data["files"] = {name: data["files"].pop("step.onnx"), "window.onnx": data["files"]["window.onnx"]}

    edit_manifest(bundle, point)
    fails(bundle, match, ManifestError)


def test_symlink_out_of_the_folder_is_refused_even_with_the_right_hash(bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.onnx"
    shutil.move(bundle / "step.onnx", outside)
    (bundle / "step.onnx").symlink_to(outside)
    fails(bundle, r"step.onnx: resolves to .*outside.onnx', outside the bundle folder")


def test_symlinks_inside_the_folder_and_a_symlinked_bundle_load(bundle: Path, tmp_path: Path) -> None:
    (bundle / "graphs").mkdir()
    shutil.move(bundle / "step.onnx", bundle / "graphs" / "step.onnx")
    (bundle / "step.onnx").symlink_to("graphs/step.onnx")
    load_bundle(bundle)
    # colcon build --symlink-install: every installed file is a symlink into the source bundle
    installed = tmp_path / "install"
    installed.mkdir()
    for path in bundle.iterdir():
        if path.is_file():
            (installed / path.name).symlink_to(path.resolve())
    loaded = load_bundle(installed)
    assert loaded.root == bundle.resolve() and loaded.digest == load_bundle(bundle).digest


@pytest.mark.timeout(20)
def test_fifo_or_folder_instead_of_a_graph_is_refused_without_blocking(bundle: Path) -> None:
    (bundle / "step.onnx").unlink()
    os.mkfifo(bundle / "step.onnx")
    fails(bundle, r"step.onnx: the graph is not a regular file")
    (bundle / "step.onnx").unlink()
    (bundle / "step.onnx").mkdir()
    fails(bundle, r"step.onnx: the graph is not a regular file")


def test_missing_graph_is_named(bundle: Path) -> None:
    (bundle / "window.onnx").unlink()
    fails(bundle, r"graph file 'window.onnx' is missing from the bundle folder")


# ---------------------------------------------------------------------- graph content
def test_external_data_is_refused_even_when_hashes_match(bundle: Path) -> None:
    edit_graph(bundle, "step.onnx", lambda m: None, save_as_external_data=True, all_tensors_to_one_file=True,
               location="weights.bin", size_threshold=0)
    rehash(bundle)  # the .onnx hash now matches; the weights live in weights.bin, which no hash covers
    message = fails(bundle, r"step.onnx: initializer .* keeps its data in the external file 'weights.bin'; external data is not allowed")
    assert "escape the bundle's hashes" in message


def test_opset_21_is_refused(bundle: Path) -> None:
    def opset21(model: onnx.ModelProto) -> None:
        for entry in model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                entry.version = 21

    edit_graph(bundle, "step.onnx", opset21)
    rehash(bundle)
    fails(bundle, r"step.onnx: uses ONNX opset 21, but bundles are limited to opset 17")


def test_if_node_is_refused(bundle: Path) -> None:
    def add_if(model: onnx.ModelProto) -> None:
        branch = helper.make_graph(
            [helper.make_node("Identity", ["dt"], ["branch_out"])], "branch", [],
            [helper.make_tensor_value_info("branch_out", onnx.TensorProto.FLOAT, None)],
        )
        model.graph.node.append(helper.make_node("Constant", [], ["cond"], value=helper.make_tensor("c", onnx.TensorProto.BOOL, [], [True])))
        model.graph.node.append(helper.make_node("If", ["cond"], ["unused"], then_branch=branch, else_branch=branch))

    edit_graph(bundle, "window.onnx", add_if)
    rehash(bundle)
    fails(bundle, r"window.onnx: node \d+ \(If\) is a 'If' node; control flow \(Loop, Scan, If\) is not allowed")


def test_custom_operator_is_refused(bundle: Path) -> None:
    def add_custom(model: onnx.ModelProto) -> None:
        model.graph.node.append(helper.make_node("FusedGemm", ["x"], ["unused"], domain="com.microsoft"))
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))

    edit_graph(bundle, "step.onnx", add_custom)
    rehash(bundle)
    fails(bundle, r"uses operator 'FusedGemm' of domain 'com.microsoft'; only standard ONNX operators are allowed")


def swapped_in(bundle: Path, tmp_path: Path, symbolic: bool) -> None:
    """Put the step graph of a 5-input bundle into this 3-input bundle, its non-batch axes made symbolic."""
    other = make_vector_bundle(tmp_path / "other", inputs=5, outputs=2, window_steps=None, seed=3)

    def relabel(model: onnx.ModelProto) -> None:
        for value in [*model.graph.input, *model.graph.output]:
            for dim in value.type.tensor_type.shape.dim[1:]:
                if symbolic:
                    dim.dim_param = f"{value.name}_size"
                elif value.name == "x":
                    dim.dim_value = 3  # lie about the input width

    shutil.copy(other.path / "step.onnx", bundle / "step.onnx")
    edit_graph(bundle, "step.onnx", relabel)
    rehash(bundle)


def test_swapped_graph_with_symbolic_axes_fails_the_signature_check(bundle: Path, tmp_path: Path) -> None:
    swapped_in(bundle, tmp_path, symbolic=True)
    fails(bundle, r"step.onnx: input '(x|hidden|dt)' axis 1 is symbolic \('\w+_size'\) but must be exactly \d+")


def test_swapped_graph_that_lies_about_its_shapes_fails_its_first_run(bundle: Path, tmp_path: Path) -> None:
    swapped_in(bundle, tmp_path, symbolic=False)
    fails(bundle, r"step.onnx: (the graph failed to run on inputs x \[1, 3\]|onnxruntime could not load the graph)")


def test_random_bytes_in_the_window_graph_are_caught_by_info(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (bundle / "window.onnx").write_bytes(np.random.default_rng(0).bytes(5000))
    rehash(bundle)  # the attacker re-hashed the random bytes
    assert main(["info", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert "window.onnx" in err and "Traceback" not in err and err.count("\n") == 1


def test_info_loads_and_runs_the_window_graph(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A window graph onnxruntime loads but that cannot run with the promised T is caught by info."""
    edit_manifest(bundle, lambda d: d["graphs"]["window"].update(steps=5))  # the graph was exported with T=4
    rehash(bundle)
    assert main(["info", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert "window.onnx" in err and "axis 1 is 4 but the manifest says 5" in err


# ---------------------------------------------------------------------- digest
def test_digest_covers_the_bytes_loaded_and_the_manifest(genuine: FactoryBundle, bundle: Path) -> None:
    original = load_bundle(genuine.path)
    files = sorted(p.name for p in genuine.path.iterdir() if p.is_file())
    assert files == ["manifest.yaml", "step.onnx", "window.onnx"]
    assert original.digest == bundle_digest(original.file_hashes) == load_bundle(bundle).digest

    def scale_weights(model: onnx.ModelProto) -> None:
        tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        values = onnx.numpy_helper.to_array(tensor) * 3.0
        tensor.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), tensor.name))

    edit_graph(bundle, "step.onnx", scale_weights)
    with pytest.raises(BundleError, match=r"step.onnx: SHA-256 is [0-9a-f]{64} but field 'files.step.onnx' says"):
        load_bundle(bundle)
    tampered = load_bundle(bundle, verify_hashes=False)  # verify_bundle_hashes:=false
    assert tampered.digest != original.digest
    assert tampered.file_hashes["step.onnx"] != original.manifest.files["step.onnx"]
    assert tampered.file_hashes["manifest.yaml"] == original.file_hashes["manifest.yaml"]
    # what was hashed is what runs: the tampered weights give other outputs
    features = np.array([0.5, -0.2, 1.0], dtype=np.float32)
    outputs = []
    for loaded in (original, tampered):
        engine = Engine(loaded)
        engine.step(features, 0)
        outputs.append(engine.step(features, 10_000_000).output.copy())
    assert not np.allclose(outputs[0], outputs[1])
    # the manifest is covered too: wider limits, same graphs
    edit_manifest(bundle, lambda d: d["outputs"][0].update(max=9.0))
    shutil.copy(genuine.path / "step.onnx", bundle / "step.onnx")
    widened = load_bundle(bundle)
    assert widened.file_hashes["step.onnx"] == original.file_hashes["step.onnx"]
    assert widened.digest != original.digest


def test_digest_equals_sha256sum_of_the_files(genuine: FactoryBundle) -> None:
    import hashlib

    listing = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(genuine.path.iterdir()) if p.is_file()
    )
    assert load_bundle(genuine.path).digest == hashlib.sha256(listing.encode()).hexdigest()


def test_onnx_missing_fails_closed(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    fails(bundle, r"Checking a bundle's graphs needs the 'onnx' package")


def test_every_entry_point_reports_one_line(bundle: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (bundle / "manifest.yaml").write_bytes(b"\xff\xfen\x00a\x00")
    for args in (["info", str(bundle)], ["replay", "nope.mcap", "--model", str(bundle), "--out", str(tmp_path / "o")]):
        code = main(args)
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err and err.count("\n") == 1, err
    with pytest.raises(ManifestError, match="is UTF-16 text"):
        Engine(bundle)
