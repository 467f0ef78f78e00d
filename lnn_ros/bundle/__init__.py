"""The bundle: the unit the onboard runtime loads (ONNX graphs + ``manifest.yaml``).

Torch-free: only numpy, pyyaml and hashlib are used here.
"""

from lnn_ros.bundle.manifest import (
    SCHEMA_VERSION,
    CameraSpec,
    DtLimits,
    FeatureSpec,
    GraphSpec,
    Manifest,
    ModelSpec,
    OutputSpec,
)
from lnn_ros.bundle.store import Bundle, load_bundle, sha256_file, write_manifest

__all__ = [
    "SCHEMA_VERSION",
    "Bundle",
    "CameraSpec",
    "DtLimits",
    "FeatureSpec",
    "GraphSpec",
    "Manifest",
    "ModelSpec",
    "OutputSpec",
    "load_bundle",
    "sha256_file",
    "write_manifest",
]
