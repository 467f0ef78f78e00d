"""PyTorch -> ONNX: step, window and encoder graphs, their checks, parity with torch, bundles.

Every graph is opset 17 with a dynamic batch axis and no control flow (no Loop/Scan/If): the
recurrent cells are plain tensor math and the window graph is unrolled over its T steps.

Importing this package does not import torch (the ``lnn-ros`` CLI imports
:mod:`lnn_ros.onnx_export.cli` on every call, also on torch-free onboard machines); the
names below are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BundleExport": "lnn_ros.onnx_export.bundle_writer",
    "export_bundle": "lnn_ros.onnx_export.bundle_writer",
    "export_bundle_with_report": "lnn_ros.onnx_export.bundle_writer",
    "check_graph_file": "lnn_ros.onnx_export.checks",
    "find_control_flow": "lnn_ros.onnx_export.checks",
    "ExportError": "lnn_ros.onnx_export.errors",
    "ParityError": "lnn_ros.onnx_export.errors",
    "Exporter": "lnn_ros.onnx_export.graphs",
    "WindowUnroll": "lnn_ros.onnx_export.graphs",
    "export_encoder_graph": "lnn_ros.onnx_export.graphs",
    "export_step_graph": "lnn_ros.onnx_export.graphs",
    "export_window_graph": "lnn_ros.onnx_export.graphs",
    "ParityReport": "lnn_ros.onnx_export.verify",
    "verify_graphs": "lnn_ros.onnx_export.verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'lnn_ros.onnx_export' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
