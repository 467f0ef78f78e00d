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
        help="print a bundle's manifest and check it (hashes, graph inputs/outputs, one step)",
        description="Read BUNDLE/manifest.yaml, verify every file's SHA-256, load each graph with "
        "onnxruntime, check its inputs/outputs against the manifest and run one step.",
    )
    parser.add_argument("bundle", type=Path, nargs="+", help="bundle folder(s)")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON instead of a summary")
    parser.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    from lnn_ros.engine import Engine, Outcome

    for path in args.bundle:
        bundle = load_bundle(path)
        engine = Engine(bundle)  # loads every graph and checks its inputs/outputs
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
        print(f"bundle   {path}  ({m.name}, sha256 {bundle.digest[:16]})")
        if m.description:
            print(f"         {m.description}")
        print(f"model    {m.model.kind}: {m.model.input_size} inputs, {m.model.state_size} state, {m.model.output_size} outputs")
        for role, spec in m.graphs.items():
            extra = f", T={spec.steps}" if spec.steps else ""
            print(f"graph    {role:8s} {spec.file}{extra}  sha256 {m.files[spec.file][:16]}")
        if m.camera is not None:
            c = m.camera
            print(f"camera   {c.width}x{c.height} {c.encoding} (accepts {', '.join(c.accepted_encodings)}) -> {c.embedding_size} features")
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
        print(f"check    ok: hashes, graph inputs/outputs, one step on {engine.provider}")
    return 0
