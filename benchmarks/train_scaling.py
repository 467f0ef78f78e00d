"""Speed-up of ``lnn-ros train`` on 2 processes (torchrun, gloo, DDP) over 1, on this machine.

For each workload the same training (same data, seed, epochs and *global* batch, so the same
optimizer steps) is run as:

* ``plain``      ``lnn-ros train`` without torchrun (one process, no process group);
* ``torchrun_1`` ``torchrun --nproc-per-node 1`` (the process group's own overhead);
* ``torchrun_2`` ``torchrun --nproc-per-node 2`` (each rank half of every batch, gradients
  all-reduced over gloo on loopback).

Two times are kept per run: ``train_s``, the fit itself as rank 0 measures it (the
``train_result.seconds`` of the checkpoint: windows, epochs, validation), and ``wall_s``, the
whole command (interpreter and torch start-up, rendezvous, data loading, checkpoint). Each
is the median over ``--repeats`` runs. Speed-up = time of ``plain`` / time of ``torchrun_2``.

The machine is shared and has few cores; the load average before and after is recorded so
the numbers can be read with that in mind. Regenerate with (about 10 minutes on 2 cores)::

    python -m lnn_ros_benchmarks.train_scaling            # writes results/train_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path("results/train_scaling.json")


@dataclass(frozen=True)
class Workload:
    name: str
    units: int
    batch_size: int
    sequences: int = 64
    steps: int = 256
    features: int = 6
    outputs: int = 4
    epochs: int = 3
    window_steps: int = 64
    tbptt_steps: int = 32
    stream: bool = False


WORKLOADS = (
    Workload("cfc32_batch16", units=32, batch_size=16),
    Workload("cfc128_batch64", units=128, batch_size=64),
    Workload("cfc32_batch16_streamed", units=32, batch_size=16, stream=True),
)
MODES = ("plain", "torchrun_1", "torchrun_2")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_data(workload: Workload, folder: Path) -> Path:
    """IMU-like sequences (6 features, 4 targets) in 8 shards, deterministic."""
    from lnn_ros.training.data import TimedSequence
    from lnn_ros.training.loaders import save_npz_sequences

    generator = np.random.default_rng(0)
    sequences = []
    for _ in range(workload.sequences):
        t = np.cumsum(generator.uniform(0.002, 0.008, workload.steps)).astype(np.float32)
        x = np.stack([np.sin(t * (k + 1)) + 0.1 * generator.standard_normal(workload.steps) for k in range(workload.features)], 1)
        y = np.tanh(x[:, : workload.outputs] - np.roll(x[:, : workload.outputs], 1, axis=0))
        dt_s = np.diff(t, prepend=t[0]).astype(np.float32)
        sequences.append(TimedSequence(x.astype(np.float32), dt_s, y.astype(np.float32)))
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(8):
        save_npz_sequences(folder / f"shard_{shard}.npz", sequences[shard::8])
    return folder


def _command(mode: str, workload: Workload, data: Path, out: Path) -> list[str]:
    train = ["train", str(data), "--out", str(out), "--cell", "cfc", "--units", str(workload.units)]
    train += ["--epochs", str(workload.epochs), "--batch-size", str(workload.batch_size), "--patience", "0"]
    train += ["--window-steps", str(workload.window_steps), "--tbptt-steps", str(workload.tbptt_steps)]
    train += ["--val-fraction", "0.25", "--no-progress", "--seed", "0"] + (["--stream"] if workload.stream else [])
    if mode == "plain":
        return [sys.executable, "-m", "lnn_ros.cli", *train]
    processes = mode.rsplit("_", 1)[1]
    return [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", processes,
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--local-addr", "127.0.0.1",
        "--max-restarts", "0", "-m", "lnn_ros.cli", *train,
    ]


def run_once(mode: str, workload: Workload, data: Path, scratch: Path) -> dict[str, float]:
    import yaml

    out = scratch / f"{workload.name}_{mode}_{time.monotonic_ns()}"
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    started = time.perf_counter()
    done = subprocess.run(_command(mode, workload, data, out), env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{mode} {workload.name} failed:\n{done.stderr[-3000:]}")
    result = yaml.safe_load((out / "checkpoint.yaml").read_text())["metadata"]["train_result"]
    return {"wall_s": wall, "train_s": float(result["seconds"]), "steps": result["optimizer_steps"],
            "final_train_loss": result["train_loss"][-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", default=None, help="comma-separated workload names")
    args = parser.parse_args(argv)
    chosen = [w for w in WORKLOADS if args.only is None or w.name in args.only.split(",")]
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for workload in chosen:
            data = write_data(workload, scratch / workload.name)
            runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
            for _ in range(args.repeats):
                for mode in MODES:  # interleaved, so a burst of load hits every mode alike
                    runs[mode].append(run_once(mode, workload, data, scratch))
            summary = {
                mode: {
                    "train_s": round(statistics.median(r["train_s"] for r in results), 3),
                    "wall_s": round(statistics.median(r["wall_s"] for r in results), 3),
                    "train_s_runs": [round(r["train_s"], 3) for r in results],
                    "optimizer_steps": results[0]["steps"],
                    "final_train_loss": results[0]["final_train_loss"],
                }
                for mode, results in runs.items()
            }
            speedup = {
                key: round(summary["plain"][key] / summary["torchrun_2"][key], 3) for key in ("train_s", "wall_s")
            }
            rows.append({"workload": asdict(workload), "modes": summary, "speedup_2_vs_plain": speedup})
            print(f"{workload.name:24s} train s: plain {summary['plain']['train_s']:.2f}, torchrun 1 "
                  f"{summary['torchrun_1']['train_s']:.2f}, torchrun 2 {summary['torchrun_2']['train_s']:.2f} "
                  f"-> speed-up {speedup['train_s']:.2f} (wall {speedup['wall_s']:.2f})", flush=True)
    import torch

    report = {
        "command": "python -m lnn_ros_benchmarks.train_scaling" + (f" --repeats {args.repeats}" if args.repeats != 3 else ""),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in os.getloadavg()]},
        "notes": "Same data, seed, epochs and global batch in every mode (same optimizer steps). train_s: the fit as "
                 "rank 0 times it; wall_s: the whole command incl. start-up. Medians over repeats; shared machine.",
        "workloads": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
