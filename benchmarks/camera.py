#!/usr/bin/env python3
"""What the declared camera preprocessing costs per frame format, without ROS.

Run (about a minute; writes ``results/bench_camera.json``)::

    python -m lnn_ros_benchmarks.camera

For each format, the same synthetic scene (``lnn_ros_tools.synthetic.flight.frame_at``: smooth
gradients, so jpeg sizes are camera-like) goes through the shipped ``models/drone_cfc``:

* ``preprocess_ms``: :meth:`ImageDecoder.decode` alone (decode jpeg / png, crop, resize,
  colour, normalise) -> the 64x48 encoder input;
* ``on_image_ms``: :meth:`PolicyRunner.on_image` (the same plus the encoder graph), what the
  node's camera callback costs before the next IMU step.

p50 / p99 over ``--frames`` frames after a warm-up, one thread. The machine is shared: its load
average is recorded next to the figures; compare formats within one run.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import time
from pathlib import Path

import numpy as np

from lnn_ros_benchmarks.report import shown_path, write_report

REPO = Path(__file__).resolve().parent.parent
FORMATS = (
    ("rgb8", 64, 48),
    ("bgr8", 640, 480),
    ("mono8", 752, 480),
    ("bgra8", 1280, 720),
    ("jpeg", 640, 480),
    ("jpeg", 1280, 720),
    ("png", 1280, 720),
)


def make_frame(encoding: str, width: int, height: int, stamp_ns: int) -> tuple[object, int]:
    """(ImageFrame, bytes on the wire) of the synthetic scene in ``encoding``."""
    from lnn_ros.runtime.records import ImageFrame
    from lnn_ros_tools.synthetic.flight import frame_at

    rgb = frame_at(stamp_ns, stamp_ns / 1e9, width, height).to_array()
    if encoding in ("jpeg", "png"):
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format=encoding.upper(), **({"quality": 90} if encoding == "jpeg" else {}))
        data = buffer.getvalue()
        return ImageFrame(stamp_ns, 0, 0, encoding, 0, data), len(data)
    if encoding == "bgr8":
        pixels = rgb[:, :, ::-1]
    elif encoding == "mono8":
        pixels = (rgb @ np.array([0.299, 0.587, 0.114]) + 0.5).astype(np.uint8)[:, :, None]
    elif encoding == "bgra8":
        pixels = np.concatenate([rgb[:, :, ::-1], np.full((height, width, 1), 255, np.uint8)], axis=2)
    else:
        pixels = rgb
    data = np.ascontiguousarray(pixels).tobytes()
    return ImageFrame(stamp_ns, height, width, encoding, width * pixels.shape[2], data), len(data)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p99": round(float(np.percentile(ms, 99)), 3),
            "max": round(float(ms.max()), 3)}


def time_frame(model: Path, frame: object, frames: int, warmup: int, encoder: bool = False) -> dict[str, list[float]]:
    """Seconds per call of ``frame`` through a fresh decoder and runner of ``model``, ``frames``
    times after ``warmup``: ``preprocess`` (:meth:`ImageDecoder.decode`), ``on_image``
    (:meth:`PolicyRunner.on_image`: the same plus the encoder) and with ``encoder`` also
    ``encoder`` (:meth:`Engine.encode` alone on the decoded image), each per frame in that order."""
    from lnn_ros.bundle import load_bundle
    from lnn_ros.runtime.factory import build_runner
    from lnn_ros.runtime.image import ImageDecoder

    loaded = load_bundle(model)
    assert loaded.manifest.camera is not None
    decoder = ImageDecoder(loaded.manifest.camera)
    runner = build_runner(loaded)
    samples: dict[str, list[float]] = {"preprocess": [], "on_image": [], **({"encoder": []} if encoder else {})}
    clock = time.perf_counter
    for i in range(warmup + frames):
        start = clock()
        result = decoder.decode(frame)  # type: ignore[arg-type]
        decoded = clock() - start
        assert result.image is not None, (frame.encoding, result.status)  # type: ignore[attr-defined]
        if encoder:
            start = clock()
            runner.engine.encode(result.image)
            encoded = clock() - start
        stamped = frame._replace(stamp_ns=1_000_000 + (i + 1) * 33_333_333)  # type: ignore[attr-defined]
        start = clock()
        runner.on_image(stamped)
        on_image = clock() - start
        if i >= warmup:
            samples["preprocess"].append(decoded)
            samples["on_image"].append(on_image)
            if encoder:
                samples["encoder"].append(encoded)
    assert runner.counters_dict().get("camera_encoded", 0) == warmup + frames
    return samples


def run(frames: int, warmup: int, model: Path) -> dict[str, object]:
    results: dict[str, object] = {}
    for encoding, width, height in FORMATS:
        frame, size = make_frame(encoding, width, height, 1_000_000)
        samples = time_frame(model, frame, frames, warmup)
        key = f"{width}x{height} {encoding}"
        results[key] = {
            "bytes": size,
            "preprocess_ms": percentiles(samples["preprocess"]),
            "on_image_ms": percentiles(samples["on_image"]),
        }
        print(f"{width}x{height} {encoding:6s} {size:>8d} B  preprocess p50 {results[key]['preprocess_ms']['p50']:.2f} ms"  # type: ignore[index]
              f"  on_image p50 {results[key]['on_image_ms']['p50']:.2f} ms", flush=True)  # type: ignore[index]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "drone_cfc")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_camera.json")
    args = parser.parse_args(argv)
    import PIL

    load_before = os.getloadavg()
    started = time.time()
    results = run(args.frames, args.warmup, args.model)
    report = {
        "command": "python -m lnn_ros_benchmarks.camera",
        "model": shown_path(args.model),
        "frames": args.frames,
        "decoder": f"Pillow {PIL.__version__} (jpeg: libjpeg-turbo with DCT scaling; png: zlib)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
                    "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in os.getloadavg()]},
        "wall_s": round(time.time() - started, 1),
        "formats": results,
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
