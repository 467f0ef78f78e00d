"""How the camera's cost per frame grows with the image size, raw and jpeg, in one run.

    python -m lnn_ros_benchmarks.camera_scaling     # writes results/scaling/camera_size.json and .png

The synthetic scene of :mod:`lnn_ros_benchmarks.camera` at 64x48 ... 1920x1080, as a raw
``sensor_msgs/Image`` (``rgb8``) and as a ``sensor_msgs/CompressedImage`` (``jpeg``, quality
90), goes through the shipped ``models/drone_cfc`` (64x48 encoder input; its preprocessing
crops the centre and area-resizes, and decodes a jpeg with libjpeg's DCT scaling) with
:func:`lnn_ros_benchmarks.camera.time_frame`:

* ``preprocess``: :meth:`ImageDecoder.decode` (decode, crop, resize, colour, normalise);
* ``encoder``: :meth:`Engine.encode` alone on that 64x48 input;
* ``on_image``: :meth:`PolicyRunner.on_image`, both and the held embedding: what the node's
  camera callback costs before the next IMU step.

Every size and format is timed once per round, ``--repeats`` interleaved rounds; a figure is
the median over the rounds of each round's p50 (and p99), with the rounds' range.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lnn_ros_benchmarks.camera import make_frame, time_frame
from lnn_ros_benchmarks.report import (
    Panel,
    Series,
    command_line,
    plot_panels,
    publish,
    shown_path,
    spread,
)

REPO = Path(__file__).resolve().parent.parent
SIZES = ((64, 48), (160, 120), (320, 240), (640, 480), (1280, 720), (1920, 1080))
ENCODINGS = ("rgb8", "jpeg")
STAGES = ("preprocess", "encoder", "on_image")


def run(
    sizes: Sequence[tuple[int, int]] = SIZES,
    encodings: Sequence[str] = ENCODINGS,
    *,
    frames: int = 200,
    warmup: int = 10,
    repeats: int = 5,
    model: Path = REPO / "models" / "drone_cfc",
) -> dict[str, Any]:
    """Time every size and encoding in ``repeats`` interleaved rounds; the report's figures."""
    cases = {f"{w}x{h} {e}": make_frame(e, w, h, 1_000_000) for e in encodings for w, h in sizes}
    rounds: list[dict[str, dict[str, list[float]]]] = []
    for r in range(max(repeats, 1)):
        started = time.perf_counter()
        rounds.append({key: time_frame(model, frame, frames, warmup, encoder=True) for key, (frame, _) in cases.items()})
        print(f"round {r + 1}/{repeats}: {time.perf_counter() - started:.1f} s", flush=True)

    def ms(key: str, stage: str, q: float) -> dict[str, Any]:
        return spread([float(np.percentile(rnd[key][stage], q)) * 1e3 for rnd in rounds], 3)

    table = {}
    for key, (_, size) in cases.items():
        dims, encoding = key.split()
        width, height = map(int, dims.split("x"))
        table[key] = {
            "width": width, "height": height, "pixels": width * height, "encoding": encoding, "bytes": size,
            **{f"{stage}_ms": {"p50": ms(key, stage, 50), "p99": ms(key, stage, 99)} for stage in STAGES},
        }
    smallest = {e: f"{sizes[0][0]}x{sizes[0][1]} {e}" for e in encodings}
    growth = {
        key: spread([float(np.median(rnd[key]["on_image"]) / np.median(rnd[smallest[row["encoding"]]]["on_image"]))
                     for rnd in rounds])
        for key, row in table.items()
    }
    return {
        "config": {"frames": frames, "warmup": warmup, "repeats": repeats, "jpeg_quality": 90,
                   "scene": "lnn_ros_tools.synthetic.flight.frame_at (smooth gradients)"},
        "frames": table,
        "on_image_over_smallest": growth,
    }


def format_table(report: dict[str, Any]) -> str:
    lines = ["| image | format | bytes | preprocess ms p50 (p99) | encoder ms p50 | on_image ms p50 (p99) | rounds (on_image p50) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in report["frames"].values():
        pre, enc, total = row["preprocess_ms"], row["encoder_ms"], row["on_image_ms"]
        lines.append(f"| {row['width']}x{row['height']} | {row['encoding']} | {row['bytes']} "
                     f"| {pre['p50']['median']:.3f} ({pre['p99']['median']:.3f}) | {enc['p50']['median']:.3f} "
                     f"| {total['p50']['median']:.3f} ({total['p99']['median']:.3f}) "
                     f"| {total['p50']['min']:.3f}–{total['p50']['max']:.3f} |")
    return "\n".join(lines)


def plot(report: dict[str, Any], out: Path) -> Path:
    rows = list(report["frames"].values())
    encodings = list(dict.fromkeys(r["encoding"] for r in rows))
    panels = []
    for stage in ("preprocess", "on_image"):
        series = []
        for encoding in encodings:
            mine = [r for r in rows if r["encoding"] == encoding]
            figures = [r[f"{stage}_ms"]["p50"] for r in mine]
            series.append(Series(encoding, [r["pixels"] for r in mine], [f["median"] for f in figures],
                                 [f["min"] for f in figures], [f["max"] for f in figures]))
        encoder = [r["encoder_ms"]["p50"] for r in rows if r["encoding"] == encodings[0]]
        if stage == "on_image":
            series.append(Series("encoder alone", [r["pixels"] for r in rows if r["encoding"] == encodings[0]],
                                 [f["median"] for f in encoder], [f["min"] for f in encoder], [f["max"] for f in encoder]))
        ticks = [(r["pixels"], f"{r['width']}x{r['height']}") for r in rows if r["encoding"] == encodings[0]]
        panels.append(Panel(stage, "image size", "ms per frame (p50; bars: rounds)", series, ticks=ticks))
    figure = plot_panels(out, panels, "camera cost per frame, models/drone_cfc (64x48 encoder input)")
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="timed frames per size, format and round")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default %(default)s)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "drone_cfc")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "scaling" / "camera_size.json")
    args = parser.parse_args(argv)
    import PIL

    load_before = os.getloadavg()
    started = time.time()
    result = run(frames=args.frames, repeats=args.repeats, model=args.model)
    publish(
        args.out, result, benchmark="camera cost per frame against image size",
        command=command_line("camera_scaling", parser, args), load_before=load_before, started=started,
        packages=("onnxruntime", "numpy", "pillow"), plot=plot, table=format_table,
        model=shown_path(args.model), decoder=f"Pillow {PIL.__version__} (jpeg: libjpeg-turbo with DCT scaling)",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
