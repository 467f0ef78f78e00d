"""Simulator work fanned out over real worker processes gives exactly the serial results:
demonstrations, the expert's statistics, and the closed-loop table of a shipped bundle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lnn_ros.sim import SimConfig, generate_demonstrations, load_demonstration
from lnn_ros.sim.demo import shipped_model
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.evaluate import evaluate
from lnn_ros.sim.parallel import resolve_workers, run_jobs
from lnn_ros.sim.seeds import evaluation_seeds
from lnn_ros_examples.drone_policy.evaluate import closed_loop, success_table


def test_demonstrations_recorded_in_two_processes_equal_the_serial_ones(tmp_path: Path) -> None:
    config = SimConfig(duration_s=0.5)
    seen: list[int] = []
    serial = generate_demonstrations(tmp_path / "serial", 4, config, ["wind", "lighting"], first_seed=30, workers=1)
    parallel = generate_demonstrations(
        tmp_path / "parallel", 4, config, ["wind", "lighting"], first_seed=30, workers=2,
        progress=lambda index, result: seen.append(result.seed),
    )
    assert seen == [30, 31, 32, 33]  # reported here, in episode order
    for one, other in zip(serial, parallel):
        a, b = load_demonstration(one), load_demonstration(other)
        assert len(a.imu_stamp_ns) > 50 and len(a.images) > 5
        for name in a._fields:
            x, y = getattr(a, name), getattr(b, name)
            if isinstance(x, np.ndarray):
                assert np.array_equal(x, y), name
            else:
                assert x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)), name


def test_expert_statistics_are_the_same_in_parallel() -> None:
    config = SimConfig(duration_s=0.8)
    serial = evaluate(variants=["nominal", "wind"], seeds=range(2), config=config, workers=1)
    parallel = evaluate(variants=["nominal", "wind"], seeds=range(2), config=config, workers=2)
    assert [s.episodes for s in parallel] == [2, 2]
    assert repr(serial) == repr(parallel)  # NaN-safe exact comparison


def test_parallel_policy_evaluation_gives_the_serial_table() -> None:
    models = {"cfc": shipped_model("drone_cfc")}
    serial = closed_loop(models, ["nominal", "wind"], 2, duration_s=1.5, workers=1)
    parallel = closed_loop(models, ["nominal", "wind"], 2, duration_s=1.5, workers=2)
    assert parallel == serial and len(parallel) == 4
    assert [(o.variant, o.seed) for o in parallel] == [(v, s) for v in ("nominal", "wind") for s in evaluation_seeds(v, 2)]
    assert success_table(parallel) == success_table(serial)


def test_pool_errors_are_clear() -> None:
    with pytest.raises(SimError, match="workers must be >= 1"):
        resolve_workers(0)
    with pytest.raises(SimError, match="cannot be sent to a worker process"):
        evaluate(lambda sim: (lambda event: None), variants=["nominal"], seeds=[0], workers=2)
    with pytest.raises(SimError, match="cannot be sent to a worker process"):
        run_jobs(lambda job: job, [1, 2], workers=2)
    assert run_jobs(abs, [-1, 2, -3], workers=1) == [1, 2, 3]
