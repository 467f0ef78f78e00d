"""Re-export the manifest of trained drone bundles with the camera preprocessing they were trained with.

``python -m lnn_ros_examples.drone_policy.redeclare models/drone_*``

The shipped weights were trained on 64x48 ``rgb8`` renders; the declared preprocessing
(:data:`~lnn_ros_examples.drone_policy.data.PREPROCESS`) passes such frames unchanged (crop,
resize and colour conversion are the identity), so the training data of these weights is
exactly what the recipe now stores, and declaring the preprocessing in the manifest (schema 2)
is what a re-export writes. The ONNX files and their hashes stay as they are.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from lnn_ros.bundle import load_bundle
from lnn_ros.bundle.manifest import SCHEMA_VERSION
from lnn_ros.bundle.store import write_manifest
from lnn_ros.sim.errors import SimError
from lnn_ros_examples.drone_policy.data import PREPROCESS


def redeclare(folder: str | Path) -> None:
    """Write ``folder/manifest.yaml`` again with ``inputs.camera.preprocess`` and the current schema.

    Raises:
        SimError: the bundle has no camera section.
    """
    manifest = load_bundle(folder).manifest
    if manifest.camera is None:
        raise SimError(f"Bundle {str(folder)!r} has no camera section; nothing to declare.")
    camera = dataclasses.replace(manifest.camera, preprocess=PREPROCESS)
    write_manifest(folder, dataclasses.replace(manifest, camera=camera, schema_version=SCHEMA_VERSION))


def main(argv: list[str] | None = None) -> int:
    for folder in argv if argv is not None else sys.argv[1:]:
        redeclare(folder)
        print(f"{folder}: preprocess declared (schema {SCHEMA_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
