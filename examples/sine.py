"""The sine example: learn cos(t) from sin(t) sampled at irregular times, end to end.

A CfC sees only ``sin(t_i)`` and the Δt since the previous sample (log-uniform between
``dt_min_s`` and ``dt_max_s``) and must output ``cos(t_i)``: it has to work out the phase and
its direction from a few samples and carry it across gaps of varying length. The example

1. draws training, validation and held-out test sequences (stamps in integer ns),
2. trains the CfC (:func:`lnn_ros.training.fit`) and saves a checkpoint,
3. exports a bundle (:func:`lnn_ros.onnx_export.export_bundle_with_report`),
4. replays each test sequence through the torch-free :class:`~lnn_ros.engine.Engine` with its
   ns stamps, and through the PyTorch model with the same Δt (the engine's first message only
   initialises; torch sees it with Δt = 0, which keeps the zero state, so the outputs line
   up from the second sample on),
5. writes a plot (target, PyTorch, engine and errors over time) and returns the figures.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from lnn_ros.training.data import FeatureStats, TimedSequence
from lnn_ros.training.errors import TrainingError
from lnn_ros.units import NS_PER_S

if TYPE_CHECKING:
    import torch

DEFAULT_OUT = Path("models/sine_cfc")


@dataclass(frozen=True)
class SineExampleConfig:
    """Settings of the sine example (the defaults train in well under a minute on 2 cores).

    Attributes:
        out_dir: Bundle folder to write.
        checkpoint_dir: Where the training checkpoint goes (None: ``<out_dir>/checkpoint``; the bundle
            loader ignores files its manifest does not list).
        plot_path: PNG to write (None: ``<out_dir>/sine_example.png``).
        seed: Seeds data, initial weights and training.
        train_sequences / val_sequences / test_sequences: Number of sequences of each split.
        samples: Samples per sequence.
        dt_min_s / dt_max_s: Range of the log-uniform Δt between samples.
        units: CfC hidden size (the backbone has twice as many units).
        window_steps: Training windows (overlapping by half, so that many windows start from a
            zero state mid-sequence and the model learns to lock on quickly).
        epochs / patience / learning_rate: Training settings.
        burn_in_samples: Leading samples of each held-out sequence left out of the reported
            RMSE (half of them are left out of the training loss): from a zero state the sign
            of cos(t) is unknowable until the model has seen sin(t) move.
        progress: Show the training progress bar.
    """

    out_dir: Path = DEFAULT_OUT
    checkpoint_dir: Path | None = None
    plot_path: Path | None = None
    seed: int = 0
    train_sequences: int = 64
    val_sequences: int = 16
    test_sequences: int = 16
    samples: int = 96
    dt_min_s: float = 0.02
    dt_max_s: float = 0.4
    units: int = 24
    window_steps: int = 48
    epochs: int = 80
    patience: int = 20
    learning_rate: float = 5e-3
    burn_in_samples: int = 8
    progress: bool = True


@dataclass(frozen=True)
class SineExampleResult:
    """Figures of one run of the sine example."""

    bundle_dir: Path
    checkpoint_dir: Path
    plot_path: Path
    train_seconds: float
    total_seconds: float
    epochs_run: int
    best_epoch: int
    test_rmse_torch: float  # PyTorch vs cos(t) on held-out sequences, after the burn-in samples
    test_rmse_engine: float  # Engine vs cos(t), same samples
    test_rmse_all_samples: float  # PyTorch vs cos(t) including the burn-in samples
    engine_vs_torch_max_abs: float  # over every stepped sample of every test sequence
    parity_summary: str

    def summary(self) -> str:
        return "\n".join(
            [
                f"bundle           {self.bundle_dir}",
                f"checkpoint       {self.checkpoint_dir}",
                f"plot             {self.plot_path}",
                f"training         {self.train_seconds:.1f} s, {self.epochs_run} epochs (best {self.best_epoch + 1})",
                f"held-out RMSE    PyTorch {self.test_rmse_torch:.4f}, Engine {self.test_rmse_engine:.4f} "
                f"(cos(t) has RMS 0.707; {self.test_rmse_all_samples:.4f} including the first samples)",
                f"engine vs torch  max abs diff {self.engine_vs_torch_max_abs:.2e} over every stepped sample",
                f"export parity    {self.parity_summary}",
                f"total            {self.total_seconds:.1f} s",
            ]
        )


class SineRecording(NamedTuple):
    """One irregularly sampled stretch: stamps_ns [T] int64, input sin(t) [T,1], target cos(t) [T,1]."""

    stamps_ns: np.ndarray
    x: np.ndarray
    y: np.ndarray


def sine_recordings(
    count: int, samples: int, dt_range_s: tuple[float, float], generator: np.random.Generator
) -> list[SineRecording]:
    """``count`` recordings starting at a random phase; gaps log-uniform over ``dt_range_s``, whole ns."""
    recordings = []
    low, high = np.log(dt_range_s[0]), np.log(dt_range_s[1])
    for _ in range(count):
        start_ns = int(generator.uniform(0.0, 2.0 * np.pi) * NS_PER_S)
        gaps_ns = np.round(np.exp(generator.uniform(low, high, size=samples - 1)) * NS_PER_S).astype(np.int64)
        stamps_ns = np.concatenate([[start_ns], start_ns + np.cumsum(gaps_ns)]).astype(np.int64)
        t_s = stamps_ns.astype(np.float64) / NS_PER_S
        recordings.append(SineRecording(stamps_ns, np.sin(t_s)[:, None], np.cos(t_s)[:, None]))
    return recordings


def timed_sequences(recordings: list[SineRecording]) -> list[TimedSequence]:
    """Training records: Δt from the stamps, 0 for the first sample (it only initialises)."""
    records = []
    for stamps_ns, x, y in recordings:
        dt_s = np.concatenate([[0.0], np.diff(stamps_ns) / NS_PER_S])
        records.append(TimedSequence(x.astype(np.float32), dt_s.astype(np.float32), y.astype(np.float32)))
    return records


def run_sine_example(config: SineExampleConfig = SineExampleConfig()) -> SineExampleResult:
    """Train, export, replay through the Engine, plot; see the module docstring."""
    import torch

    from lnn_ros.bundle import DtLimits, FeatureSpec, OutputSpec
    from lnn_ros.cells import SequenceModel, build_cell
    from lnn_ros.onnx_export import export_bundle_with_report
    from lnn_ros.training.checkpoint import save_checkpoint
    from lnn_ros.training.models import default_cell_config
    from lnn_ros.training.trainer import LRSchedule, TrainConfig, fit

    started = time.perf_counter()
    out_dir = Path(config.out_dir)
    checkpoint_dir = config.checkpoint_dir or out_dir / "checkpoint"
    plot_path = config.plot_path or out_dir / "sine_example.png"
    generator = np.random.default_rng(config.seed)
    dt_range = (config.dt_min_s, config.dt_max_s)
    train_recordings = sine_recordings(config.train_sequences, config.samples, dt_range, generator)
    val_recordings = sine_recordings(config.val_sequences, config.samples, dt_range, generator)
    test_recordings = sine_recordings(config.test_sequences, config.samples, dt_range, generator)

    torch.manual_seed(config.seed)
    cell = build_cell(default_cell_config("cfc", 1, 1, units=config.units))
    model = SequenceModel(cell)
    train_config = TrainConfig(
        epochs=config.epochs,
        batch_size=32,
        window_steps=config.window_steps,
        window_stride=config.window_steps // 2,
        tbptt_steps=config.window_steps // 3,
        burn_in_steps=config.burn_in_samples // 2,
        learning_rate=config.learning_rate,
        lr_schedule=LRSchedule.COSINE,
        patience=config.patience,
        seed=config.seed,
        progress=config.progress,
    )
    result = fit(model, timed_sequences(train_recordings), train_config, validation=timed_sequences(val_recordings))
    stats = result.stats
    if stats is None:
        raise TrainingError("fit() computed no normalisation statistics for the sine inputs.")
    save_checkpoint(
        checkpoint_dir,
        cell,
        stats=stats,
        metadata={"example": "sine", "train_config": train_config.to_dict(), "train_result": result.to_dict()},
    )

    export = export_bundle_with_report(
        cell,
        out_dir,
        name="sine_cfc",
        description="Example: cos(t) from sin(t) sampled at irregular times (lnn-ros example).",
        features=[FeatureSpec("sin_t", "vector", mean=stats.mean[0], std=stats.std[0], index=0)],
        outputs=[OutputSpec("cos_t", "", -1.5, 1.5)],
        dt=DtLimits(min_s=config.dt_min_s, max_s=config.dt_max_s, max_gap_s=2.0 * config.dt_max_s),
        window_steps=16,
    )

    torch_all, engine_all = replay(export.path, model, stats, test_recordings)
    target_all = np.stack([recording.y[:, 0] for recording in test_recordings])
    scored = slice(config.burn_in_samples, None)
    rmse_torch = float(np.sqrt(np.mean((torch_all[:, scored] - target_all[:, scored]) ** 2)))
    rmse_engine = float(np.sqrt(np.mean((engine_all[:, scored] - target_all[:, scored]) ** 2)))
    rmse_all = float(np.sqrt(np.mean((torch_all - target_all) ** 2)))
    engine_diff = float(np.max(np.abs(engine_all[:, 1:] - torch_all[:, 1:])))

    plot_sine_example(
        plot_path, test_recordings[0].stamps_ns, torch_all[0], engine_all[0], config.burn_in_samples, rmse_torch, engine_diff
    )
    return SineExampleResult(
        bundle_dir=export.path,
        checkpoint_dir=checkpoint_dir,
        plot_path=plot_path,
        train_seconds=result.seconds,
        total_seconds=time.perf_counter() - started,
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        test_rmse_torch=rmse_torch,
        test_rmse_engine=rmse_engine,
        test_rmse_all_samples=rmse_all,
        engine_vs_torch_max_abs=engine_diff,
        parity_summary=export.parity.summary(),
    )


def replay(
    bundle_dir: Path, model: torch.nn.Module, stats: FeatureStats, recordings: list[SineRecording]
) -> tuple[np.ndarray, np.ndarray]:
    """Outputs [N,T] of PyTorch and of the torch-free Engine on every recording.

    The Engine gets raw ``sin(t)`` with the ns stamps; its first message only initialises, so its
    output there is NaN. PyTorch gets the normalised input with Δt from the same stamps and
    Δt = 0 at the first sample (which keeps the zero state), so both agree from sample 2 on.

    Raises:
        TrainingError: the Engine did not step a sample it should have.
    """
    import torch

    from lnn_ros.engine import Engine, EngineConfig, Outcome

    engine = Engine(bundle_dir, EngineConfig(clamp_outputs=False))
    torch_out, engine_out = [], []
    for recording, record in zip(recordings, timed_sequences(recordings)):
        engine.reset()
        stepped = []
        for i, stamp_ns in enumerate(recording.stamps_ns):
            step = engine.step(recording.x[i].astype(np.float32), int(stamp_ns))
            expected = Outcome.INITIALISED if i == 0 else Outcome.STEPPED
            if step.outcome is not expected:
                raise TrainingError(f"Engine step {i} ended {step.outcome.value!r}, expected {expected.value!r}.")
            stepped.append(np.nan if step.output is None else float(step.output[0]))
        with torch.no_grad():
            x = torch.from_numpy(stats.normalise(record.x))[None]
            prediction, _ = model(x, torch.from_numpy(record.dt_s)[None])
        torch_out.append(prediction[0, :, 0].numpy().astype(np.float64))
        engine_out.append(np.asarray(stepped))
    return np.stack(torch_out), np.stack(engine_out)


def plot_sine_example(
    path: Path,
    stamps_ns: np.ndarray,
    torch_out: np.ndarray,
    engine_out: np.ndarray,
    burn_in_samples: int,
    rmse: float,
    engine_diff: float,
) -> Path:
    """Two panels over time: cos(t), PyTorch and Engine; then |model - target| and |Engine - PyTorch|."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TrainingError("The sine example plots with matplotlib; install it with pip install 'lnn_ros[plot]'.") from None

    t_s = (stamps_ns - stamps_ns[0]) / NS_PER_S
    dense_s = np.linspace(0.0, t_s[-1], 600)
    start_s = stamps_ns[0] / NS_PER_S
    target = np.cos(stamps_ns / NS_PER_S)
    floor = 1e-10  # exact agreement is drawn at this level on the log axis
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for axis in (top, bottom):
        axis.axvspan(0.0, t_s[burn_in_samples], color="grey", alpha=0.15, linewidth=0)
    top.plot(dense_s, np.cos(start_s + dense_s), color="black", linewidth=1.5, label="target cos(t)")
    top.plot(t_s, torch_out, "o-", markersize=3, linewidth=1, label="PyTorch CfC")
    top.plot(t_s[1:], engine_out[1:], "x", markersize=5, label="Engine (ONNX, torch-free)")
    top.vlines(t_s, -1.35, -1.25, color="grey", linewidth=0.5, label="input samples sin(t)")
    top.set_ylabel("value")
    top.set_title(f"cos(t) from sin(t) at irregular times (held-out RMSE {rmse:.3f}; shaded: warm-up, not scored)")
    top.legend(loc="upper right", fontsize=8)
    bottom.semilogy(t_s, np.maximum(np.abs(torch_out - target), floor), label="|PyTorch - target|")
    bottom.semilogy(
        t_s[1:], np.maximum(np.abs(engine_out[1:] - torch_out[1:]), floor), label=f"|Engine - PyTorch| (max {engine_diff:.1e})"
    )
    bottom.set_xlabel("time since first sample [s]")
    bottom.set_ylabel("abs error")
    bottom.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The example's command-line options (shared by ``lnn-ros example`` and python -m lnn_ros_examples.sine)."""
    defaults = SineExampleConfig()
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"bundle folder to write (default {DEFAULT_OUT})")
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint folder (default <out>/checkpoint)")
    parser.add_argument("--plot", type=Path, default=None, help="PNG to write (default <out>/sine_example.png)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--units", type=int, default=defaults.units)
    parser.add_argument("--no-progress", action="store_true", help="hide the training progress bar")


def config_from_args(args: argparse.Namespace) -> SineExampleConfig:
    return SineExampleConfig(
        out_dir=args.out,
        checkpoint_dir=args.checkpoint,
        plot_path=args.plot,
        seed=args.seed,
        epochs=args.epochs,
        units=args.units,
        progress=not args.no_progress,
    )


def run_from_args(args: argparse.Namespace) -> int:
    result = run_sine_example(config_from_args(args))
    print(result.summary())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lnn-ros example`` (the lead CLI lists this module when lnn_ros_examples is installed)."""
    parser = subparsers.add_parser(
        "example",
        help="the sine example: learn cos(t) from irregularly sampled sin(t), export, run it torch-free",
        description="Train a CfC to output cos(t) from sin(t) sampled at irregular times, export it as a bundle, "
        "replay held-out sequences through the torch-free Engine with ns stamps, and write a plot comparing "
        "target, PyTorch and Engine.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run_from_args)


def main(argv: list[str] | None = None) -> int:
    """``python -m lnn_ros_examples.sine``."""
    from lnn_ros_examples._main import run_recipe

    return run_recipe("lnn_ros_examples.sine", (__doc__ or "").splitlines()[0], add_arguments, run_from_args, argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
