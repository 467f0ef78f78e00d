"""Property-based fuzzing of the bundle loader (Hypothesis).

Whatever manifest or graph file is generated, loading gives a working bundle (``load_bundle``
then ``Engine``) or one :class:`BundleError`: never another exception, never a hang (each
example has a deadline, the module a pytest timeout). Memory stays bounded because the loader
refuses large files before reading them and YAML aliases before expanding them.

Each property runs 200 examples (150 for those that start onnxruntime sessions), derandomised
so CI is reproducible; run more with
``LNN_FUZZ_EXAMPLES=5000 ./run.sh test -q tests/test_bundle_fuzz.py``.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import onnx
import pytest
import yaml
from bundle_factory import make_vector_bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lnn_ros.bundle import Bundle, BundleError, load_bundle
from lnn_ros.bundle.store import parse_manifest
from lnn_ros.engine import Engine

EXAMPLES = int(os.environ.get("LNN_FUZZ_EXAMPLES", "200"))
pytestmark = pytest.mark.timeout(max(120, EXAMPLES // 2))  # a hang guard, not a speed check

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Properties that start onnxruntime sessions take ~50-90 ms an example: fewer keep the module under a minute.
FUZZ_SESSIONS = settings(FUZZ, max_examples=max(1, EXAMPLES * 3 // 4))
MANIFEST_KEYS = [
    "schema_version", "name", "description", "model", "graphs", "inputs", "outputs", "dt", "opset", "producer",
    "files", "kind", "input_size", "state_size", "output_size", "config", "step", "window", "encoder", "file",
    "steps", "features", "camera", "source", "field", "index", "unit", "mean", "std", "min", "max", "twist_field",
    "min_s", "max_s", "max_gap_s", "width", "height", "encoding", "embedding_size", "accepted_encodings",
]


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_vector_bundle(tmp_path_factory.mktemp("genuine"), inputs=3, outputs=2, window_steps=4).path


@pytest.fixture(scope="module")
def work(genuine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the genuine bundle that each example overwrites (restored by :func:`restore`)."""
    return Path(shutil.copytree(genuine, tmp_path_factory.mktemp("work") / "bundle"))


def restore(work: Path, genuine: Path) -> None:
    for path in genuine.iterdir():
        shutil.copy(path, work / path.name)


def load_or_refuse(folder: Path) -> Bundle | None:
    """The property: a loaded bundle whose engine starts, or one BundleError."""
    try:
        bundle = load_bundle(folder)
        Engine(bundle)
        return bundle
    except BundleError:
        return None


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(MANIFEST_KEYS)
)
trees = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(MANIFEST_KEYS) | st.text(max_size=8), children, max_size=6),
    max_leaves=40,
)


# ---------------------------------------------------------------------- manifests
@FUZZ
@given(tree=trees)
def test_random_yaml_trees(tree: Any) -> None:
    data = yaml.safe_dump(tree, allow_unicode=True).encode()
    try:
        parse_manifest(data)
    except BundleError:
        pass


@FUZZ
@given(data=st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_random_manifest_bytes(data: bytes) -> None:
    try:
        parse_manifest(data)
    except BundleError:
        pass


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@FUZZ_SESSIONS
@given(data=st.data())
def test_mutations_of_a_valid_manifest(genuine: Path, work: Path, data: st.DataObject) -> None:
    restore(work, genuine)
    manifest = yaml.safe_load((genuine / "manifest.yaml").read_text())
    mutated = copy.deepcopy(manifest)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(_paths(mutated)[1:]), label="path")
        parent: Any = mutated
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = data.draw(st.sampled_from(["replace", "delete", "rename", "insert"]), label="action")
        if action == "replace":
            parent[key] = data.draw(trees, label="value")
        elif action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(MANIFEST_KEYS) | st.text(max_size=8), label="new key")] = parent.pop(key)
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(MANIFEST_KEYS), label="inserted key")] = data.draw(trees, label="inserted")
        else:
            parent.insert(key, data.draw(trees, label="inserted"))
    (work / "manifest.yaml").write_text(yaml.safe_dump(mutated, sort_keys=False), encoding="utf-8")
    load_or_refuse(work)


@FUZZ
@given(data=st.data())
def test_byte_mutations_of_a_valid_manifest(genuine: Path, data: st.DataObject) -> None:
    text = bytearray((genuine / "manifest.yaml").read_bytes())
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(text)), label="offset")
        edit = data.draw(st.sampled_from(["flip", "insert", "delete"]), label="edit")
        if edit == "flip" and at < len(text):
            text[at] ^= data.draw(st.integers(1, 255), label="mask")
        elif edit == "insert":
            text[at:at] = data.draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"&a ", b"*a", b"!!set ", b"<<: ", b"[", b"\n  "]))
        else:
            del text[at : at + data.draw(st.integers(1, 16), label="length")]
    try:
        parse_manifest(bytes(text))
    except BundleError:
        pass


# ---------------------------------------------------------------------- graph files
def install_graph(work: Path, genuine: Path, data: bytes, name: str = "step.onnx") -> None:
    """Write ``data`` as graph ``name`` and re-record its hash, so the checks behind the hash are fuzzed."""
    restore(work, genuine)
    (work / name).write_bytes(data)
    manifest = yaml.safe_load((genuine / "manifest.yaml").read_text())
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    (work / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")


@FUZZ_SESSIONS
@given(data=st.binary(max_size=4000), name=st.sampled_from(["step.onnx", "window.onnx"]))
def test_random_graph_bytes(genuine: Path, work: Path, data: bytes, name: str) -> None:
    install_graph(work, genuine, data, name)
    assert load_or_refuse(work) is None  # random bytes are never a working graph


@FUZZ_SESSIONS
@given(data=st.data())
def test_truncated_and_flipped_graphs(genuine: Path, work: Path, data: st.DataObject) -> None:
    graph = bytearray((genuine / "step.onnx").read_bytes())
    if data.draw(st.booleans(), label="truncate"):
        graph = graph[: data.draw(st.integers(0, len(graph) - 1), label="length")]
    for _ in range(data.draw(st.integers(0, 8), label="flips")):
        if graph:
            graph[data.draw(st.integers(0, len(graph) - 1), label="offset")] ^= data.draw(st.integers(1, 255), label="mask")
    install_graph(work, genuine, bytes(graph))
    load_or_refuse(work)


OP_TYPES = ["Add", "Mul", "Gemm", "Tanh", "If", "Loop", "Scan", "Identity", "Reshape", "NotAnOp", "Softmax", ""]


@FUZZ_SESSIONS
@given(data=st.data())
def test_mutated_onnx_protos(genuine: Path, work: Path, data: st.DataObject) -> None:
    model = onnx.load(str(genuine / "step.onnx"))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        kind = data.draw(st.sampled_from(["op", "opset", "dim", "drop", "rename", "dtype", "domain", "external"]), label="kind")
        nodes = model.graph.node
        values = [*model.graph.input, *model.graph.output]
        if kind == "op" and nodes:
            nodes[data.draw(st.integers(0, len(nodes) - 1))].op_type = data.draw(st.sampled_from(OP_TYPES))
        elif kind == "opset":
            model.opset_import[0].version = data.draw(st.integers(-5, 30))
        elif kind == "dim":
            value = data.draw(st.sampled_from(values))
            dims = value.type.tensor_type.shape.dim
            dim = dims[data.draw(st.integers(0, len(dims) - 1))]
            if data.draw(st.booleans()):
                dim.dim_param = data.draw(st.text(min_size=1, max_size=4))
            else:
                dim.dim_value = data.draw(st.integers(0, 10**6))
        elif kind == "drop" and nodes:
            del nodes[data.draw(st.integers(0, len(nodes) - 1))]
        elif kind == "rename":
            data.draw(st.sampled_from(values)).name = data.draw(st.sampled_from(["x", "y", "dt", "hidden", "zz"]))
        elif kind == "dtype":
            data.draw(st.sampled_from(values)).type.tensor_type.elem_type = data.draw(st.integers(0, 16))
        elif kind == "domain" and nodes:
            nodes[data.draw(st.integers(0, len(nodes) - 1))].domain = data.draw(st.sampled_from(["com.microsoft", "x", "ai.onnx"]))
        elif kind == "external" and model.graph.initializer:
            tensor = model.graph.initializer[data.draw(st.integers(0, len(model.graph.initializer) - 1))]
            tensor.data_location = onnx.TensorProto.EXTERNAL
            entry = tensor.external_data.add()
            entry.key, entry.value = "location", data.draw(st.sampled_from(["w.bin", "/etc/passwd", "../x"]))
    install_graph(work, genuine, model.SerializeToString())
    load_or_refuse(work)
