"""Wirings: same matrices as ncps 1.0.1 for the same arguments, exact config round-trip, errors."""

import json

import numpy as np
import pytest
import yaml
from ncps import wirings as ncps_wirings

from lnn_ros.cells import NCP, AutoNCP, CellConfigError, FullyConnected, Wiring, wiring_from_config

WIRINGS = {
    "fc": (lambda: FullyConnected(7), lambda: ncps_wirings.FullyConnected(7), 4),
    "fc-out3-noself-seed5": (
        lambda: FullyConnected(9, 3, erev_init_seed=5, self_connections=False),
        lambda: ncps_wirings.FullyConnected(9, 3, erev_init_seed=5, self_connections=False),
        6,
    ),
    "ncp": (lambda: NCP(6, 4, 3, 3, 2, 4, 2, seed=7), lambda: ncps_wirings.NCP(6, 4, 3, 3, 2, 4, 2, seed=7), 5),
    # Seed 113 leaves a command neuron unreached, whose inter fan-in ncps clips by the command count.
    "ncp-fanin-clip": (
        lambda: NCP(6, 2, 2, 1, 1, 0, 1, seed=113), lambda: ncps_wirings.NCP(6, 2, 2, 1, 1, 0, 1, seed=113), 3
    ),
    "auto_ncp": (lambda: AutoNCP(16, 4), lambda: ncps_wirings.AutoNCP(16, 4), 5),
    "auto_ncp-sparse": (lambda: AutoNCP(32, 6, 0.8, seed=9), lambda: ncps_wirings.AutoNCP(32, 6, 0.8, seed=9), 11),
    "auto_ncp-dense": (lambda: AutoNCP(20, 2, 0.1, seed=4), lambda: ncps_wirings.AutoNCP(20, 2, 0.1, seed=4), 3),
}


def built(case: str) -> tuple[Wiring, "ncps_wirings.Wiring"]:
    make_ours, make_ncps, inputs = WIRINGS[case]
    ours, reference = make_ours(), make_ncps()
    ours.build(inputs)
    reference.build(inputs)
    return ours, reference


@pytest.mark.parametrize("case", sorted(WIRINGS))
def test_same_matrices_and_layers_as_ncps(case: str) -> None:
    ours, reference = built(case)
    np.testing.assert_array_equal(ours.adjacency_matrix, reference.adjacency_matrix)
    np.testing.assert_array_equal(ours.sensory_adjacency_matrix, reference.sensory_adjacency_matrix)
    assert (ours.units, ours.output_dim, ours.input_dim) == (reference.units, reference.output_dim, reference.input_dim)
    assert ours.num_layers == reference.num_layers
    for layer in range(ours.num_layers):
        assert ours.get_neurons_of_layer(layer) == list(reference.get_neurons_of_layer(layer))
    assert ours.synapse_count == reference.synapse_count > 0
    assert ours.sensory_synapse_count == reference.sensory_synapse_count > 0


@pytest.mark.parametrize("case", sorted(WIRINGS))
def test_config_round_trips_exactly_through_json_and_yaml(case: str) -> None:
    ours, _ = built(case)
    config = ours.to_config()
    for text_round_trip in (lambda c: json.loads(json.dumps(c)), lambda c: yaml.safe_load(yaml.safe_dump(c))):
        restored = wiring_from_config(text_round_trip(config))
        assert type(restored) is type(ours)
        assert restored.to_config() == config
        np.testing.assert_array_equal(restored.adjacency_matrix, ours.adjacency_matrix)
        np.testing.assert_array_equal(restored.sensory_adjacency_matrix, ours.sensory_adjacency_matrix)
        assert restored.layer_sizes == ours.layer_sizes


def test_unbuilt_round_trip_builds_the_same_sensory_synapses() -> None:
    original = FullyConnected(5, 2, erev_init_seed=3)
    restored = wiring_from_config(original.to_config())
    assert not restored.is_built() and restored.to_config()["sensory_adjacency_matrix"] is None
    original.build(4)
    restored.build(4)
    np.testing.assert_array_equal(restored.sensory_adjacency_matrix, original.sensory_adjacency_matrix)


def test_stored_matrices_win_over_the_seed() -> None:
    config = AutoNCP(12, 3).to_config() | {"input_dim": 4}
    wiring = wiring_from_config(config)
    edited = wiring.to_config()
    edited["adjacency_matrix"][0][1] = -1 if edited["adjacency_matrix"][0][1] != -1 else 1
    edited["sensory_adjacency_matrix"][3][5] = 0
    restored = wiring_from_config(edited)
    assert restored.to_config() == edited != wiring.to_config()


def test_build_is_idempotent_and_rejects_another_input_size() -> None:
    wiring = FullyConnected(6)
    wiring.build(3)
    first = wiring.sensory_adjacency_matrix.copy()
    wiring.build(3)  # ncps would draw new sensory synapses here
    np.testing.assert_array_equal(wiring.sensory_adjacency_matrix, first)
    with pytest.raises(CellConfigError, match="already built for 3 inputs"):
        wiring.build(4)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"kind": "random", "units": 4},
            r"Unknown wiring kind 'random'; valid kinds are \['auto_ncp', 'fully_connected', 'ncp'\]",
        ),
        ({"kind": "fully_connected", "units": 4, "fanout": 2}, "does not match kind 'fully_connected'"),
        ({"kind": "fully_connected", "units": 2, "adjacency_matrix": [[1, 0]]}, r"shape \(1, 2\), expected \(2, 2\)"),
        ({"kind": "fully_connected", "units": 1, "adjacency_matrix": [[2]]}, "only contain -1, 0 and"),
        ({"kind": "fully_connected", "units": 1, "sensory_adjacency_matrix": [[1]]}, "no input_dim"),
    ],
)
def test_bad_configs_raise_clear_errors(config: dict, message: str) -> None:
    with pytest.raises(CellConfigError, match=message):
        wiring_from_config(config)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AutoNCP(5, 3), "output_size must be less than units - 2"),
        (lambda: AutoNCP(10, 2, sparsity_level=0.05), "sparsity_level must be between 0.1 and 1.0"),
        (lambda: NCP(4, 2, 2, 5, 1, 1, 1), "sensory_fanout must be between 1 and inter_neurons=4"),
        (lambda: NCP(4, 2, 2, 2, 1, 1, 3), "motor_fanin must be between 1 and command_neurons=2"),
        (lambda: FullyConnected(4, output_dim=5), "output_dim must be between 1 and units=4"),
    ],
)
def test_bad_arguments_raise_clear_errors(make, message: str) -> None:
    with pytest.raises(CellConfigError, match=message):
        make()


def test_sensory_synapses_need_a_build() -> None:
    with pytest.raises(CellConfigError, match="after build"):
        FullyConnected(3).add_sensory_synapse(0, 0, 1)
