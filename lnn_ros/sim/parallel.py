"""Simulator episodes fanned out over processes on one machine.

Every episode depends only on its job (seed, variant, settings), so flying the jobs in a pool
of processes gives exactly the results of flying them one after another; :func:`run_jobs`
returns them in job order either way. The pool is sized to the cores this process may use,
and its workers are fresh interpreters (``spawn``), safe whatever threads the caller runs.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from lnn_ros.sim.errors import SimError

Job = TypeVar("Job")
Result = TypeVar("Result")


def default_workers() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | None) -> int:
    """``workers``, or one per core when None.

    Raises:
        SimError: ``workers`` < 1.
    """
    if workers is None:
        return default_workers()
    if workers < 1:
        raise SimError(f"workers must be >= 1 (or None for one per core), got {workers!r}.")
    return workers


def check_picklable(value: object, what: str) -> None:
    """Raise a clear error when ``value`` cannot be sent to a worker process.

    Raises:
        SimError: naming ``what`` and how to fix it.
    """
    try:
        pickle.dumps(value)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise SimError(
            f"{what} {value!r} cannot be sent to a worker process ({exc}); use a module-level function or a "
            "functools.partial of one, or pass workers=1."
        ) from None


def run_jobs(
    function: Callable[[Job], Result],
    jobs: Sequence[Job],
    workers: int | None = None,
    on_result: Callable[[int, Result], None] | None = None,
) -> list[Result]:
    """``[function(job) for job in jobs]``, in ``workers`` processes (None: one per core).

    With one worker (or one job) the jobs run in this process. ``on_result(index, result)`` is
    called here, in job order, as results come in. A job's exception is raised here.
    """
    count = min(resolve_workers(workers), len(jobs))
    results: list[Result] = []
    if count <= 1:
        for index, job in enumerate(jobs):
            results.append(function(job))
            if on_result is not None:
                on_result(index, results[-1])
        return results
    check_picklable(function, "The job function")
    with ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn")) as pool:
        for index, result in enumerate(pool.map(function, jobs)):
            results.append(result)
            if on_result is not None:
                on_result(index, result)
    return results
