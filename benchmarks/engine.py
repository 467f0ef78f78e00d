"""``lnn-ros bench``: per-step latency of the engine next to its baselines, in one run.

Batch 1, one thread everywhere. Measured per step (median and p99, microseconds):

* ``engine``       :class:`~lnn_ros.engine.Engine` on the exported CfC bundle (normalise,
  Δt rules, io_binding, clamp);
* ``ort_run``      a bare ``session.run`` with a feed dict on the same step graph;
* ``torch_eager``  the same CfC cell in PyTorch eager mode (``no_grad``);
* ``ncps_eager``   ``ncps.torch.CfCCell`` of the same size (when ncps is installed);
* ``ltc_engine`` / ``ltc_torch_eager``  an LTC of the same number of units (6 ODE unfolds).

Timings on a shared 2-core machine are noisy, which is why everything is compared as
ratios within one run, never as absolute thresholds in tests: the contenders are timed in
``--repeats`` rounds, each ratio is taken per round, and the median ratio is reported with its
range over the rounds. Within a round the contenders take turns in slices of ``steps / 10``
calls, so both sides of a ratio saw the same stretch of the machine's load (a load change
lasting seconds would otherwise fall on one contender's whole block).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class BenchConfig:
    input_size: int = 8
    units: int = 32
    output_size: int = 4
    backbone_units: int = 64
    backbone_layers: int = 1
    steps: int = 3000
    warmup: int = 300
    seed: int = 0
    repeats: int = 5


@dataclass(frozen=True)
class Timing:
    name: str
    median_us: float
    p99_us: float


def _time_per_call(fn: Callable[[int], object], steps: int, warmup: int) -> tuple[float, float]:
    for i in range(warmup):
        fn(i)
    samples = np.empty(steps, dtype=np.float64)
    clock = time.perf_counter_ns
    for i in range(steps):
        start = clock()
        fn(i)
        samples[i] = clock() - start
    samples /= 1e3
    return float(np.median(samples)), float(np.percentile(samples, 99))


def _time_round(
    contenders: dict[str, Callable[[int], object]], steps: int, warmup: int, slices: int = 10
) -> dict[str, tuple[float, float]]:
    """One round: every contender warmed up, then ``steps`` timed calls each, taken in turns of
    ``steps / slices`` calls; returns each contender's (median, p99) in µs."""
    for fn in contenders.values():
        for i in range(warmup):
            fn(i)
    samples = {name: np.empty(steps, dtype=np.float64) for name in contenders}
    clock = time.perf_counter_ns
    bounds = np.linspace(0, steps, max(1, min(slices, steps)) + 1).astype(int).tolist()
    for begin, end in itertools.pairwise(bounds):
        for name, fn in contenders.items():
            out = samples[name]
            for i in range(begin, end):
                start = clock()
                fn(i)
                out[i] = clock() - start
    return {name: (float(np.median(v)) / 1e3, float(np.percentile(v, 99)) / 1e3) for name, v in samples.items()}


def _engine_stepper(engine: object, xs: np.ndarray, stamps: np.ndarray) -> Callable[[int], object]:
    """``engine.step(xs[i], stamp)`` with a stamp that always moves forward by ``stamps``' i-th gap.

    The timing loop calls ``i = 0, 1, ...`` again after the warm-up and in every round; stamps
    taken as ``stamps[i]`` would then go back in time and the engine would drop those inputs
    (``out_of_order`` / ``gap_reset``) instead of stepping, which is not what is timed.
    """
    gaps = np.diff(stamps, prepend=stamps[0] - 5_000_000).tolist()
    rows = list(xs)
    clock = [int(stamps[0]) - 5_000_000]
    step = engine.step  # type: ignore[attr-defined]
    step(rows[0], clock[0])  # starts the stamp clock

    def call(i: int) -> object:
        clock[0] += gaps[i]
        return step(rows[i], clock[0])

    return call


def run_bench(config: BenchConfig, workdir: Path) -> dict:
    """Export the benchmark bundles into ``workdir`` and time every contender."""
    import onnxruntime as ort
    import torch

    from lnn_ros.bundle import DtLimits, FeatureSpec, OutputSpec
    from lnn_ros.cells import CfCCell, FullyConnected, LTCCell
    from lnn_ros.engine import Engine, EngineConfig
    from lnn_ros.onnx_export import export_bundle

    torch.manual_seed(config.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(config.seed)
    features = [FeatureSpec(name=f"f{i}", source="vector", index=i) for i in range(config.input_size)]
    outputs = [OutputSpec(name=f"y{i}", unit="", min=-1e3, max=1e3) for i in range(config.output_size)]
    cells = {
        "cfc": CfCCell(
            config.input_size,
            config.units,
            backbone_units=config.backbone_units,
            backbone_layers=config.backbone_layers,
            proj_size=config.output_size,
        ),
        # An LTC of the same number of neurons, fully connected, its first outputs as motor neurons.
        "ltc": LTCCell(config.input_size, FullyConnected(config.units, config.output_size)),
    }
    engines = {}
    for kind, cell in cells.items():
        cell.eval()
        export_bundle(
            cell,
            workdir / kind,
            name=f"bench_{kind}",
            features=features,
            outputs=outputs,
            dt=DtLimits(min_s=1e-4, max_s=1.0, max_gap_s=10.0),
            window_steps=None,
        )
        engines[kind] = Engine(workdir / kind, EngineConfig())

    n = config.steps + config.warmup
    xs = rng.normal(size=(n, config.input_size)).astype(np.float32)
    stamps = np.cumsum(rng.uniform(0.002, 0.01, size=n) * 1e9).astype(np.int64) + 1_000_000_000
    dts = np.diff(stamps, prepend=stamps[0] - 5_000_000).astype(np.float32)[:, None] / 1e9

    contenders: dict[str, Callable[[int], object]] = {}

    def add(name: str, fn: Callable[[int], object]) -> None:
        contenders[name] = fn

    for kind in ("cfc", "ltc"):
        engine = engines[kind]
        prefix = "" if kind == "cfc" else "ltc_"
        add(f"{prefix}engine", _engine_stepper(engine, xs, stamps))

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(engines["cfc"].bundle.graph_path("step")), sess_options=options, providers=["CPUExecutionProvider"]
    )
    feed = {
        "x": xs[:1].copy(),
        "hidden": np.zeros((1, cells["cfc"].state_size), dtype=np.float32),
        "dt": dts[:1].copy(),
    }

    def ort_step(i: int) -> None:
        feed["x"] = xs[i : i + 1]
        feed["dt"] = dts[i : i + 1]
        feed["hidden"] = session.run(None, feed)[1]

    add("ort_run", ort_step)

    def torch_stepper(cell: torch.nn.Module, call: Callable) -> Callable[[int], None]:
        xt = torch.from_numpy(xs)
        dtt = torch.from_numpy(dts)
        state = {"h": torch.zeros(1, cells["cfc"].state_size)}

        def step(i: int) -> None:
            with torch.no_grad():
                state["h"] = call(cell, xt[i : i + 1], state["h"], dtt[i : i + 1])

        return step

    add("torch_eager", torch_stepper(cells["cfc"], lambda c, x, h, dt: c(x, h, dt)[1]))
    add("ltc_torch_eager", torch_stepper(cells["ltc"], lambda c, x, h, dt: c(x, h, dt)[1]))
    try:
        from ncps.torch import CfCCell as NcpsCfCCell
    except ImportError:
        pass
    else:
        ncps_cell = NcpsCfCCell(
            config.input_size, config.units, backbone_units=config.backbone_units, backbone_layers=config.backbone_layers
        ).eval()
        add("ncps_eager", torch_stepper(ncps_cell, lambda c, x, h, dt: c(x, h, dt.squeeze(-1))[1]))

    # Rounds: the contenders take turns within each round, so each round's ratios share the machine's load.
    rounds = [_time_round(contenders, config.steps, config.warmup) for _ in range(max(config.repeats, 1))]
    timings = [
        Timing(name, float(np.median([r[name][0] for r in rounds])), float(np.median([r[name][1] for r in rounds])))
        for name in contenders
    ]

    def ratio_per_round(a: str, b: str) -> list[float] | None:
        if a not in contenders or b not in contenders:
            return None
        return [r[a][0] / r[b][0] for r in rounds]

    pairs = {
        "engine_over_ort_run": ("engine", "ort_run"),
        "ncps_eager_over_engine": ("ncps_eager", "engine"),
        "torch_eager_over_engine": ("torch_eager", "engine"),
        "ltc_engine_over_engine": ("ltc_engine", "engine"),
    }
    per_round = {key: ratio_per_round(a, b) for key, (a, b) in pairs.items()}
    ratios = {key: None if values is None else float(np.median(values)) for key, values in per_round.items()}
    spread = {
        key: None if values is None else {"min": min(values), "max": max(values), "rounds": values}
        for key, values in per_round.items()
    }
    targets = {
        "engine_over_ort_run": ("<=", 1.5),
        "ncps_eager_over_engine": (">=", 10.0),
        "ltc_engine_over_engine": (">=", 5.0),
    }
    verdicts = {}
    for key, (op, bound) in targets.items():
        value = ratios[key]
        verdicts[key] = None if value is None else (value <= bound if op == "<=" else value >= bound)
    return {
        "config": asdict(config),
        "machine": {
            "python": platform.python_version(),
            "load_average_1_5_15min": os.getloadavg(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "onnxruntime": ort.__version__,
            "torch": torch.__version__,
        },
        "timings_us": [asdict(t) for t in timings],
        "ratios": ratios,
        "ratio_spread": spread,
        "command": f"lnn-ros bench --units {config.units} --inputs {config.input_size} --steps {config.steps} "
        f"--repeats {config.repeats}",
        "targets": {k: f"{op} {bound}" for k, (op, bound) in targets.items()},
        "targets_met": verdicts,
    }


def format_table(result: dict) -> str:
    rows = ["| contender | median µs/step | p99 µs/step | × engine (median) |", "|---|---:|---:|---:|"]
    engine = next(t for t in result["timings_us"] if t["name"] == "engine")["median_us"]
    for t in result["timings_us"]:
        rows.append(f"| {t['name']} | {t['median_us']:.1f} | {t['p99_us']:.1f} | {t['median_us'] / engine:.2f} |")
    lines = ["\n".join(rows), ""]
    for key, value in result["ratios"].items():
        if value is None:
            continue
        target = result["targets"].get(key)
        met = result["targets_met"].get(key)
        suffix = f"  (target {target}: {'met' if met else 'MISSED'})" if target else ""
        spread = result.get("ratio_spread", {}).get(key)
        rounds = f" [rounds {spread['min']:.2f}-{spread['max']:.2f}]" if spread else ""
        lines.append(f"{key} = {value:.2f}{rounds}{suffix}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time the engine per step against bare onnxruntime, PyTorch eager, ncps and LTC",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = BenchConfig()
    parser.add_argument("--units", type=int, default=defaults.units, help="CfC/LTC units (default %(default)s)")
    parser.add_argument("--inputs", type=int, default=defaults.input_size, help="input features (default %(default)s)")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="timed steps per contender (default %(default)s)")
    parser.add_argument(
        "--repeats", type=int, default=defaults.repeats, help="interleaved rounds; ratios are per round (default %(default)s)"
    )
    parser.add_argument("--json", type=Path, default=Path("results/bench_engine.json"), help="where to write the results")
    parser.set_defaults(func=run_bench_command)


def run_bench_command(args: argparse.Namespace) -> int:
    config = BenchConfig(input_size=args.inputs, units=args.units, steps=args.steps, repeats=args.repeats)
    with tempfile.TemporaryDirectory(prefix="lnn_bench_") as tmp:
        result = run_bench(config, Path(tmp))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(format_table(result))
    print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":  # python -m lnn_ros_benchmarks.engine (same as lnn-ros bench)
    import sys

    from lnn_ros.cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
