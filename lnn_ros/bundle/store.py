"""Reading and writing bundle folders: the bundle as a trust boundary.

:func:`load_bundle` reads each file of the bundle once, checks those bytes and keeps them:
the engine hands the same bytes to onnxruntime, so what was hashed and checked is what runs.

* ``manifest.yaml``: a regular file of at most 1 MiB, strict YAML
  (:mod:`lnn_ros.bundle.strict_yaml`) and the strict schema (:mod:`lnn_ros.bundle.manifest`).
* graphs: named relative to the folder that really holds ``manifest.yaml`` (symlinks
  followed), each must resolve to a regular file inside that folder, of at most
  :data:`MAX_GRAPH_BYTES`, whose SHA-256 matches ``files`` and whose content obeys
  :mod:`lnn_ros.bundle.graph_rules` (opset, operators, no external data).
* :attr:`Bundle.digest`: one SHA-256 over the bytes actually loaded, manifest included
  (:func:`bundle_digest`), so a tampered file changes it even when hashes are not verified.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from lnn_ros.bundle.errors import BundleError, ManifestError
from lnn_ros.bundle.graph_rules import check_graph_rules
from lnn_ros.bundle.manifest import MANIFEST_NAME, Manifest
from lnn_ros.bundle.strict_yaml import MAX_BYTES as MAX_MANIFEST_BYTES
from lnn_ros.bundle.strict_yaml import load_strict_yaml

MAX_GRAPH_BYTES = 512 << 20  # a bundle graph is kB to tens of MB; this bounds the memory a bad file can take

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


def bundle_digest(file_hashes: Mapping[str, str]) -> str:
    """SHA-256 of the ``sha256sum`` listing of the bundle's files, sorted by name.

    With the hashes of the bytes loaded, this equals
    ``sha256sum manifest.yaml step.onnx ... | LC_ALL=C sort -k2 | sha256sum`` run in the bundle folder.
    """
    listing = "".join(f"{file_hashes[name]}  {name}\n" for name in sorted(file_hashes, key=lambda n: n.encode()))
    return hashlib.sha256(listing.encode()).hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A bundle folder whose files were read once and checked.

    Attributes:
        path: the folder as given.
        manifest: the validated manifest.
        root: the folder that really holds ``manifest.yaml`` (symlinks resolved); graphs live in it.
        graph_bytes: file name -> the bytes read (and hashed); the engine runs these bytes.
        file_hashes: file name -> SHA-256 of the bytes read, ``manifest.yaml`` included.
        digest: :func:`bundle_digest` of ``file_hashes``: the id diagnostics report.
    """

    path: Path
    manifest: Manifest
    root: Path
    graph_bytes: Mapping[str, bytes] = dataclasses.field(repr=False)
    file_hashes: Mapping[str, str]
    digest: str

    def _spec_file(self, role: str) -> str:
        spec = self.manifest.graphs.get(role)
        if spec is None:
            raise BundleError(f"Bundle {str(self.path)!r} has no {role!r} graph; it has {sorted(self.manifest.graphs)}.")
        return spec.file

    def graph_path(self, role: str) -> Path:
        """Where graph ``role`` was read from (for messages; run :meth:`graph_data`)."""
        return self.root / self._spec_file(role)

    def graph_data(self, role: str) -> bytes:
        """The bytes of graph ``role`` exactly as read and checked at load."""
        return self.graph_bytes[self._spec_file(role)]


def _read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path`` (no FIFO, device or folder), at most ``limit`` of them."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise BundleError(f"{path}: {what} cannot be read ({exc.strerror or exc}).") from None
    if not stat.S_ISREG(info.st_mode):
        raise BundleError(f"{path}: {what} is not a regular file; a bundle holds plain files only.")
    if info.st_size > limit:
        raise BundleError(f"{path}: {what} is {info.st_size} bytes, above the limit of {limit} bytes.")
    try:
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except OSError as exc:
        raise BundleError(f"{path}: {what} cannot be read ({exc.strerror or exc}).") from None
    if len(data) > limit:  # it grew after stat
        raise BundleError(f"{path}: {what} is more than {limit} bytes, above the limit.")
    return data


def _graph_file(root: Path, name: str, manifest_path: Path) -> Path:
    """``root/name`` resolved, refused unless it is inside ``root`` (a symlink may not lead out)."""
    candidate = root / name
    try:
        resolved = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise BundleError(f"{manifest_path}: graph file {name!r} is missing from the bundle folder {str(root)!r}.") from None
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise BundleError(f"{manifest_path}: graph file {name!r} cannot be resolved ({exc}).") from None
    if not resolved.is_relative_to(root):
        raise BundleError(
            f"{candidate}: resolves to {str(resolved)!r}, outside the bundle folder {str(root)!r} (a symlink out of it?); "
            "a bundle loads only files inside its folder. Copy the file into the bundle."
        )
    return resolved


def parse_manifest(data: bytes, folder: str | Path | None = None) -> Manifest:
    """The manifest held in ``data`` (the bytes of ``manifest.yaml``), strictly read and validated.

    Raises:
        ManifestError: ``folder/manifest.yaml: ...`` naming the line or field and the bad value.
    """
    try:
        return Manifest.from_dict(load_strict_yaml(data, MANIFEST_NAME))
    except ManifestError as exc:
        raise ManifestError(str(exc) if folder is None else f"{folder}/{exc}") from None


def load_bundle(path: str | Path, *, verify_hashes: bool = True) -> Bundle:
    """Read and check the bundle folder ``path`` (see the module docstring).

    ``verify_hashes=False`` skips the comparison with ``files`` (for a bundle edited by hand);
    every other check still runs and the digest still covers the bytes actually loaded.

    Raises:
        BundleError: naming the folder, file and field that are wrong (:class:`ManifestError`
            for the manifest).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(f"Bundle folder {str(folder)!r} does not exist; pass the folder that holds {MANIFEST_NAME}.")
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.exists():
        raise BundleError(f"Bundle folder {str(folder)!r} has no {MANIFEST_NAME}; is it an exported bundle?")
    manifest_bytes = _read_regular(manifest_path, MAX_MANIFEST_BYTES, "the manifest")
    manifest = parse_manifest(manifest_bytes, folder)
    if not manifest.files:
        raise ManifestError(f"{manifest_path}: field 'files' is missing or empty; it must hold the SHA-256 of every graph.")
    root = manifest_path.resolve().parent
    graph_bytes: dict[str, bytes] = {}
    file_hashes = {MANIFEST_NAME: hashlib.sha256(manifest_bytes).hexdigest()}
    for spec in manifest.graphs.values():
        if spec.file in graph_bytes:
            continue
        file_path = _graph_file(root, spec.file, manifest_path)
        data = _read_regular(file_path, MAX_GRAPH_BYTES, "the graph")
        actual = hashlib.sha256(data).hexdigest()
        expected = manifest.files[spec.file]
        if verify_hashes and actual != expected:
            raise BundleError(
                f"{root / spec.file}: SHA-256 is {actual} but field 'files.{spec.file}' says {expected}; "
                "the file was changed after export. Re-export the bundle."
            )
        check_graph_rules(data, str(root / spec.file))
        graph_bytes[spec.file] = data
        file_hashes[spec.file] = actual
    return Bundle(
        path=folder,
        manifest=manifest,
        root=root,
        graph_bytes=graph_bytes,
        file_hashes=file_hashes,
        digest=bundle_digest(file_hashes),
    )


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a value twice instead of an anchor and alias, which the loader refuses."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_manifest(folder: str | Path, manifest: Manifest) -> Manifest:
    """Hash every graph file of ``manifest`` in ``folder`` and write ``manifest.yaml`` (UTF-8).

    Returns the manifest with its ``files`` field filled in.
    """
    folder = Path(folder)
    files = {spec.file: sha256_file(folder / spec.file) for spec in manifest.graphs.values()}
    complete = dataclasses.replace(manifest, files=files)
    text = yaml.dump(complete.to_dict(), Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=None)
    (folder / MANIFEST_NAME).write_text(text, encoding="utf-8")
    return complete


def expected_io(manifest: Manifest, role: str) -> tuple[dict[str, Shape], dict[str, Shape]]:
    """The input and output names and shapes the graph ``role`` must have (None = the batch axis)."""
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
                if dim_want is None:  # the batch axis: symbolic, or 1 (the engine runs batch 1)
                    if isinstance(dim_got, int) and dim_got != 1:
                        raise BundleError(
                            f"{graph_file}: {kind} {name!r} has a fixed batch axis of {dim_got}; it must be dynamic or 1."
                        )
                elif not isinstance(dim_got, int) or isinstance(dim_got, bool):
                    raise BundleError(
                        f"{graph_file}: {kind} {name!r} axis {axis} is symbolic ({dim_got!r}) but must be exactly "
                        f"{dim_want} (expected shape {shape}, graph has {got}); only the batch axis may be dynamic."
                    )
                elif dim_got != dim_want:
                    raise BundleError(
                        f"{graph_file}: {kind} {name!r} axis {axis} is {dim_got} but the manifest says {dim_want} "
                        f"(expected shape {shape}, graph has {got})."
                    )
