"""How the engine's cost per step grows with the state size and the input size, in one run.

    python -m lnn_ros_benchmarks.engine_scaling     # writes results/scaling/engine_size.json and .png

Two sweeps around ``lnn-ros bench``'s model (:mod:`lnn_ros_benchmarks.engine`: 8 inputs, 32
units, backbone 64 x 1, 4 outputs, batch 1, one thread):

* ``units``: 16, 32, 64, 128, 256 units at 8 inputs, CfC and LTC (fully connected, 6 unfolds);
* ``inputs``: 4, 16, 64, 128 input features at 32 units, CfC and LTC.

Each model is exported as a bundle and timed per step as :class:`~lnn_ros.engine.Engine`
(``engine``: normalise, Δt rules, io_binding, clamp), as a bare ``session.run`` with a feed
dict on the same step graph (``ort_run``, as in ``lnn-ros bench``) and as the bare call the
engine makes, ``run_with_iobinding`` on buffers bound once (``ort_bound``); the CfC also as ``ncps.torch.CfCCell`` in PyTorch
eager (``ncps_eager``) when ncps is installed. Every model and contender is timed once per
round, ``--repeats`` interleaved rounds, so all sizes of a round share the machine's load. A
figure is the median over the rounds of each round's median (and p99) per step; the spread
is the rounds' min and max. Growth is a ratio within each round (cost at a size / cost at the
smallest size of its sweep), its median and range over the rounds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lnn_ros_benchmarks.engine import BenchConfig, _engine_stepper, _time_per_call
from lnn_ros_benchmarks.report import (
    Panel,
    Series,
    command_line,
    plot_panels,
    publish,
    spread,
)

REPO = Path(__file__).resolve().parent.parent
UNITS = (16, 32, 64, 128, 256)
INPUTS = (4, 16, 64, 128)
KINDS = ("cfc", "ltc")
Stepper = Callable[[int], object]


@dataclass(frozen=True)
class Model:
    """One exported model of a sweep."""

    kind: str  # "cfc" or "ltc"
    units: int
    inputs: int

    @property
    def key(self) -> str:
        return f"{self.kind} units={self.units} inputs={self.inputs}"


def sweep_models(units: Sequence[int], inputs: Sequence[int], base: BenchConfig) -> dict[str, list[Model]]:
    """The models of each sweep (``units`` at ``base.input_size`` inputs, ``inputs`` at
    ``base.units`` units), keyed ``"<kind> <sweep>"``; a model in two sweeps is the same one."""
    sweeps: dict[str, list[Model]] = {}
    for kind in KINDS:
        sweeps[f"{kind} units"] = [Model(kind, u, base.input_size) for u in units]
        sweeps[f"{kind} inputs"] = [Model(kind, base.units, i) for i in inputs]
    return sweeps


def _export(model: Model, base: BenchConfig, folder: Path) -> Any:
    """Export ``model`` as a bundle in ``folder``; returns the (eval-mode) torch cell."""
    from lnn_ros.bundle import DtLimits, FeatureSpec, OutputSpec
    from lnn_ros.cells import CfCCell, FullyConnected, LTCCell
    from lnn_ros.onnx_export import export_bundle

    cell: Any
    if model.kind == "cfc":
        cell = CfCCell(model.inputs, model.units, backbone_units=base.backbone_units,
                       backbone_layers=base.backbone_layers, proj_size=base.output_size)
    else:  # the LTC of lnn-ros bench: fully connected, its first neurons as motor neurons
        cell = LTCCell(model.inputs, FullyConnected(model.units, base.output_size))
    cell.eval()
    export_bundle(
        cell,
        folder,
        name=f"scaling_{model.kind}_{model.units}_{model.inputs}",
        features=[FeatureSpec(name=f"f{i}", source="vector", index=i) for i in range(model.inputs)],
        outputs=[OutputSpec(name=f"y{i}", unit="", min=-1e3, max=1e3) for i in range(base.output_size)],
        dt=DtLimits(min_s=1e-4, max_s=1.0, max_gap_s=10.0),
        window_steps=None,
    )
    return cell


def _contenders(model: Model, base: BenchConfig, folder: Path, ncps: bool) -> dict[str, Stepper]:
    """``engine``, ``ort_run``, ``ort_bound`` and (CfC, when asked and installed) ``ncps_eager`` steppers of ``model``."""
    import onnxruntime as ort
    import torch

    from lnn_ros.engine import Engine, EngineConfig

    cell = _export(model, base, folder)
    rng = np.random.default_rng(base.seed)
    n = base.steps + base.warmup
    xs = rng.normal(size=(n, model.inputs)).astype(np.float32)
    stamps = np.cumsum(rng.uniform(0.002, 0.01, size=n) * 1e9).astype(np.int64) + 1_000_000_000
    dts = np.diff(stamps, prepend=stamps[0] - 5_000_000).astype(np.float32)[:, None] / 1e9
    engine = Engine(folder, EngineConfig())
    steppers: dict[str, Stepper] = {"engine": _engine_stepper(engine, xs, stamps)}

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(folder / "step.onnx"), sess_options=options, providers=["CPUExecutionProvider"])
    feed = {"x": xs[:1], "hidden": np.zeros((1, cell.state_size), dtype=np.float32), "dt": dts[:1]}

    def ort_run(i: int) -> None:
        feed["x"] = xs[i : i + 1]
        feed["dt"] = dts[i : i + 1]
        feed["hidden"] = session.run(None, feed)[1]

    steppers["ort_run"] = ort_run
    steppers["ort_bound"] = _bound_run(engine, xs[0])
    if ncps and model.kind == "cfc":
        try:
            from ncps.torch import CfCCell as NcpsCfCCell
        except ImportError:
            return steppers
        reference = NcpsCfCCell(model.inputs, model.units, backbone_units=base.backbone_units,
                                backbone_layers=base.backbone_layers).eval()
        xt, dtt = torch.from_numpy(xs), torch.from_numpy(dts[:, 0])
        state = {"h": torch.zeros(1, model.units)}

        def ncps_eager(i: int) -> None:
            with torch.no_grad():
                state["h"] = reference(xt[i : i + 1], state["h"], dtt[i : i + 1])[1]

        steppers["ncps_eager"] = ncps_eager
    return steppers


def _bound_run(engine: Any, x: np.ndarray) -> Stepper:
    """The onnxruntime call the engine makes per step, alone: a second engine's own bound call
    (``run_with_iobinding`` through the C++ method, on the graph the engine runs: with ``x``
    and ``hidden`` in one buffer when it fuses them, :mod:`lnn_ros.engine.fused_input`), on the
    same inputs every call."""
    twin = type(engine)(engine.bundle, engine.config)
    side = twin._side  # the benchmark times the engine's own call: its bound buffers and call
    side.x_row[:] = x
    twin._dt_flat[0] = 0.005
    call = side.call

    def ort_bound(i: int) -> None:
        call()

    ort_bound.kept = twin  # type: ignore[attr-defined]  # alive as long as the call
    return ort_bound


def run(
    units: Sequence[int] = UNITS,
    inputs: Sequence[int] = INPUTS,
    *,
    steps: int = 2000,
    warmup: int = 200,
    repeats: int = 5,
    ncps: bool = True,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Export every model of both sweeps, time them in ``repeats`` interleaved rounds; the report."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    base = BenchConfig(steps=steps, warmup=warmup, repeats=repeats)
    sweeps = sweep_models(units, inputs, base)
    models = list({m.key: m for ms in sweeps.values() for m in ms}.values())
    with tempfile.TemporaryDirectory(prefix="lnn_engine_scaling_", dir=workdir) as tmp:
        contenders = {m.key: _contenders(m, base, Path(tmp) / str(i), ncps) for i, m in enumerate(models)}
        rounds: list[dict[tuple[str, str], tuple[float, float]]] = []
        for r in range(max(repeats, 1)):
            started = time.perf_counter()
            rounds.append({
                (key, name): _time_per_call(fn, steps, warmup)
                for key, steppers in contenders.items()
                for name, fn in steppers.items()
            })
            print(f"round {r + 1}/{repeats}: {time.perf_counter() - started:.1f} s", flush=True)

    def figure(key: str, name: str, which: int) -> dict[str, Any]:
        return spread([rnd[key, name][which] for rnd in rounds], 2)

    table = {
        m.key: {
            "kind": m.kind, "units": m.units, "inputs": m.inputs,
            **{name: {"median_us": figure(m.key, name, 0), "p99_us": figure(m.key, name, 1)} for name in contenders[m.key]},
            "engine_over_ort_run": spread([rnd[m.key, "engine"][0] / rnd[m.key, "ort_run"][0] for rnd in rounds]),
            "engine_over_ort_bound": spread([rnd[m.key, "engine"][0] / rnd[m.key, "ort_bound"][0] for rnd in rounds]),
            **({"ncps_eager_over_engine": spread([rnd[m.key, "ncps_eager"][0] / rnd[m.key, "engine"][0] for rnd in rounds])}
               if "ncps_eager" in contenders[m.key] else {}),
        }
        for m in models
    }
    growth = {
        sweep: {
            m.key: spread([rnd[m.key, "engine"][0] / rnd[ms[0].key, "engine"][0] for rnd in rounds]) for m in ms
        }
        for sweep, ms in sweeps.items()
    }
    return {
        "config": {"steps": steps, "warmup": warmup, "repeats": repeats, "units": list(units), "inputs": list(inputs),
                   "units_sweep_inputs": base.input_size, "inputs_sweep_units": base.units,
                   "backbone": f"{base.backbone_units}x{base.backbone_layers}", "outputs": base.output_size,
                   "ltc": "fully connected, 6 ODE unfolds", "batch": 1, "threads": 1},
        "sweeps": {sweep: [m.key for m in ms] for sweep, ms in sweeps.items()},
        "models": table,
        "engine_growth_over_smallest": growth,
    }


def format_table(report: dict[str, Any]) -> str:
    """Markdown tables of both sweeps: medians (and p99) in µs per step, spread over the rounds."""
    lines = []
    for sweep, keys in report["sweeps"].items():
        kind, size = sweep.split()
        lines += [f"\n{kind.upper()} against {size}:",
                  f"| {size} | engine µs p50 (p99) | rounds | ort_bound µs | ort_run µs | engine × smallest | ncps eager / engine |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for key in keys:
            row = report["models"][key]
            engine = row["engine"]["median_us"]
            growth = report["engine_growth_over_smallest"][sweep][key]
            ncps = row.get("ncps_eager_over_engine")
            lines.append(
                f"| {row[size]} | {engine['median']:.1f} ({row['engine']['p99_us']['median']:.1f}) "
                f"| {engine['min']:.1f}–{engine['max']:.1f} | {row['ort_bound']['median_us']['median']:.1f} "
                f"| {row['ort_run']['median_us']['median']:.1f} "
                f"| {growth['median']:.2f} ({growth['min']:.2f}–{growth['max']:.2f}) "
                f"| {'' if ncps is None else format(ncps['median'], '.1f') + '×'} |"
            )
    return "\n".join(lines)


def plot(report: dict[str, Any], out: Path) -> Path:
    """engine, ort_bound and ncps µs per step against units and against inputs, CfC and LTC."""
    panels = []
    for axis in ("units", "inputs"):
        series = []
        for kind in KINDS:
            rows = [report["models"][k] for k in report["sweeps"][f"{kind} {axis}"]]
            for name in ("engine", "ort_bound", "ncps_eager"):
                if name not in rows[0]:
                    continue
                medians = [r[name]["median_us"] for r in rows]
                series.append(Series(f"{kind.upper()} {name}", [r[axis] for r in rows], [m["median"] for m in medians],
                                     [m["min"] for m in medians], [m["max"] for m in medians]))
        xs = sorted({x for s in series for x in s.x})
        panels.append(Panel(f"per step against {axis}", axis, "µs per step (median; bars: rounds)", series,
                            ticks=[(x, str(x)) for x in xs]))
    return plot_panels(out, panels, "engine per-step cost (batch 1, one thread)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=list(UNITS), help="units sweep (default %(default)s)")
    parser.add_argument("--inputs", type=int, nargs="+", default=list(INPUTS), help="inputs sweep (default %(default)s)")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per model, contender and round")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default %(default)s)")
    parser.add_argument("--no-ncps", action="store_true", help="do not time ncps eager next to the CfC")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "scaling" / "engine_size.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    started = time.time()
    result = run(args.units, args.inputs, steps=args.steps, repeats=args.repeats, ncps=not args.no_ncps)
    publish(
        args.out, result, benchmark="engine per-step cost against state size and input size",
        command=command_line("engine_scaling", parser, args), load_before=load_before, started=started,
        packages=("onnxruntime", "torch", "numpy", "ncps"), plot=plot, table=format_table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
