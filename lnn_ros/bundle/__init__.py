"""The bundle: the unit the onboard runtime loads (ONNX graphs + ``manifest.yaml``).

Torch-free: pyyaml, hashlib and (to list a graph's operators) the onnx protobuf. The format
and the trust rules are documented in docs/bundle.md.
"""

from lnn_ros.bundle.errors import BundleError, ManifestError
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
from lnn_ros.bundle.store import Bundle, bundle_digest, load_bundle, sha256_file, write_manifest

__all__ = [
    "SCHEMA_VERSION",
    "Bundle",
    "BundleError",
    "CameraSpec",
    "DtLimits",
    "FeatureSpec",
    "GraphSpec",
    "Manifest",
    "ManifestError",
    "ModelSpec",
    "OutputSpec",
    "bundle_digest",
    "load_bundle",
    "sha256_file",
    "write_manifest",
]
