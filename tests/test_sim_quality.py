"""The strict success rule, the statistics of the table, and the training / evaluation seed split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lnn_ros.sim.errors import SimError
from lnn_ros.sim.quality import MIN_FINAL_HOLD_S, TARGET_REGION_M, flight_quality
from lnn_ros.sim.seeds import (
    EVALUATION_SEEDS,
    TRAINING_SEEDS,
    check_evaluation_seeds,
    check_training_seeds,
    evaluation_seeds,
)
from lnn_ros.sim.stats import mcnemar, wilson_interval
from lnn_ros.sim.world.config import ScenarioVariant
from lnn_ros.sim.world.episode import EpisodeResult, Trajectory

TARGET = np.array([5.0, 0.0, 1.0])


def _result(distances: list[float], dt_s: float = 0.5, crashed: bool = False) -> EpisodeResult:
    """An episode whose distance to the target follows ``distances`` (one per step of ``dt_s``)."""
    n = len(distances)
    position = TARGET - np.array([[d, 0.0, 0.0] for d in distances])
    commands = np.zeros((n, 4))
    commands[:, 0] = np.linspace(1.0, 0.0, n)
    trajectory = Trajectory(np.arange(n) * dt_s, position, np.zeros((n, 3)), np.zeros(n), commands)
    return EpisodeResult(
        seed=1_000_001, variant=ScenarioVariant.NOMINAL, target_position=TARGET, start_position=position[0],
        reached=False, time_to_reach_s=None, crashed=crashed, crash_reason="hit the target" if crashed else None,
        final_distance_m=distances[-1], min_distance_m=min(distances), duration_s=(n - 1) * dt_s,
        imu_delivered=0, imu_dropped=0, images_delivered=0, images_dropped=0, commands_received=0,
        command_timeouts=0, trajectory=trajectory,
    )  # fmt: skip


def test_reaching_and_staying_to_the_end_is_a_success_with_its_arrival_time() -> None:
    quality = flight_quality(_result([4, 3, 2, 0.9, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7]))
    assert quality.success and not quality.crashed
    assert quality.time_to_reach_s == pytest.approx(1.5)
    assert quality.final_distance_m == pytest.approx(0.7)
    assert quality.mean_speed_command_mps > 0


def test_reaching_then_leaving_fails_even_if_it_held_for_a_while() -> None:
    quality = flight_quality(_result([4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.5, 2.5, 3.0]))
    assert not quality.success and quality.time_to_reach_s is None
    assert quality.min_distance_m == pytest.approx(0.5)


def test_one_exit_restarts_the_hold_and_a_late_arrival_fails() -> None:
    # In, out once, back in for only 1.5 s before the end: not held long enough.
    assert not flight_quality(_result([0.5, 0.5, 0.5, 0.5, 0.5, 1.2, 0.5, 0.5, 0.5, 0.5])).success
    # Back in for exactly the minimum hold: success.
    steps = int(MIN_FINAL_HOLD_S / 0.5)
    assert flight_quality(_result([3.0] * 4 + [0.5] * (steps + 1))).success


def test_a_crash_is_never_a_success() -> None:
    quality = flight_quality(_result([2, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], crashed=True))
    assert not quality.success and quality.crashed and quality.time_to_reach_s is None


def test_the_region_boundary_is_inclusive() -> None:
    assert flight_quality(_result([TARGET_REGION_M] * 6)).success
    assert not flight_quality(_result([TARGET_REGION_M + 1e-6] * 6)).success


def test_wilson_interval_matches_published_values() -> None:
    low, high = wilson_interval(20, 20)
    assert low == pytest.approx(0.8389, abs=1e-4) and high == 1.0
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(0.1611, abs=1e-4)
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_mcnemar_counts_discordant_pairs_and_gives_the_exact_p() -> None:
    a = [True] * 8 + [False] * 2 + [True] * 10
    b = [False] * 8 + [False] * 2 + [True] * 10
    test = mcnemar(a, b)
    assert (test.only_a, test.only_b) == (8, 0)
    assert test.p_value == pytest.approx(2 / 2**8)
    assert mcnemar(b, a).p_value == test.p_value
    assert mcnemar(a, a).p_value == 1.0
    # 3 vs 1 discordant: p = 2 * (1 + 4) / 16 = 0.625
    assert mcnemar([True, True, True, False], [False, False, False, True]).p_value == pytest.approx(0.625)
    with pytest.raises(ValueError, match="one entry per episode"):
        mcnemar([True], [True, False])


def test_evaluation_seeds_are_disjoint_from_training_and_independent_per_condition() -> None:
    nominal = evaluation_seeds("nominal", 200)
    assert nominal == evaluation_seeds("nominal", 200)  # the same every run
    assert len(set(nominal)) == 200
    assert all(s in EVALUATION_SEEDS and s not in TRAINING_SEEDS for s in nominal)
    assert not set(nominal) & set(evaluation_seeds("far", 200))
    assert evaluation_seeds("nominal", 5) == nominal[:5]
    with pytest.raises(SimError, match="count >= 1"):
        evaluation_seeds("nominal", 0)


def test_training_and_evaluation_refuse_each_others_seeds() -> None:
    check_training_seeds(range(10))
    check_evaluation_seeds(evaluation_seeds("wind", 3))
    with pytest.raises(SimError, match="reserved for evaluation"):
        check_training_seeds([3, EVALUATION_SEEDS.start])
    with pytest.raises(SimError, match="could have been a training seed"):
        check_evaluation_seeds([12])


def test_the_recipe_refuses_demonstration_seeds_in_the_evaluation_range(tmp_path: object) -> None:
    from lnn_ros_examples.drone_policy import recipe

    config = recipe.RecipeConfig(work_dir=tmp_path, expert_episodes=2, noisy_episodes=1)  # type: ignore[arg-type]
    jobs = recipe.demo_jobs(config)
    assert {job.variant for job in jobs} == {"nominal", "far"}
    shifted = dataclasses.replace(config)
    original = recipe.NOISY_FIRST_SEED
    try:
        recipe.NOISY_FIRST_SEED = EVALUATION_SEEDS.start
        with pytest.raises(SimError, match="reserved for evaluation"):
            recipe.demo_jobs(shifted)
    finally:
        recipe.NOISY_FIRST_SEED = original


def test_the_evaluation_pairs_rows_on_the_same_episodes_per_condition() -> None:
    from lnn_ros_examples.drone_policy.evaluate import closed_loop, paired_tests, success_table

    outcomes = closed_loop({"a": None, "b": None}, ["nominal", "far"], episodes=2, duration_s=0.3, workers=1)
    seeds = {(o.model, o.variant): [] for o in outcomes}
    for o in outcomes:
        seeds[o.model, o.variant].append(o.seed)
    assert seeds["a", "nominal"] == seeds["b", "nominal"] == evaluation_seeds("nominal", 2)
    assert seeds["a", "far"] == evaluation_seeds("far", 2)
    table = success_table(outcomes)
    assert table["a"]["nominal"]["episodes"] == 2 and table["a"]["nominal"]["successes"] == 0  # 0.3 s cannot hold 2 s
    assert table["a"]["nominal"]["ci95"][0] == 0.0
    paired = paired_tests(outcomes, "a")
    assert paired["far"]["b"]["p_value"] == 1.0


def test_reports_of_rows_flown_separately_merge_into_the_same_table() -> None:
    from lnn_ros.sim.demo import shipped_model
    from lnn_ros_examples.drone_policy.evaluate import evaluate_policies, markdown, merge_reports

    quiet = {"duration_s": 0.3, "offline_episodes": 0, "workers": 1, "log": lambda _line: None}
    first = evaluate_policies({"a": shipped_model("drone_stack_mlp")}, variants=["nominal", "far"], episodes=2, **quiet)
    later = evaluate_policies(
        {"b": shipped_model("drone_gru")}, variants=["far"], episodes=2, with_expert=False, **quiet
    )
    merged = merge_reports([first, later])
    assert set(merged["closed_loop"]) == {"a", "expert", "b"}
    assert set(merged["closed_loop"]["b"]) == {"far"}
    assert set(merged["paired"]["far"]) == {"b", "expert"} and "b" not in merged["paired"]["nominal"]
    assert "| b | – |" in markdown(merged)
    with pytest.raises(SimError, match="same episodes"):
        merge_reports([first, {**later, "episodes": 3}])
    with pytest.raises(SimError, match="not share rows"):
        merge_reports([first, first])
