"""The simulator node's latency bookkeeping, flight files and the demo plot, without ROS."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lnn_ros.runtime.records import Command
from lnn_ros.sim import SimConfig, Simulator, run_closed_loop
from lnn_ros.sim.errors import SimError
from lnn_ros.sim.expert.expert import expert_controller
from lnn_ros.sim.plot import plot_flight
from lnn_ros.sim.ros.flight_log import (
    CommandArrival,
    LatencyLog,
    flight_record,
    flight_result,
    is_hover,
    load_record,
    node_hops,
    save_record,
    write_json,
)

MS = 1_000_000
START = 5_000 * MS  # wall clock of sim time 0


def command(stamp_ms: float, arrival_ms: float, twist: tuple[float, ...] = (0.5, 0.0, 0.0, 0.1)) -> CommandArrival:
    return CommandArrival(Command.heading(round(stamp_ms * MS), *twist), START + round(arrival_ms * MS), round(arrival_ms * MS))


def test_latency_deadlines_and_hover_commands_are_counted_as_documented() -> None:
    log = LatencyLog(START, real_time_factor=1.0)
    for k in range(6):  # IMU at 5, 10, ..., 30 ms of sim time, published 0.2 ms after their stamp
        log.imu_published((k + 1) * 5 * MS, START + (k + 1) * 5 * MS + 200_000)
    log.image_published(12 * MS, START + 12 * MS)
    log.command(command(0, 4))  # hover-shaped? no: stamp 0 was never published -> unmatched
    log.command(command(5, 6.2))  # 1.0 ms after publication
    log.command(command(10, 11.2, (0.0, 0.0, 0.0, 0.0)))  # failsafe hover: ignored even though the stamp matches
    log.command(command(15, 22.2))  # 7 ms: late for a 5 ms deadline
    log.command(command(15, 23.0))  # duplicate stamp: only the first arrival counts
    log.command(command(25, 25.7))  # 0.5 ms
    # 10 ms has only a hover command and 20, 30 ms never got one: lost.
    summary = log.summary(deadline_ms=5.0)
    assert summary["commands_received"] == 6
    assert summary["commands_matched"] == 3
    assert summary["hover_commands"] == 1
    assert summary["unmatched_commands"] == 2  # stamp 0 and the duplicate
    assert summary["latency_ms"]["samples"] == 3
    assert summary["latency_ms"]["max"] == pytest.approx(7.0)
    assert summary["latency_ms"]["p50"] == pytest.approx(1.0)
    assert summary["stamp_to_arrival_ms"]["max"] == pytest.approx(7.2)
    deadline = summary["deadline"]
    # Checked from the first matched arrival (6.2 ms) on: samples published at 10.2 ... 30.2 ms.
    assert (deadline["checked"], deadline["late"], deadline["lost"], deadline["missed"]) == (5, 1, 3, 4)
    assert summary["pacing_lag_ms"]["max"] == pytest.approx(0.2)
    np.testing.assert_allclose(sorted(log.latencies_ms()), [0.5, 1.0, 7.0])
    assert is_hover(np.array((0.0, -0.0, 0.0, 0.0))) and not is_hover(np.array((0.0, 0.0, 0.0, 1e-9)))


def test_no_command_means_nothing_is_checked() -> None:
    log = LatencyLog(START, 2.0)
    log.imu_published(10 * MS, START + 5 * MS)  # at 2x real time, 10 ms of sim time is 5 ms of wall time
    assert log.wall_of(10 * MS) == START + 5 * MS and log.sim_of(START + 5 * MS) == 10 * MS
    summary = log.summary(5.0)
    assert summary["deadline"]["checked"] == 0 and summary["deadline"]["missed_fraction"] is None
    assert summary["latency_ms"]["p50"] is None  # JSON null, not NaN


def test_flight_record_round_trip_and_plot(tmp_path: Path) -> None:
    sim = Simulator(dataclasses.replace(SimConfig(), duration_s=1.0), "nominal", 3)
    result = run_closed_loop(sim, expert_controller(sim))
    log = LatencyLog(START, 1.0)
    for k, stamp in enumerate((5 * MS, 10 * MS, 15 * MS)):
        log.imu_published(stamp, START + stamp)
        log.command(command(stamp / MS, stamp / MS + 0.3 * (k + 1)))
    record = flight_record(result, log, 1.0)
    path = save_record(tmp_path / "flight.npz", record)
    loaded = load_record(path)
    np.testing.assert_array_equal(loaded.position, result.trajectory.position)
    np.testing.assert_allclose(loaded.latency_ms, [0.3, 0.6, 0.9])
    assert loaded.success_radius_m == 1.0
    summary = {"seed": 3, "variant": "nominal", "flight": flight_result(result), **log.summary(5.0)}
    write_json(tmp_path / "summary.json", summary)
    png = plot_flight(loaded, summary, tmp_path / "plot" / "demo.png")
    assert png.stat().st_size > 10_000
    with pytest.raises(SimError, match="Cannot read flight record"):
        load_record(tmp_path / "summary.json")


def test_hops_split_the_latency_at_the_middleware_timestamps() -> None:
    log = LatencyLog(START, real_time_factor=1.0)
    log.imu_published(5 * MS, START + 5 * MS)
    log.imu_published(10 * MS, START + 10 * MS)
    # published at 5 ms; the node published at 5.8 ms; the simulator's middleware got it at 6.0 ms and its
    # callback ran at 9.0 ms (the simulator was busy): the latency counts to 6.0 ms, the pickup is apart.
    arrival = command(5, 6.0)
    log.command(arrival._replace(sent_wall_ns=START + round(5.8 * MS), handled_wall_ns=START + 9 * MS))
    arrival = command(10, 10.5)
    log.command(arrival._replace(sent_wall_ns=START + round(10.4 * MS), handled_wall_ns=START + round(10.6 * MS)))
    summary = log.summary(deadline_ms=5.0)
    hops = summary["hops"]
    assert hops["available"] and hops["commands"] == 2
    assert hops["sensor_to_node_publish"]["max"] == pytest.approx(0.8)
    assert hops["node_to_sim"]["max"] == pytest.approx(0.2)
    assert hops["sim_pickup"]["max"] == pytest.approx(3.0)
    assert summary["latency_ms"]["max"] == pytest.approx(1.0)


def test_without_message_info_the_hops_say_so() -> None:
    log = LatencyLog(START, real_time_factor=1.0)
    log.imu_published(5 * MS, START + 5 * MS)
    log.command(command(5, 6.0))
    hops = log.summary(deadline_ms=5.0)["hops"]
    assert hops["available"] is False and "message info" in hops["note"]


def test_node_hops_come_from_the_policy_nodes_last_report() -> None:
    values = {f"{key}.{name}": value for key, row in (("transport_latency_ms", ("0.210", "0.900", "2.000")),
              ("step_latency_ms", ("0.150", "0.400", "1.500"))) for name, value in zip(("p50", "p99", "max"), row)}
    hops = node_hops(values, "window")
    assert hops["sensor_to_node"] == {"p50": 0.21, "p99": 0.9, "max": 2.0, "source": "policy node /diagnostics transport_latency_ms, window"}
    assert hops["node_compute"]["p99"] == 0.4
    # the events executor (no message info): no transport hop, said so; no report at all: said so
    del values["transport_latency_ms.p50"]
    assert node_hops(values, "w")["sensor_to_node"] == {"available": False, "note": "its /diagnostics has no transport_latency_ms"}
    assert node_hops(None, "w")["node_compute"]["note"] == "no /diagnostics report from the policy node"
    assert node_hops({"step_latency_ms.p50": "nan", "step_latency_ms.p99": "x", "step_latency_ms.max": "1"}, "w")["node_compute"]["available"] is False
