"""``lnn-ros info BUNDLE``: print a bundle's manifest and check it end to end (torch-free)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lnn_ros.bundle.store import load_bundle


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "info",
        help="print a bundle's manifest and check it (hashes, graph rules, every graph run once, one step)",
        description="Read BUNDLE/manifest.yaml strictly, verify every file's SHA-256 and the graph rules "
        "(opset, operators, no external data), load every graph (window included) with onnxruntime from the "
        "bytes that were hashed, check its inputs/outputs against the manifest, run each once and step the engine. "
        "The digest printed is the SHA-256 over the bytes loaded (docs/bundle.md).",
    )
    parser.add_argument("bundle", type=Path, nargs="+", help="bundle folder(s)")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON instead of a summary")
    parser.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    from lnn_ros.engine import Engine, Outcome
    from lnn_ros.engine.session import check_bundle_graphs

    for path in args.bundle:
        bundle = load_bundle(path)
        check_bundle_graphs(bundle)  # every graph, window included: loaded, signature-checked, run once
        engine = Engine(bundle)
        m = bundle.manifest
        features = np.array([f.mean for f in m.features], dtype=np.float32)
        engine.step(features, 0)
        result = engine.step(features, int(m.dt.min_s * 1e9) or 1)
        if result.outcome is not Outcome.STEPPED:
            print(f"{path}: a test step ended {result.outcome.value}, not stepped.")
            return 1
        if args.json:
            print(json.dumps(m.to_dict(), indent=2))
            continue
        print(f"bundle   {path}  ({m.name})")
        print(f"digest   {bundle.digest}  (SHA-256 over the bytes loaded, manifest included)")
        if m.description:
            print(f"         {m.description}")
        print(f"model    {m.model.kind}: {m.model.input_size} inputs, {m.model.state_size} state, {m.model.output_size} outputs")
        for role, spec in m.graphs.items():
            extra = f", T={spec.steps}" if spec.steps else ""
            print(f"graph    {role:8s} {spec.file}{extra}  sha256 {bundle.file_hashes[spec.file][:16]}")
        if m.camera is not None:
            c = m.camera
            print(f"camera   {c.width}x{c.height} {c.encoding} -> {c.embedding_size} features")
            if c.preprocess is None:
                print(
                    f"         input must already be the encoder's size ({c.width}x{c.height}, "
                    f"{', '.join(c.accepted_encodings)}; schema {m.schema_version}: no preprocess declared)"
                )
            else:
                print(f"         preprocess: {c.preprocess.describe()}")
        sources: dict[str, list[str]] = {}
        for f in m.features:
            sources.setdefault(f.source, []).append(f.field or f"{f.name}")
        for source, names in sources.items():
            shown = ", ".join(names[:8]) + (f", … ({len(names)})" if len(names) > 8 else "")
            print(f"inputs   {source}: {shown}")
        for o in m.outputs:
            twist = f" -> {o.twist_field}" if o.twist_field else ""
            print(f"output   {o.name} [{o.unit}] in [{o.min:g}, {o.max:g}]{twist}")
        print(f"dt       trained {m.dt.min_s:g}..{m.dt.max_s:g} s, reset after a {m.dt.max_gap_s:g} s gap")
        print(f"opset    {m.opset}; producer {', '.join(f'{k} {v}' for k, v in m.producer.items())}")
        roles = ", ".join(m.graphs)
        print(f"check    ok: hashes, graph rules, {roles} loaded and run once, one step on {engine.provider}")
    return 0
