"""``lnn-ros train`` under torchrun: real processes, real gloo over loopback, real DDP.

* two gloo processes take the same steps as one process on the same global batch;
* a rank that is killed makes the run fail in bounded time with torchrun naming the rank;
* a corrupt shard read by one rank stops the whole run with one line naming the shard.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lnn_ros.cells import build_cell
from lnn_ros.cli import main
from lnn_ros.training.checkpoint import load_checkpoint
from lnn_ros.training.data import TimedSequence
from lnn_ros.training.loaders import save_npz_sequences

RUN_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def torchrun_command(processes: int, *lnn_ros_args: str) -> list[str]:
    """torchrun on loopback only: c10d rendezvous on a free 127.0.0.1 port, one machine."""
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1", "--nproc-per-node", str(processes),
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}",
        "--local-addr", "127.0.0.1", "--max-restarts", "0", "--monitor-interval", "0.2",
        "-m", "lnn_ros.cli", *lnn_ros_args,
    ]


def loopback_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    return env


def sequences(count: int, length: int = 24, seed: int = 0) -> list[TimedSequence]:
    generator = np.random.default_rng(seed)
    result = []
    for _ in range(count):
        x = generator.standard_normal((length, 3)).astype(np.float32) * 2.0 + 0.5
        dt_s = generator.uniform(0.01, 0.1, length).astype(np.float32)
        result.append(TimedSequence(x, dt_s, np.tanh(x[:, :2] - x[:, 2:])))
    return result


# A high learning rate with patience 1 stops early (after epoch 4 of 8, best epoch 3): the ranks
# must agree on validation, on stopping and on the best weights.
TRAIN_ARGS = [
    "--cell", "cfc", "--units", "6", "--epochs", "8", "--batch-size", "8", "--window-steps", "12",
    "--tbptt-steps", "6", "--burn-in-steps", "2", "--val-fraction", "0.25", "--patience", "1", "--lr", "0.05",
    "--no-progress", "--seed", "5",
]


def test_two_gloo_processes_take_the_same_steps_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Sequences of unequal length: padded windows give ranks different mask weights, which
    # the loss scaling must account for. 16 training sequences of 24 steps -> 32 windows.
    data = sequences(20, length=24)
    data += [TimedSequence(s.x[:17], s.dt_s[:17], s.y[:17]) for s in sequences(4, seed=1)]
    path = save_npz_sequences(tmp_path / "train.npz", data)
    assert main(["train", str(path), "--out", str(tmp_path / "one"), *TRAIN_ARGS]) == 0
    capsys.readouterr()
    run = subprocess.run(
        torchrun_command(2, "train", str(path), "--out", str(tmp_path / "two"), *TRAIN_ARGS),
        env=loopback_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("wrote checkpoint") == 1  # rank 0 alone logs and writes
    assert "on 2 processes (gloo)" in run.stdout
    one, two = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert two.metadata["processes"] == 2 and one.metadata["processes"] == 1
    one_result, two_result = one.metadata["train_result"], two.metadata["train_result"]
    assert one_result["stopped_early"] and one_result["epochs_run"] < 8
    for key in ("optimizer_steps", "epochs_run", "best_epoch", "stopped_early"):
        assert one_result[key] == two_result[key], key
    one_state, two_state = one.cell.state_dict(), two.cell.state_dict()
    assert one_state.keys() == two_state.keys()
    for name in one_state:
        assert torch.allclose(one_state[name], two_state[name], rtol=0.0, atol=1e-6), (name, float((one_state[name] - two_state[name]).abs().max()))
    # The weights moved well away from their initial values, so the comparison says something.
    torch.manual_seed(5)
    initial = build_cell(one.cell.config()).state_dict()
    assert max(float((one_state[n] - initial[n]).abs().max()) for n in initial) > 1e-2
    np.testing.assert_allclose(one_result["val_loss"], two_result["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(one_result["train_loss"], two_result["train_loss"], rtol=1e-5)


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of the worker with ``RANK=rank`` among the children of torchrun's process ``parent``."""
    children = Path(f"/proc/{parent}/task/{parent}/children")
    if not children.exists():
        return None
    for pid in children.read_text().split():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    return None


def test_a_killed_rank_fails_the_run_without_a_hang(tmp_path: Path) -> None:
    path = save_npz_sequences(tmp_path / "train.npz", sequences(32, length=48))
    log = tmp_path / "torchrun.log"
    args = ["train", str(path), "--out", str(tmp_path / "ckpt"), "--epochs", "100000", "--patience", "0"]
    args += ["--units", "6", "--window-steps", "12", "--tbptt-steps", "6", "--batch-size", "4", "--no-progress"]
    with log.open("w") as output:
        process = subprocess.Popen(torchrun_command(2, *args), env=loopback_env(), stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            victim = None
            while victim is None and time.monotonic() < deadline and process.poll() is None:
                victim = _rank_pid(process.pid, 1)
                time.sleep(0.2)
            assert victim is not None, log.read_text()[-3000:]
            time.sleep(6.0)  # well into training (imports and rendezvous take a few seconds)
            assert process.poll() is None, log.read_text()[-3000:]
            os.kill(victim, signal.SIGKILL)
            started = time.monotonic()
            returncode = process.wait(timeout=RUN_TIMEOUT_S)
            failed_after = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text()
    assert returncode != 0
    assert failed_after < 60, failed_after
    assert "local_rank: 1" in text and "SIGKILL" in text, text[-3000:]
    assert not (tmp_path / "ckpt").exists()


def test_a_corrupt_shard_on_one_rank_stops_every_rank_naming_it(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    for i, part in enumerate(np.array_split(np.arange(8), 4)):
        data = sequences(8, seed=i)
        save_npz_sequences(shards / f"flight_{i}.npz", [data[j] for j in range(len(part))])
    (shards / "flight_2.npz").write_bytes(b"PK\x03\x04 truncated by a full disk")
    args = ["train", str(shards), "--stream", "--val-fraction", "0", "--out", str(tmp_path / "ckpt")]
    args += ["--units", "4", "--window-steps", "8", "--tbptt-steps", "8", "--batch-size", "2", "--no-progress"]
    run = subprocess.run(torchrun_command(2, *args), env=loopback_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("lnn-ros train: error:")]
    assert len(errors) == 2, run.stderr[-3000:]  # one line per rank, no worker traceback
    assert sum("flight_2.npz" in line and "cannot read" in line for line in errors) == 1, errors
    assert sum("rank 1 of 2 lost another training process" in line for line in errors) == 1, errors
    assert "[rank0]: Traceback" not in run.stderr and "[rank1]: Traceback" not in run.stderr
    assert not (tmp_path / "ckpt").exists()


def test_two_ranks_stream_uneven_shards_with_worker_processes(tmp_path: Path) -> None:
    # Shards of 1..5 sequences: the ranks' windows differ in number; the epoch must end for
    # both when one runs out instead of leaving the other waiting in an all-reduce.
    shards = tmp_path / "shards"
    for i in range(5):
        save_npz_sequences(shards / f"flight_{i}.npz", sequences(1 + i, seed=i))
    args = ["train", str(shards), "--stream", "--workers", "1", "--val-fraction", "0.2", "--out", str(tmp_path / "ckpt")]
    args += ["--units", "4", "--epochs", "3", "--window-steps", "8", "--tbptt-steps", "8", "--batch-size", "4", "--no-progress"]
    run = subprocess.run(torchrun_command(2, *args), env=loopback_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-3000:]
    checkpoint = load_checkpoint(tmp_path / "ckpt")
    assert checkpoint.metadata["streamed"] and checkpoint.metadata["processes"] == 2
    result = checkpoint.metadata["train_result"]
    assert result["epochs_run"] == 3 and result["optimizer_steps"] >= 3 and len(result["val_loss"]) == 3


def test_ranks_leave_together_only_after_a_normal_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """session(): a barrier before destroy_process_group when the block ends normally (no rank tears
    gloo down while another still works), none after an error (a peer may be gone)."""
    from lnn_ros.training import distributed

    calls: list[str] = []
    context = distributed.DistContext(rank=1, world_size=2, backend="gloo")
    monkeypatch.setattr(distributed, "start", lambda *args: context)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    with distributed.session():
        calls.append("train")
    assert calls == ["train", "barrier", "destroy"]
    calls.clear()
    with pytest.raises(RuntimeError, match="lost a peer"), distributed.session():
        raise RuntimeError("lost a peer")
    assert calls == ["destroy"]
