"""PyTorch -> ONNX: step, window and encoder graphs, their checks, parity with torch, bundles.

Every graph is opset 17 with a dynamic batch axis and no control flow (no Loop/Scan/If): the
recurrent cells are plain tensor math and the window graph is unrolled over its T steps.

Importing this package does not import torch (the ``lnn-ros`` CLI imports
:mod:`lnn_ros.onnx_export.cli` on every call, also on torch-free onboard machines); the
names below are loaded on first use.
"""

from __future__ import annotations

from lnn_ros._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "bundle_writer": ("BundleExport", "export_bundle", "export_bundle_with_report"),
        "checks": ("check_graph_file", "find_control_flow"),
        "errors": ("ExportError", "ParityError"),
        "graphs": ("Exporter", "WindowUnroll", "export_encoder_graph", "export_step_graph", "export_window_graph"),
        "verify": ("ParityReport", "verify_graphs"),
    },
)
