"""``lnn-ros replay | play | bag-to-dataset | bag-info``: the bag subcommands.

rosbags, rclpy and matplotlib are imported only inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lnn_ros.bag.errors import BagError
from lnn_ros.bag.topics import BAG_STREAMS, BagTopics
from lnn_ros.runtime.records import Stream


def _add_topic_options(parser: argparse.ArgumentParser, streams: tuple[Stream, ...] = BAG_STREAMS) -> None:
    defaults = BagTopics()
    helps = {
        Stream.IMU: "IMU topic",
        Stream.CAMERA: "camera topic",
        Stream.COMMAND: "recorded commands of a pilot or an expert",
    }
    group = parser.add_argument_group("topics (matched with or without the leading slash)")
    for stream in streams:
        name = stream.value
        group.add_argument(f"--{name}-topic", default=getattr(defaults, name), metavar="TOPIC",
                           help=f"{helps[stream]} (default: {getattr(defaults, name)})")
        group.add_argument(f"--{name}-type", default=getattr(defaults, f"{name}_type"), metavar="TYPE",
                           help=f"expected message type (default: {getattr(defaults, f'{name}_type')})")


def _topics(args: argparse.Namespace) -> BagTopics:
    values = {}
    for stream in BAG_STREAMS:
        for suffix in ("topic", "type"):
            value = getattr(args, f"{stream.value}_{suffix}", None)
            if value is not None:
                values[stream.value if suffix == "topic" else f"{stream.value}_type"] = value
    return BagTopics(**values)


def register(subparsers: argparse._SubParsersAction) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="run a bundle on a recorded bag exactly as the live node would; commands, metrics, plot",
        description="Replay BAG (rosbag2 sqlite3/mcap folder or file, or ROS 1 .bag) through the bundle with the "
        "live node's message handling. Writes OUT/commands (mcap bag of the commands and diagnostics), "
        "OUT/commands.csv, OUT/summary.json and, when the bag has recorded commands, OUT/metrics.json and "
        "OUT/commands.png. Use --order log (default) for bags recorded by `ros2 bag record` next to the node "
        "(log time = arrival time, so replay == live); --order stamp for bags written offline or merged.",
    )
    replay.add_argument("bag", type=Path, help="the bag to replay")
    replay.add_argument("--model", "-m", type=Path, required=True, metavar="BUNDLE", help="bundle folder")
    replay.add_argument("--out", "-o", type=Path, help="output folder, created, must be empty (default: ./<bag>_replay)")
    replay.add_argument("--order", choices=("log", "stamp"), default="log", help="message order (default: log)")
    replay.add_argument("--reorder-window", type=float, default=1.0, metavar="S",
                        help="reorder buffer of --order stamp, seconds of stamp time (default: 1.0)")
    replay.add_argument("--params", type=Path, metavar="YAML",
                        help="the node's ros2 parameter file (stale timeout, frame id, engine); node defaults otherwise")
    replay.add_argument("--output-topic", default="/cmd_vel", help="topic of the predicted commands in the output bag")
    replay.add_argument("--max-command-age", type=float, default=0.5, metavar="S",
                        help="recorded commands older than this are not compared; 0 = no limit (default: 0.5)")
    replay.add_argument("--no-plot", action="store_true", help="do not write commands.png")
    replay.add_argument("--strict", action="store_true", help="stop at the first problem in the bag instead of counting it")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.add_argument("--step-by-step", action="store_true",
                        help="hand every message to the node's loop one at a time, as lnn_node does (slower); by default "
                        "runs where the node simply flies are computed as batches, with the same results")
    _add_topic_options(replay)
    replay.set_defaults(func=run_replay)

    play = subparsers.add_parser(
        "play",
        help="publish a bag's messages on live ROS 2 topics with their original timing (like ros2 bag play)",
        description="Publish BAG's messages (raw CDR) on ROS 2 topics at their recorded times, scaled by --rate. "
        "Reports messages sent and those published later than --late-threshold-ms after their due time.",
    )
    play.add_argument("bag", type=Path)
    play.add_argument("--rate", "-r", type=float, default=1.0, help="speed factor (default: 1.0)")
    play.add_argument("--start-offset", type=float, default=0.0, metavar="S", help="skip the first S seconds of the bag")
    play.add_argument("--duration", type=float, metavar="S", help="play at most S seconds of bag time")
    play.add_argument("--topics", nargs="+", default=[], metavar="TOPIC", help="play only these topics (default: all)")
    play.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish topic FROM as TO")
    play.add_argument("--clock", type=float, nargs="?", const=100.0, default=0.0, metavar="HZ",
                      help="publish /clock (for use_sim_time) at HZ of wall time (default when given: 100)")
    play.add_argument("--delay", type=float, default=0.5, metavar="S",
                      help="wait S seconds after creating the publishers, for discovery (default: 0.5)")
    play.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="S",
                      help="then wait up to S seconds until every topic has a subscriber")
    play.add_argument("--late-threshold-ms", type=float, default=10.0, metavar="MS",
                      help="count messages published more than MS after their due time (default: 10)")
    play.add_argument("--qos-reliability", choices=("reliable", "best_effort"), default="reliable")
    play.add_argument("--qos-depth", type=int, default=100)
    play.set_defaults(func=run_play)

    dataset = subparsers.add_parser(
        "bag-to-dataset",
        help="turn bags (IMU, camera, recorded cmd_vel) into training sequences (.npz)",
        description="One training step per IMU message: IMU features, Δt from stamps, the recorded command valid "
        "at that stamp as target (and the newest camera frame with --camera). Sequences split at gaps. "
        "The .npz holds x_i, dt_s_i, y_i (the training format) plus stamps, frames and column names.",
    )
    dataset.add_argument("bags", type=Path, nargs="+", help="bags, or folders of bags")
    dataset.add_argument("--out", "-o", type=Path, required=True, help="output .npz file (a folder with --shards)")
    dataset.add_argument("--shards", action="store_true",
                         help="write one .npz per bag into the folder --out, bags converted in parallel processes "
                         "(for 'lnn-ros train --stream')")
    dataset.add_argument("--workers", type=int, default=None, help="processes for --shards (default: one per core)")
    dataset.add_argument("--model", type=Path, metavar="BUNDLE",
                         help="take IMU fields, targets and camera use from this bundle's manifest")
    dataset.add_argument("--imu-fields", help="comma-separated IMU fields (default: angular_velocity.xyz, linear_acceleration.xyz)")
    dataset.add_argument("--targets", help="comma-separated Twist fields (default: linear.x,linear.y,linear.z,angular.z)")
    dataset.add_argument("--camera", action="store_true", help="include camera frames")
    dataset.add_argument("--max-gap", type=float, default=0.5, metavar="S", help="split sequences at IMU gaps above S")
    dataset.add_argument("--max-command-age", type=float, default=0.5, metavar="S", help="a command is valid for S seconds")
    dataset.add_argument("--max-frame-age", type=float, default=0.5, metavar="S", help="a frame is valid for S seconds")
    dataset.add_argument("--min-steps", type=int, default=2, help="drop shorter sequences")
    dataset.add_argument("--strict", action="store_true", help="stop at the first problem in a bag")
    _add_topic_options(dataset)
    dataset.set_defaults(func=run_bag_to_dataset)

    info = subparsers.add_parser(
        "bag-info",
        help="list a bag's topics, types, counts and the streams lnn_ros finds",
        description="Only the index is read, and message definitions are parsed only for the streams lnn_ros "
        "reads, so topics of any other type (service events, custom messages) never stop a bag from opening.",
    )
    info.add_argument("bag", type=Path)
    _add_topic_options(info)
    info.set_defaults(func=run_bag_info)


def run_replay(args: argparse.Namespace) -> int:
    from lnn_ros.bag.reader import MessageOrder
    from lnn_ros.bag.replay import ReplayConfig, replay_bag

    if args.max_command_age < 0:
        raise BagError(f"--max-command-age must be >= 0 s, got {args.max_command_age!r}.")
    source = args.bag.resolve()
    out = args.out if args.out is not None else Path(f"{source.stem if source.is_file() else source.name}_replay")
    config = ReplayConfig(
        topics=_topics(args),
        order=MessageOrder(args.order),
        reorder_window_s=args.reorder_window,
        params_file=args.params,
        command_topic=args.output_topic,
        max_command_age_s=args.max_command_age or None,
        plot=not args.no_plot,
        strict=args.strict,
        progress=False if args.no_progress else None,
        step_by_step=args.step_by_step,
    )
    result = replay_bag(args.bag, args.model, out, config)
    c = result.counters
    print(f"replay   {result.bag} -> {result.out_dir} with bundle {result.bundle}")
    print(
        f"speed    {result.messages} messages, {result.bag_duration_s:.2f} s of bag time in {result.wall_s:.2f} s: "
        f"{result.speed:.1f}x real time"
    )
    print(
        f"commands {result.commands} published, {c['commands_withheld']} withheld by the watchdog; "
        f"{c['recorded_commands']} recorded commands in the bag; {c['diagnostics_written']} diagnostics"
    )
    nonzero = {k: v for k, v in c.items() if v and k not in ("commands_published", "recorded_commands", "diagnostics_written")}
    print("counters " + ", ".join(f"{k}={v}" for k, v in nonzero.items()))
    if result.metrics is not None:
        m = result.metrics
        print(f"metrics  {m.paired} predictions paired with a recorded command ({m.unpaired} unpaired)")
        for axis in m.axes:
            r = "n/a" if axis.pearson is None else f"{axis.pearson:.3f}"
            print(f"         {axis.name:>10s} ({axis.twist_field}): MSE {axis.mse:.5g}  MAE {axis.mae:.5g}  r {r}")
    for warning in result.warnings:
        print(f"warning  {warning}")
    for name, path in result.files.items():
        print(f"wrote    {path}  ({name})")
    return 0


def _remaps(values: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        source, separator, target = value.partition(":=")
        if not separator or not source or not target:
            raise BagError(f"--remap takes FROM:=TO, got {value!r}.")
        pairs.append((source, target))
    return tuple(pairs)


def run_play(args: argparse.Namespace) -> int:
    from lnn_ros.bag.play import PlayConfig, play_bag

    config = PlayConfig(
        rate=args.rate,
        start_offset_s=args.start_offset,
        duration_s=args.duration,
        topics=tuple(args.topics),
        remap=_remaps(args.remap),
        clock_hz=args.clock,
        delay_s=args.delay,
        wait_for_subscribers_s=args.wait_for_subscribers,
        late_threshold_s=args.late_threshold_ms / 1e3,
        reliability=args.qos_reliability,
        depth=args.qos_depth,
    )
    report = play_bag(args.bag, config)
    for line in report.lines():
        print(line)
    return 130 if report.interrupted else 0


def _split(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


def run_bag_to_dataset(args: argparse.Namespace) -> int:
    from lnn_ros.bag.dataset import DatasetConfig, bags_to_dataset, save_dataset_npz

    options: dict[str, object] = {
        "topics": _topics(args),
        "max_gap_s": args.max_gap,
        "max_command_age_s": args.max_command_age,
        "max_frame_age_s": args.max_frame_age,
        "min_steps": args.min_steps,
        "strict": args.strict,
    }
    if args.model is not None:
        from lnn_ros.bundle import load_bundle

        config = DatasetConfig.for_manifest(load_bundle(args.model).manifest, **options)
    else:
        for key, value in (("imu_fields", _split(args.imu_fields)), ("targets", _split(args.targets))):
            if value is not None:
                options[key] = value
        config = DatasetConfig(camera=args.camera, **options)  # type: ignore[arg-type]
    if args.shards:
        return _write_shards(args, config)
    dataset = bags_to_dataset(args.bags, config)
    path = save_dataset_npz(dataset, args.out)
    lengths = [len(s.x) for s in dataset.sequences]
    print(f"dataset  {len(lengths)} sequences, {sum(lengths)} steps (shortest {min(lengths)}, longest {max(lengths)})")
    print(f"columns  x: {', '.join(dataset.feature_names)}; y: {', '.join(dataset.target_names)}")
    if dataset.frame_encoding is not None:
        frames = sum(len(s.frames) for s in dataset.sequences if s.frames is not None)
        print(f"camera   {frames} frames ({dataset.frame_encoding})")
    if dataset.dropped:
        print("dropped  " + ", ".join(f"{k}={v}" for k, v in dataset.dropped.items()))
    for warning in dataset.warnings:
        print(f"warning  {warning}")
    print(f"wrote    {path}")
    return 0


def _write_shards(args: argparse.Namespace, config: object) -> int:
    from lnn_ros.bag.dataset import write_shards

    summaries = write_shards(args.bags, args.out, config, workers=args.workers)  # type: ignore[arg-type]
    for summary in summaries:
        dropped = ", ".join(f"{k}={v}" for k, v in summary.dropped.items())
        print(f"shard    {summary.path.name}  {summary.sequences} sequences, {summary.steps} steps"
              f"{f' (dropped {dropped})' if dropped else ''}")
        for warning in summary.warnings:
            print(f"warning  {summary.bag.name}: {warning}")
    print(f"wrote    {len(summaries)} shards ({sum(s.steps for s in summaries)} steps) to {args.out}")
    return 0


def run_bag_info(args: argparse.Namespace) -> int:
    from lnn_ros.bag.reader import BagReader

    with BagReader(args.bag, _topics(args)) as reader:
        info = reader.info
        kind = "ROS 1 bag" if info.is_ros1 else "rosbag2"
        print(f"bag      {info.path} ({kind}), {info.message_count} messages over {info.duration_s:.2f} s")
        for topic in info.topics.values():
            print(f"topic    {topic.name}  {topic.msgtype}  {topic.count}")
        for stream in BAG_STREAMS:
            if reader.has(stream):
                count = reader.expected_count([stream])
                found = f"{reader.topic(stream)} ({count} messages{'; EMPTY: nothing to read' if not count else ''})"
            else:
                found = "not found"
            print(f"stream   {stream.value}: {found}")
        for warning in reader.warnings.lines():
            print(f"warning  {warning}")
    return 0
