"""``lnn-ros train``: a dataset -> a checkpoint.

torch is imported inside the handlers only: this module is imported on every ``lnn-ros`` call,
also on onboard machines without torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from lnn_ros.training.errors import TrainingError
from lnn_ros.training.models import CELL_KINDS


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_train(subparsers)


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a recurrent cell on irregularly sampled sequences and save a checkpoint",
        description="Train a cell on DATA (sequences of x [T,F], dt_s [T], y [T,O]) with truncated BPTT, "
        "Adam, gradient clipping and early stopping; write a checkpoint folder (weights.safetensors + "
        "checkpoint.yaml with the cell config and feature normalisation) for 'lnn-ros export'.",
    )
    parser.add_argument("data", type=Path, help="training dataset (file or folder)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--val", type=Path, default=None, help="validation dataset (default: split off --val-fraction)")
    parser.add_argument(
        "--format",
        default=None,
        help="dataset format: a registered name such as 'npz' (default: by file suffix) or 'package.module:function'",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=CELL_KINDS, default="cfc", help="cell kind (default cfc)")
    model.add_argument("--units", type=int, default=32, help="neurons / hidden size (default 32)")
    model.add_argument("--cell-config", type=Path, default=None, help="YAML of cell constructor arguments overriding the defaults")
    fitting = parser.add_argument_group("training")
    fitting.add_argument("--epochs", type=int, default=100)
    fitting.add_argument("--batch-size", type=int, default=16)
    fitting.add_argument("--window-steps", type=int, default=64, help="samples per training window")
    fitting.add_argument("--window-stride", type=int, default=None, help="samples between window starts (default: window)")
    fitting.add_argument("--tbptt-steps", type=int, default=32, help="samples per truncated-BPTT chunk")
    fitting.add_argument("--burn-in-steps", type=int, default=0, help="leading samples of a window left out of the loss")
    fitting.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    fitting.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant")
    fitting.add_argument("--weight-decay", type=float, default=0.0)
    fitting.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (0: none)")
    fitting.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (0: none)")
    fitting.add_argument("--val-fraction", type=float, default=0.2)
    fitting.add_argument("--no-normalise", action="store_true", help="feed the inputs unnormalised")
    fitting.add_argument("--threads", type=int, default=1, help="torch threads while training (default 1)")
    fitting.add_argument("--seed", type=int, default=0)
    fitting.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run_train)


def _cell_config(args: argparse.Namespace, input_size: int, output_size: int) -> dict[str, Any]:
    from lnn_ros.training.models import default_cell_config

    config = default_cell_config(args.cell, input_size, output_size, units=args.units)
    if args.cell_config is not None:
        try:
            overrides = yaml.safe_load(args.cell_config.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise TrainingError(f"Cannot read cell config {str(args.cell_config)!r} ({exc}).") from None
        if not isinstance(overrides, dict):
            raise TrainingError(f"{args.cell_config}: must be a mapping of cell constructor arguments, got {overrides!r}.")
        for key in ("kind", "input_size"):
            if key in overrides and overrides[key] != config[key]:
                raise TrainingError(
                    f"{args.cell_config}: {key} is {overrides[key]!r} but the data/--cell say {config[key]!r}; remove it."
                )
        config.update(overrides)
    return config


def run_train(args: argparse.Namespace) -> int:
    import torch

    from lnn_ros.cells import CellConfigError, SequenceModel, build_cell
    from lnn_ros.training.checkpoint import save_checkpoint
    from lnn_ros.training.data import check_sequences
    from lnn_ros.training.loaders import load_sequences
    from lnn_ros.training.trainer import LRSchedule, TrainConfig, fit

    train = load_sequences(args.data, args.format)
    validation = None if args.val is None else load_sequences(args.val, args.format)
    input_shape, output_size = check_sequences(train, where=str(args.data))
    if len(input_shape) != 1:
        raise TrainingError(f"{args.data}: 'lnn-ros train' takes vector inputs x [T,F], got per-step shape {input_shape!r}.")
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        window_steps=args.window_steps,
        window_stride=args.window_stride,
        tbptt_steps=args.tbptt_steps,
        burn_in_steps=args.burn_in_steps,
        learning_rate=args.lr,
        lr_schedule=LRSchedule(args.lr_schedule),
        weight_decay=args.weight_decay,
        grad_clip_norm=args.clip or None,
        patience=args.patience or None,
        val_fraction=args.val_fraction,
        normalise=not args.no_normalise,
        seed=args.seed,
        progress=not args.no_progress,
        threads=args.threads,
    )
    cell_config = _cell_config(args, input_shape[0], output_size)
    torch.manual_seed(args.seed)
    try:
        cell = build_cell(cell_config)
    except CellConfigError as exc:
        raise TrainingError(f"Cannot build the cell: {exc}") from None
    if cell.output_size != output_size:
        raise TrainingError(f"The cell outputs {cell.output_size} values but the data has {output_size} targets.")
    result = fit(SequenceModel(cell), train, config, validation=validation)
    save_checkpoint(
        args.out,
        cell,
        stats=result.stats,
        metadata={
            "data": str(args.data),
            "validation_data": None if args.val is None else str(args.val),
            "train_config": config.to_dict(),
            "train_result": result.to_dict(),
        },
    )
    monitored = "validation" if result.val_loss else "training"
    print(
        f"trained {cell_config['kind']} for {result.epochs_run} epochs in {result.seconds:.1f} s"
        f"{' (stopped early)' if result.stopped_early else ''}; best {monitored} MSE {result.best_loss:.4g} "
        f"at epoch {result.best_epoch + 1}"
    )
    print(f"wrote checkpoint {args.out}")
    return 0
