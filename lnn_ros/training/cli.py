"""``lnn-ros train``: a dataset -> a checkpoint.

torch is imported inside the handlers only: this module is imported on every ``lnn-ros`` call,
also on onboard machines without torch.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lnn_ros.errors import LnnRosError
from lnn_ros.training.errors import TrainingError
from lnn_ros.training.models import CELL_KINDS

if TYPE_CHECKING:
    from lnn_ros.training.camera import CameraPolicy
    from lnn_ros.training.data import DescribedData, FlightSplit, TimedSequence
    from lnn_ros.training.distributed import DistContext


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_train(subparsers)


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a recurrent cell on irregularly sampled sequences and save a checkpoint",
        description="Train a cell on DATA (sequences of x [T,F], dt_s [T], y [T,O]) with truncated BPTT, "
        "Adam, gradient clipping and early stopping; write a checkpoint folder (weights.safetensors + "
        "checkpoint.yaml with the cell config and feature normalisation) for 'lnn-ros export'. Bags with a "
        "camera train a CNN encoder in front of the cell (docs/training.md#camera-policies-from-bags).",
    )
    parser.add_argument("data", type=Path, help="training dataset (file or folder; with --stream also a quoted glob)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--val", type=Path, default=None, help="validation dataset (default: split off --val-fraction)")
    parser.add_argument(
        "--format",
        default=None,
        help="dataset format: a registered name such as 'npz' (default: by file suffix) or 'package.module:function'",
    )
    bags = parser.add_argument_group(
        "bags",
        "A bag or a folder of bags is read with its message types detected; the checkpoint then records the "
        "features, outputs, limits and Δt range, so 'lnn-ros export' needs no --spec; validation holds out whole bags.",
    )
    bags.add_argument("--imu-topic", default=None, metavar="TOPIC", help="IMU topic (default: imu)")
    bags.add_argument("--command-topic", default=None, metavar="TOPIC",
                      help="recorded commands of a pilot or an expert, the target (default: cmd_vel)")
    bags.add_argument("--camera-topic", default=None, metavar="TOPIC",
                      help="camera topic, Image or CompressedImage (default: camera/image_raw, else the bags' only image "
                      "topic); with a camera a CNN encoder is trained in front of the cell")
    bags.add_argument("--no-camera", action="store_true", help="train an IMU-only cell even if the bags hold a camera")
    bags.add_argument("--image-size", default="64x48", metavar="WxH",
                      help="encoder input size frames are preprocessed to, multiples of 8 (default 64x48)")
    bags.add_argument("--embedding-size", type=int, default=16, help="camera embedding features E (default 16)")
    bags.add_argument("--limit", action="append", default=[], metavar="OUTPUT=MAX|OUTPUT=MIN:MAX",
                      help="an output's safe limits (OUTPUT: twist field such as linear.x, or the name vx); "
                      "default ± the largest |value| of its recorded commands; repeatable")
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=CELL_KINDS, default="cfc", help="cell kind (default cfc)")
    model.add_argument("--units", type=int, default=32, help="neurons / hidden size (default 32)")
    model.add_argument("--cell-config", type=Path, default=None, help="YAML of cell constructor arguments overriding the defaults")
    fitting = parser.add_argument_group("training")
    fitting.add_argument("--epochs", type=int, default=100)
    fitting.add_argument("--batch-size", type=int, default=16, help="windows per step over all processes (default 16)")
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
    scale = parser.add_argument_group(
        "scale (docs/training-at-scale.md)",
        "Under torchrun (torchrun --nproc-per-node N $(which lnn-ros) train ...) every process trains with "
        "DistributedDataParallel; --batch-size is the global batch; rank 0 alone logs and writes the checkpoint.",
    )
    scale.add_argument("--stream", action="store_true",
                       help="read DATA shard by shard (.npz files or bags in a folder or a glob) instead of all at once; "
                       "validation is split off by whole shards")
    scale.add_argument("--workers", type=int, default=0, help="data-loader processes per rank with --stream (default 0)")
    scale.add_argument("--shuffle-buffer", type=int, default=1024, help="windows shuffled across shards with --stream")
    scale.add_argument("--backend", choices=("gloo", "nccl"), default=None,
                       help="torch.distributed backend under torchrun (default: nccl on CUDA, gloo on CPU)")
    scale.add_argument("--device", default="cpu", help="cpu (default), cuda (cuda:LOCAL_RANK under torchrun), cuda:N or auto")
    scale.add_argument("--dist-timeout", type=float, default=300.0, metavar="S",
                       help="fail a collective that waits longer than S seconds for another process (default 300)")
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


def _parse_limit(text: str) -> tuple[str, float, float]:
    name, sep, value = text.partition("=")
    low_text, colon, high_text = value.partition(":")
    try:
        if not sep or not name.strip():
            raise ValueError
        high = float(high_text if colon else value)
        low = float(low_text) if colon else -high
    except ValueError:
        raise TrainingError(f"--limit {text!r}: write OUTPUT=MAX (for ±MAX) or OUTPUT=MIN:MAX, e.g. linear.x=1.5.") from None
    if not low < high:
        raise TrainingError(f"--limit {text!r}: the minimum must be below the maximum.")
    return name.strip(), low, high


def _apply_limits(export: dict[str, Any], limits: list[str]) -> None:
    """Set the outputs' ``min``/``max`` from ``--limit`` options (by twist field or by name)."""
    outputs = export.get("outputs") or []
    for text in limits:
        name, low, high = _parse_limit(text)
        matches = [o for o in outputs if name in (o.get("twist_field"), o.get("name"))]
        if not matches:
            known = [o.get("twist_field") or o.get("name") for o in outputs]
            raise TrainingError(f"--limit {text!r}: the model has no output {name!r}; its outputs are {known}.")
        for output in matches:
            output.update(min=low, max=high)


def _read_bags(path: Path, args: argparse.Namespace) -> DescribedData:
    from lnn_ros.training.data import DescribedData, check_sequences
    from lnn_ros.training.loaders import BAG_TRAINING_READER, resolve_loader

    reader: Any = resolve_loader(BAG_TRAINING_READER)  # takes the topic overrides too
    described = reader(
        path, imu_topic=args.imu_topic, command_topic=args.command_topic, camera_topic=args.camera_topic,
        camera=False if args.no_camera else None, image_size=_image_size(args.image_size),
    )
    if not isinstance(described, DescribedData):
        raise TrainingError(f"{BAG_TRAINING_READER} returned {type(described).__name__}, not DescribedData.")
    check_sequences(described.sequences, where=str(path))
    return described


def _image_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        raise TrainingError(f"--image-size {text!r}: write WIDTHxHEIGHT, e.g. 64x48.") from None
    if min(size) < 8 or size[0] % 8 or size[1] % 8:
        raise TrainingError(f"--image-size {text!r}: both sides must be multiples of 8 (the encoder halves them three times).")
    return size


def _bag_options_given(args: argparse.Namespace) -> list[str]:
    given = [
        ("--imu-topic", args.imu_topic), ("--command-topic", args.command_topic), ("--camera-topic", args.camera_topic),
        ("--no-camera", args.no_camera), ("--limit", args.limit),
    ]
    return [flag for flag, value in given if value]


def _split_line(split: FlightSplit) -> str:
    if not split.validation:
        return f"split    {len(split.train_flights)} flight(s) for training, no validation"
    if set(split.train_flights) & set(split.validation_flights):
        return (
            "split    one flight only: validation is the end of it, not a held-out flight "
            "(record several flights for an honest validation)"
        )
    return (
        f"split    by flight: {len(split.train_flights)} for training, {len(split.validation_flights)} held out "
        f"for validation ({', '.join(Path(f).name for f in split.validation_flights)})"
    )


def _camera_policy(
    args: argparse.Namespace, described: DescribedData, train: list[TimedSequence], cell_config: dict[str, Any]
) -> CameraPolicy:
    """A fresh camera policy: the encoder at the frames' size, normalised by the training flights."""
    from lnn_ros.training.camera import CameraArch, FramedData, new_camera_policy

    assert described.frames is not None and described.camera is not None
    arch = CameraArch(
        cell_kind=args.cell, units=args.units, embedding_size=args.embedding_size,
        image_height=described.camera.height, image_width=described.camera.width,
    )
    return new_camera_policy(
        arch, FramedData(train, described.frames), args.seed, cell_config=cell_config, normalise=not args.no_normalise
    )


def _add_camera(export: dict[str, Any], policy: CameraPolicy, described: DescribedData) -> None:
    """The export spec of a camera policy: the embedding features after the IMU's, the camera section
    (size, normalisation, the preprocessing the frames went through) and no window graph."""
    from lnn_ros.training.camera import camera_section

    assert described.camera is not None
    size = policy.arch.embedding_size
    export["features"] = list(export["features"]) + [
        {"name": f"embedding_{i}", "source": "camera", "index": i} for i in range(size)
    ]
    export["camera"] = camera_section(policy, described.camera.preprocess).to_dict()
    export["window_steps"] = None


def run_train(args: argparse.Namespace) -> int:
    from lnn_ros.training.distributed import session

    with session(args.backend, args.device, args.dist_timeout) as context:
        if not context.distributed:
            return _train(args, context)
        try:
            return _train(args, context)
        except LnnRosError as exc:  # name the rank: several processes write to one terminal
            raise type(exc)(f"rank {context.rank}: {exc}") from None
        except RuntimeError as exc:  # gloo/NCCL report a lost peer as a RuntimeError
            text = re.sub(r"^\[[^\]]*\]\s*", "", str(exc).strip())  # drop gloo's source location
            first = text.split(". ")[0] if text else type(exc).__name__
            raise TrainingError(
                f"rank {context.rank} of {context.world_size} lost another training process ({first}); "
                "the rank that failed first is named in torchrun's summary."
            ) from None


def _train(args: argparse.Namespace, context: DistContext) -> int:
    import torch

    from lnn_ros.cells import CellConfigError, SequenceModel, build_cell
    from lnn_ros.training.camera import FramedData, fit_camera_policy
    from lnn_ros.training.checkpoint import save_checkpoint
    from lnn_ros.training.data import check_sequences, split_flights
    from lnn_ros.training.loaders import BAG_READER, BAG_TRAINING_READER, dataset_format, load_sequences
    from lnn_ros.training.stream import ShardSet
    from lnn_ros.training.trainer import LRSchedule, TrainConfig, TrainResult, fit, fit_stream

    described: DescribedData | None = None
    val_described: DescribedData | None = None  # --val bags: their own frames
    split: FlightSplit | None = None
    validation: list[TimedSequence] | None = None
    if args.stream:
        if _bag_options_given(args):
            raise TrainingError(
                f"{', '.join(_bag_options_given(args))} work without --stream; for streamed bags write shards with "
                "'lnn-ros bag-to-dataset --shards --imu-topic ... --command-topic ...' and train on them."
            )
        shards = ShardSet.open(args.data, args.format)
        val_shards = None if args.val is None else ShardSet.open(args.val, args.format)
        input_shape, output_size = shards.probe()
    else:
        if args.data.exists() and (args.format or dataset_format(args.data)) in (BAG_READER, BAG_TRAINING_READER):
            described = _read_bags(args.data, args)
            train = list(described.sequences)
            if args.val is None:
                split = split_flights(train, described.flights, args.val_fraction, args.seed)
                train, validation = split.train, split.validation
            else:
                val_described = _read_bags(args.val, args)
                validation = list(val_described.sequences)
        elif _bag_options_given(args):
            raise TrainingError(f"{', '.join(_bag_options_given(args))} apply to bags, but {str(args.data)!r} is not a bag.")
        else:
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
        progress=not args.no_progress and context.is_main,
        threads=args.threads,
    )
    if described is not None and context.is_main:
        for line in described.report:
            print(line)
        if split is not None:
            print(_split_line(split))
    camera = described is not None and described.frames is not None
    features = input_shape[0] - 1 + args.embedding_size if camera else input_shape[0]
    cell_config = _cell_config(args, features, output_size)
    torch.manual_seed(args.seed)
    policy: CameraPolicy | None = None
    result: TrainResult
    if camera:
        assert described is not None and described.frames is not None
        policy = _camera_policy(args, described, train, cell_config)
        cell = policy.cell
        val_frames = described.frames if val_described is None else val_described.frames
        if validation is not None and val_frames is None:
            raise TrainingError(f"The --val bags {str(args.val)!r} hold no camera frames, the training bags do.")
        result = fit_camera_policy(
            policy, FramedData(train, described.frames),
            None if validation is None or val_frames is None else FramedData(validation, val_frames), config, context,
        )
    else:
        try:
            cell = build_cell(cell_config)
        except CellConfigError as exc:
            raise TrainingError(f"Cannot build the cell: {exc}") from None
        if cell.output_size != output_size:
            raise TrainingError(f"The cell outputs {cell.output_size} values but the data has {output_size} targets.")
        if args.stream:
            result = fit_stream(
                SequenceModel(cell), shards, config, validation=val_shards, context=context,
                workers=args.workers, shuffle_buffer=args.shuffle_buffer,
            )
        else:
            result = fit(SequenceModel(cell), train, config, validation=validation, context=context)
    if not context.is_main:
        return 0  # rank 0 alone writes the checkpoint and logs
    metadata: dict[str, Any] = {
        "data": str(args.data),
        "validation_data": None if args.val is None else str(args.val),
        "train_config": config.to_dict(),
        "train_result": result.to_dict(),
        "processes": context.world_size,
        "streamed": bool(args.stream),
    }
    export = None
    if described is not None:
        kind = f"camera + {cell_config['kind']}" if camera else cell_config["kind"]
        export = {"name": args.out.resolve().name, "description": f"{kind} trained on {args.data.resolve().name}"}
        export.update(described.export)
        _apply_limits(export, args.limit)
        metadata["data_source"] = dict(described.source)
        if split is not None:
            metadata["data_source"]["split"] = {"train": list(split.train_flights), "validation": list(split.validation_flights)}
    if policy is not None and export is not None and described is not None:
        _add_camera(export, policy, described)
        metadata["camera_arch"] = policy.arch.to_dict()
    stats = policy.cell_stats() if policy is not None else result.stats
    save_checkpoint(args.out, cell, stats=stats, metadata=metadata, export=export,
                    encoder=None if policy is None else policy.encoder)
    monitored = "validation" if result.val_loss else "training"
    processes = f" on {context.world_size} processes ({context.backend})" if context.distributed else ""
    print(
        f"trained {'camera + ' if camera else ''}{cell_config['kind']} for {result.epochs_run} epochs in {result.seconds:.1f} s{processes}"
        f"{' (stopped early)' if result.stopped_early else ''}; best {monitored} MSE {result.best_loss:.4g} "
        f"at epoch {result.best_epoch + 1}"
    )
    print(f"wrote checkpoint {args.out}")
    return 0
