"""Reading and writing bundle folders: hashes, manifest file, graph input/output checks."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from lnn_ros.bundle.manifest import MANIFEST_NAME, Manifest, ManifestError
from lnn_ros.errors import BundleError

# Symbolic dimensions are written as None: any size is accepted there.
Shape = tuple[int | None, ...]


class _ValueInfo(Protocol):  # what onnxruntime's NodeArg offers
    name: str
    type: str
    shape: Sequence[Any]


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A bundle folder whose manifest was read and whose files were hash-checked."""

    path: Path
    manifest: Manifest

    def graph_path(self, role: str) -> Path:
        spec = self.manifest.graphs.get(role)
        if spec is None:
            raise BundleError(f"Bundle {str(self.path)!r} has no {role!r} graph; it has {sorted(self.manifest.graphs)}.")
        return self.path / spec.file

    @property
    def digest(self) -> str:
        """SHA-256 over the manifest's file hashes: one short id for the whole bundle."""
        joined = "".join(f"{name}:{h};" for name, h in sorted(self.manifest.files.items()))
        return hashlib.sha256(joined.encode()).hexdigest()


def load_bundle(path: str | Path, *, verify_hashes: bool = True) -> Bundle:
    """Read ``path/manifest.yaml`` and check that every graph file exists and matches its hash.

    Raises:
        BundleError: naming the folder, file and field that are wrong.
    """
    folder = Path(path)
    manifest_path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise BundleError(f"Bundle folder {str(folder)!r} does not exist; pass the folder that holds {MANIFEST_NAME}.")
    if not manifest_path.is_file():
        raise BundleError(f"Bundle folder {str(folder)!r} has no {MANIFEST_NAME}; is it an exported bundle?")
    try:
        data = yaml.safe_load(manifest_path.read_text())
    except yaml.YAMLError as exc:
        raise BundleError(f"{manifest_path}: is not valid YAML ({exc}).") from None
    try:
        manifest = Manifest.from_dict(data)
    except ManifestError as exc:
        raise BundleError(f"{folder}/{exc}") from None
    for role, spec in manifest.graphs.items():
        if spec.file not in manifest.files:
            raise BundleError(f"{manifest_path}: field 'files' has no SHA-256 for graph {role!r} file {spec.file!r}.")
    for name, expected in manifest.files.items():
        file_path = folder / name
        if not file_path.is_file():
            raise BundleError(f"{manifest_path}: file {name!r} listed in 'files' is missing from the bundle folder.")
        if verify_hashes:
            actual = sha256_file(file_path)
            if actual != expected:
                raise BundleError(
                    f"{file_path}: SHA-256 is {actual} but field 'files.{name}' says {expected}; "
                    "the file was changed after export. Re-export the bundle."
                )
    return Bundle(path=folder, manifest=manifest)


def write_manifest(folder: str | Path, manifest: Manifest) -> Manifest:
    """Hash every graph file of ``manifest`` in ``folder`` and write ``manifest.yaml``.

    Returns the manifest with its ``files`` field filled in.
    """
    folder = Path(folder)
    files = {spec.file: sha256_file(folder / spec.file) for spec in manifest.graphs.values()}
    complete = dataclasses.replace(manifest, files=files)
    text = yaml.safe_dump(complete.to_dict(), sort_keys=False, default_flow_style=None)
    (folder / MANIFEST_NAME).write_text(text)
    return complete


def expected_io(manifest: Manifest, role: str) -> tuple[dict[str, Shape], dict[str, Shape]]:
    """The input and output names and shapes the graph ``role`` must have (None = any size)."""
    m = manifest.model
    if role == "step":
        return (
            {"x": (None, m.input_size), "hidden": (None, m.state_size), "dt": (None, 1)},
            {"y": (None, m.output_size), "hidden_out": (None, m.state_size)},
        )
    if role == "window":
        steps = manifest.graphs["window"].steps
        return (
            {"x": (None, steps, m.input_size), "hidden": (None, m.state_size), "dt": (None, steps, 1)},
            {"y": (None, steps, m.output_size), "hidden_out": (None, m.state_size)},
        )
    if role == "encoder" and manifest.camera is not None:
        cam = manifest.camera
        return (
            {"image": (None, cam.channels, cam.height, cam.width)},
            {"embedding": (None, cam.embedding_size)},
        )
    raise BundleError(f"No input/output contract for graph role {role!r}.")


def check_graph_io(
    graph_file: Path, role: str, manifest: Manifest, inputs: Sequence[_ValueInfo], outputs: Sequence[_ValueInfo]
) -> None:
    """Compare a loaded graph's inputs/outputs (onnxruntime NodeArgs) with the manifest.

    Raises:
        BundleError: naming the file, the tensor and what differs.
    """
    want_in, want_out = expected_io(manifest, role)
    for kind, want, have in (("input", want_in, inputs), ("output", want_out, outputs)):
        have_by_name = {v.name: v for v in have}
        if sorted(have_by_name) != sorted(want):
            raise BundleError(
                f"{graph_file}: {role} graph {kind}s are {sorted(have_by_name)} but the manifest needs {sorted(want)}."
            )
        for name, shape in want.items():
            info = have_by_name[name]
            if info.type != "tensor(float)":
                raise BundleError(f"{graph_file}: {kind} {name!r} has type {info.type} but must be tensor(float) (float32).")
            got = tuple(info.shape)
            if len(got) != len(shape):
                raise BundleError(f"{graph_file}: {kind} {name!r} has rank {len(got)} ({got}) but must be {shape}.")
            for axis, (dim_got, dim_want) in enumerate(zip(got, shape)):
                if dim_want is not None and isinstance(dim_got, int) and dim_got != dim_want:
                    raise BundleError(
                        f"{graph_file}: {kind} {name!r} axis {axis} is {dim_got} but the manifest says {dim_want} "
                        f"(expected shape {shape}, graph has {got})."
                    )
