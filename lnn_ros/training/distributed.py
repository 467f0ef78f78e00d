"""One training process among several: torch.distributed set up from torchrun's environment.

``torchrun`` (shipped with torch) starts one process per rank and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. :func:`start` reads them,
joins the process group (gloo on CPU, NCCL on CUDA, or the backend asked for) and returns a
:class:`DistContext`; without torchrun it returns the single-process context and touches no
network. The collectives used by the trainer (sums of losses and mask weights, the broadcast
of the stop decision) are torch.distributed's own; gradients are all-reduced by
:class:`~torch.nn.parallel.DistributedDataParallel`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from lnn_ros.training.errors import TrainingError

BACKENDS = ("gloo", "nccl")
DEFAULT_TIMEOUT_S = 300.0
_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands.

    Attributes:
        rank: Global rank (0 writes checkpoints and logs).
        world_size: Number of training processes.
        local_rank: Rank on this machine (selects the GPU).
        device: Device the model and batches live on.
        backend: The process group's backend, or None when not distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over ranks of a float64 tensor (the tensor itself when alone)."""
        if not self.distributed:
            return values
        reduced = values.to(self.device)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced.cpu()

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (a broadcast; so ranks never disagree about stopping)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1 if flag else 0], dtype=torch.int64, device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher setting its variables) started this process."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def _device(requested: str | None, local_rank: int, distributed: bool) -> torch.device:
    if requested in (None, "auto"):
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {requested!r} asked for CUDA but torch {torch.__version__} sees no GPU; use --device cpu.")
        return torch.device("cuda", local_rank) if distributed and requested == "cuda" else torch.device(requested)
    raise TrainingError(f"Unknown device {requested!r}; use cpu, cuda, cuda:N or auto.")


def start(backend: str | None = None, device: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> DistContext:
    """Join torchrun's process group, or return the single-process context without torchrun.

    Args:
        backend: ``gloo`` or ``nccl`` (default: NCCL when the device is CUDA, else gloo).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``/None (CUDA when available); under
            torchrun ``cuda`` means ``cuda:LOCAL_RANK``.
        timeout_s: A collective that waits longer than this fails instead of hanging (a peer
            that died without its connection closing, e.g. a lost machine).

    Raises:
        TrainingError: a bad backend/device, torchrun variables that do not parse, or a
            process group that cannot be joined.
    """
    if backend is not None and backend not in BACKENDS:
        raise TrainingError(f"Unknown distributed backend {backend!r}; use one of {list(BACKENDS)}.")
    if not timeout_s > 0:
        raise TrainingError(f"The distributed timeout must be > 0 s, got {timeout_s!r}.")
    if not launched_by_torchrun():
        return DistContext(device=_device(device, 0, distributed=False))
    missing = [name for name in _TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise TrainingError(f"Started with WORLD_SIZE/RANK but without {missing}; launch with torchrun.")
    try:
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ["LOCAL_RANK"])
    except ValueError as exc:
        raise TrainingError(f"torchrun's RANK/WORLD_SIZE/LOCAL_RANK are not integers ({exc}).") from None
    chosen_device = _device(device, local_rank, distributed=True)
    chosen = backend or ("nccl" if chosen_device.type == "cuda" else "gloo")
    if chosen == "nccl" and chosen_device.type != "cuda":
        raise TrainingError("The nccl backend needs CUDA devices; use --backend gloo on CPU.")
    if chosen_device.type == "cuda":
        torch.cuda.set_device(chosen_device)
    if not dist.is_available():
        raise TrainingError(f"This torch build ({torch.__version__}) has no torch.distributed.")
    try:
        dist.init_process_group(
            backend=chosen,
            init_method="env://",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
            device_id=chosen_device if chosen == "nccl" else None,
        )
    except (RuntimeError, ValueError) as exc:
        raise TrainingError(
            f"Rank {rank}/{world_size} cannot join the {chosen} process group at "
            f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} ({exc})."
        ) from None
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen_device, backend=chosen)


def stop(context: DistContext, together: bool = False) -> None:
    """Leave the process group (a no-op for the single-process context).

    ``together``: first wait for every rank to get here (a barrier), so that no rank tears its
    gloo pairs down while another still works (rank 0 saving the model): without it a rank
    aborted in gloo's teardown ("terminate called without an active exception", SIGABRT) in
    about 1 of 10 two-process runs here. Only on a normal exit: after an error a peer may be
    gone, and the barrier would wait for it until the timeout.
    """
    if context.distributed and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def session(backend: str | None = None, device: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[DistContext]:
    """:func:`start` ... :func:`stop` as a ``with`` block (the ranks leave together when the block ends normally)."""
    context = start(backend, device, timeout_s)
    try:
        yield context
    except BaseException:
        stop(context)
        raise
    stop(context, together=True)
