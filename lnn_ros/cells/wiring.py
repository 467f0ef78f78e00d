"""Wirings: which neuron may talk to which, for wired CfC and LTC cells.

A wiring of ``units`` neurons holds an ``adjacency_matrix`` [units, units] and, after
``build(input_dim)``, a ``sensory_adjacency_matrix`` [input_dim, units]. Entries are the synapse
polarity: 0 (no synapse), +1 (excitatory) or -1 (inhibitory); ``[src, dest]`` order. Neurons
``0 .. output_dim-1`` are the motor (output) neurons.

The generators draw exactly the same random numbers in the same order as ``ncps.wirings`` 1.0.1, so
the same arguments and seed give the same matrices. Two deliberate differences:

* ``build(input_dim)`` is idempotent: building again with the same input size changes nothing
  (ncps draws a fresh set of sensory synapses on every call).
* :meth:`Wiring.to_config` / :func:`wiring_from_config` round-trip exactly, matrices included
  (ncps's NCP config does not rebuild an NCP at all).
"""

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from lnn_ros.cells.errors import CellConfigError

_POLARITIES = (-1, 1)


class Wiring:
    """Base class: neurons, synapses, layers. Subclasses generate the synapses.

    Attributes:
        kind: Registry name used in :meth:`to_config`.
        units: Number of neurons (= state size of a cell using this wiring).
        output_dim: Number of motor neurons (ids ``0 .. output_dim-1``).
        input_dim: Number of sensory inputs, None until :meth:`build`.
        adjacency_matrix: int32 [units, units], polarity of neuron -> neuron synapses.
        sensory_adjacency_matrix: int32 [input_dim, units] after :meth:`build`, else None.
    """

    kind: ClassVar[str] = ""

    def __init__(self, units: int, output_dim: int) -> None:
        if units < 1:
            raise CellConfigError(f"A wiring needs at least 1 neuron, got units={units!r}.")
        if not 1 <= output_dim <= units:
            raise CellConfigError(f"output_dim must be between 1 and units={units}, got {output_dim!r}.")
        self.units = units
        self.output_dim = output_dim
        self.input_dim: int | None = None
        self.adjacency_matrix = np.zeros((units, units), dtype=np.int32)
        self.sensory_adjacency_matrix: np.ndarray | None = None

    # --- structure -------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Number of layers a wired CfC splits the neurons into."""
        return 1

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        """Neuron ids of one layer (in the order they sit in the hidden state)."""
        if layer_id != 0:
            raise CellConfigError(f"{type(self).__name__} has a single layer 0, got layer_id={layer_id!r}.")
        return list(range(self.units))

    @property
    def layer_sizes(self) -> list[int]:
        """Neurons per layer, in layer order."""
        return [len(self.get_neurons_of_layer(layer)) for layer in range(self.num_layers)]

    @property
    def synapse_count(self) -> int:
        """Number of neuron -> neuron synapses."""
        return int(np.sum(np.abs(self.adjacency_matrix)))

    @property
    def sensory_synapse_count(self) -> int:
        """Number of input -> neuron synapses (0 before :meth:`build`)."""
        if self.sensory_adjacency_matrix is None:
            return 0
        return int(np.sum(np.abs(self.sensory_adjacency_matrix)))

    def is_built(self) -> bool:
        """Whether :meth:`build` has fixed the input size and sensory synapses."""
        return self.input_dim is not None

    def build(self, input_dim: int) -> None:
        """Fix the number of inputs and draw the sensory synapses (idempotent for the same size).

        Raises:
            CellConfigError: Already built for another input size, or ``input_dim < 1``.
        """
        if self.input_dim is not None:
            if self.input_dim != input_dim:
                raise CellConfigError(
                    f"This {type(self).__name__} wiring is already built for {self.input_dim} inputs and "
                    f"cannot be rebuilt for input_dim={input_dim!r}; create a new wiring."
                )
            return
        if input_dim < 1:
            raise CellConfigError(f"input_dim must be at least 1, got {input_dim!r}.")
        self.input_dim = input_dim
        self.sensory_adjacency_matrix = np.zeros((input_dim, self.units), dtype=np.int32)
        self._build_synapses()

    def _build_synapses(self) -> None:
        """Draw the synapses that depend on the input size (called once by :meth:`build`)."""

    def add_synapse(self, src: int, dest: int, polarity: int) -> None:
        """Set the neuron -> neuron synapse ``src -> dest`` to ``polarity`` (+1 or -1)."""
        self._check_neuron(dest)
        self._check_neuron(src)
        self._check_polarity(polarity)
        self.adjacency_matrix[src, dest] = polarity

    def add_sensory_synapse(self, src: int, dest: int, polarity: int) -> None:
        """Set the input -> neuron synapse ``src -> dest`` to ``polarity`` (+1 or -1)."""
        if self.input_dim is None or self.sensory_adjacency_matrix is None:
            raise CellConfigError("Sensory synapses can only be added after build(input_dim).")
        if not 0 <= src < self.input_dim:
            raise CellConfigError(f"Sensory synapse source {src!r} is not one of the {self.input_dim} inputs.")
        self._check_neuron(dest)
        self._check_polarity(polarity)
        self.sensory_adjacency_matrix[src, dest] = polarity

    def _check_neuron(self, neuron: int) -> None:
        if not 0 <= neuron < self.units:
            raise CellConfigError(f"Neuron {neuron!r} does not exist in a wiring of {self.units} units.")

    @staticmethod
    def _check_polarity(polarity: int) -> None:
        if polarity not in _POLARITIES:
            raise CellConfigError(f"Synapse polarity must be -1 or +1, got {polarity!r}.")

    # --- initial reversal potentials (used by LTC) ----------------------------------------------------
    def erev_initializer(self) -> np.ndarray:
        """Initial neuron -> neuron reversal potentials: the polarity matrix."""
        return np.copy(self.adjacency_matrix)

    def sensory_erev_initializer(self) -> np.ndarray:
        """Initial input -> neuron reversal potentials: the sensory polarity matrix."""
        if self.sensory_adjacency_matrix is None:
            raise CellConfigError("The wiring must be built (build(input_dim)) before reading sensory synapses.")
        return np.copy(self.sensory_adjacency_matrix)

    # --- config ----------------------------------------------------------------------------------------
    def arguments(self) -> dict[str, Any]:
        """Constructor arguments of this wiring (plain Python values)."""
        raise NotImplementedError(f"{type(self).__name__} does not define its constructor arguments.")

    def to_config(self) -> dict[str, Any]:
        """Plain serialisable config: kind, constructor arguments, input size and both matrices.

        :func:`wiring_from_config` turns it back into an equal wiring (same matrices, same build state).
        """
        sensory = self.sensory_adjacency_matrix
        return {
            "kind": self.kind,
            **self.arguments(),
            "input_dim": self.input_dim,
            "adjacency_matrix": self.adjacency_matrix.tolist(),
            "sensory_adjacency_matrix": None if sensory is None else sensory.tolist(),
        }

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.arguments().items())
        return f"{type(self).__name__}({arguments}, input_dim={self.input_dim})"


class FullyConnected(Wiring):
    """Every neuron talks to every neuron and every input to every neuron; random polarities.

    Polarity is drawn from ``{-1, +1, +1}`` with ``numpy.random.default_rng(erev_init_seed)``.
    """

    kind = "fully_connected"

    def __init__(
        self, units: int, output_dim: int | None = None, erev_init_seed: int = 1111, self_connections: bool = True
    ) -> None:
        super().__init__(units, units if output_dim is None else output_dim)
        self.erev_init_seed = erev_init_seed
        self.self_connections = self_connections
        self._rng = np.random.default_rng(erev_init_seed)
        for src in range(units):
            for dest in range(units):
                if src == dest and not self_connections:
                    continue
                self.add_synapse(src, dest, int(self._rng.choice([-1, 1, 1])))

    def _build_synapses(self) -> None:
        assert self.input_dim is not None
        for src in range(self.input_dim):
            for dest in range(self.units):
                self.add_sensory_synapse(src, dest, int(self._rng.choice([-1, 1, 1])))

    def arguments(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "output_dim": self.output_dim,
            "erev_init_seed": self.erev_init_seed,
            "self_connections": self.self_connections,
        }


class NCP(Wiring):
    """Neural circuit policy: sensory -> inter -> command (recurrent) -> motor, sparse and random.

    Neuron ids are ``[motor | command | inter]``; the layers of a wired CfC are
    ``[inter, command, motor]``. Synapses are drawn with ``numpy.random.RandomState(seed)``.
    """

    kind = "ncp"

    def __init__(
        self,
        inter_neurons: int,
        command_neurons: int,
        motor_neurons: int,
        sensory_fanout: int,
        inter_fanout: int,
        recurrent_command_synapses: int,
        motor_fanin: int,
        seed: int = 22222,
    ) -> None:
        super().__init__(inter_neurons + command_neurons + motor_neurons, motor_neurons)
        checks = (
            ("motor_fanin", motor_fanin, "command_neurons", command_neurons),
            ("sensory_fanout", sensory_fanout, "inter_neurons", inter_neurons),
            ("inter_fanout", inter_fanout, "command_neurons", command_neurons),
        )
        for name, value, limit_name, limit in checks:
            if not 1 <= value <= limit:
                raise CellConfigError(f"{name} must be between 1 and {limit_name}={limit}, got {value!r}.")
        if min(inter_neurons, command_neurons) < 1 or recurrent_command_synapses < 0:
            raise CellConfigError(
                f"An NCP needs at least 1 inter and 1 command neuron and recurrent_command_synapses >= 0, got "
                f"inter_neurons={inter_neurons!r}, command_neurons={command_neurons!r}, "
                f"recurrent_command_synapses={recurrent_command_synapses!r}."
            )
        self.inter_neurons = inter_neurons
        self.command_neurons = command_neurons
        self.motor_neurons = motor_neurons
        self.sensory_fanout = sensory_fanout
        self.inter_fanout = inter_fanout
        self.recurrent_command_synapses = recurrent_command_synapses
        self.motor_fanin = motor_fanin
        self.seed = seed
        self._rng = np.random.RandomState(seed)
        self._motor_ids = list(range(0, motor_neurons))
        self._command_ids = list(range(motor_neurons, motor_neurons + command_neurons))
        self._inter_ids = list(range(motor_neurons + command_neurons, self.units))

    @property
    def num_layers(self) -> int:
        return 3

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        layers = (self._inter_ids, self._command_ids, self._motor_ids)
        if not 0 <= layer_id < len(layers):
            raise CellConfigError(f"An NCP has layers 0 (inter), 1 (command), 2 (motor), got {layer_id!r}.")
        return list(layers[layer_id])

    def _connect_layer(
        self, sources: list[int], targets: list[int], fanout: int, fanin_max: int, sensory: bool
    ) -> None:
        """Connect each source to ``fanout`` random targets, then give unreached targets some sources.

        ``fanin_max`` caps the number of sources given to an unreached target (ncps caps the
        inter -> command fan-in by the command count, not the inter count; kept for equal matrices).
        """
        add = self.add_sensory_synapse if sensory else self.add_synapse
        unreached = list(targets)
        for src in sources:
            for dest in self._rng.choice(targets, size=fanout, replace=False):
                if dest in unreached:
                    unreached.remove(dest)
                add(src, int(dest), int(self._rng.choice([-1, 1])))
        fanin = np.clip(int(len(sources) * fanout / len(targets)), 1, fanin_max)
        for dest in unreached:
            for src in self._rng.choice(sources, size=fanin, replace=False):
                add(int(src), dest, int(self._rng.choice([-1, 1])))

    def _build_synapses(self) -> None:
        assert self.input_dim is not None
        # Same draw order as ncps 1.0.1 (sensory->inter, inter->command, command recurrence, command->motor).
        sensors = list(range(self.input_dim))
        self._connect_layer(sensors, self._inter_ids, self.sensory_fanout, len(sensors), sensory=True)
        self._connect_layer(self._inter_ids, self._command_ids, self.inter_fanout, self.command_neurons, sensory=False)
        for _ in range(self.recurrent_command_synapses):
            src = self._rng.choice(self._command_ids)
            dest = self._rng.choice(self._command_ids)
            self.add_synapse(int(src), int(dest), int(self._rng.choice([-1, 1])))
        self._build_command_to_motor()

    def _build_command_to_motor(self) -> None:
        unreached = list(self._command_ids)
        for dest in self._motor_ids:
            for src in self._rng.choice(self._command_ids, size=self.motor_fanin, replace=False):
                if src in unreached:
                    unreached.remove(src)
                self.add_synapse(int(src), dest, int(self._rng.choice([-1, 1])))
        fanout = np.clip(int(self.motor_neurons * self.motor_fanin / self.command_neurons), 1, self.motor_neurons)
        for src in unreached:
            for dest in self._rng.choice(self._motor_ids, size=fanout, replace=False):
                self.add_synapse(src, int(dest), int(self._rng.choice([-1, 1])))

    def arguments(self) -> dict[str, Any]:
        return {
            "inter_neurons": self.inter_neurons,
            "command_neurons": self.command_neurons,
            "motor_neurons": self.motor_neurons,
            "sensory_fanout": self.sensory_fanout,
            "inter_fanout": self.inter_fanout,
            "recurrent_command_synapses": self.recurrent_command_synapses,
            "motor_fanin": self.motor_fanin,
            "seed": self.seed,
        }


class AutoNCP(NCP):
    """An :class:`NCP` sized from the total neuron count, the output count and a sparsity level.

    ``command = max(int(0.4 * (units - output_size)), 1)``, ``inter = units - output_size - command``;
    fan-outs are the layer sizes times ``1 - sparsity_level`` (at least 1), as in ncps.
    """

    kind = "auto_ncp"

    def __init__(self, units: int, output_size: int, sparsity_level: float = 0.5, seed: int = 22222) -> None:
        if output_size >= units - 2:
            raise CellConfigError(
                f"AutoNCP output_size must be less than units - 2 = {units - 2}, got output_size={output_size!r}."
            )
        if not 0.1 <= sparsity_level <= 1.0:
            raise CellConfigError(f"AutoNCP sparsity_level must be between 0.1 and 1.0, got {sparsity_level!r}.")
        density = 1.0 - sparsity_level
        command = max(int(0.4 * (units - output_size)), 1)
        inter = units - output_size - command
        super().__init__(
            inter_neurons=inter,
            command_neurons=command,
            motor_neurons=output_size,
            sensory_fanout=max(int(inter * density), 1),
            inter_fanout=max(int(command * density), 1),
            recurrent_command_synapses=max(int(command * density * 2), 1),
            motor_fanin=max(int(command * density), 1),
            seed=seed,
        )
        self.output_size = output_size
        self.sparsity_level = sparsity_level

    def arguments(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "output_size": self.output_size,
            "sparsity_level": self.sparsity_level,
            "seed": self.seed,
        }


WIRING_KINDS: dict[str, type[Wiring]] = {
    FullyConnected.kind: FullyConnected,
    NCP.kind: NCP,
    AutoNCP.kind: AutoNCP,
}


def _matrix(value: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    matrix = np.asarray(value, dtype=np.int32)
    if matrix.shape != shape:
        raise CellConfigError(f"Wiring config {name} has shape {matrix.shape!r}, expected {shape!r}.")
    if not np.isin(matrix, (-1, 0, 1)).all():
        raise CellConfigError(f"Wiring config {name} may only contain -1, 0 and +1.")
    return matrix


def wiring_from_config(config: Mapping[str, Any]) -> Wiring:
    """Rebuild a wiring from :meth:`Wiring.to_config` output.

    The stored matrices, when present, win over the ones regenerated from the seed (they are what a
    trained model was trained with).

    Raises:
        CellConfigError: Unknown kind, bad arguments, or matrices of the wrong shape or values.
    """
    arguments = dict(config)
    kind = arguments.pop("kind", None)
    if kind not in WIRING_KINDS:
        raise CellConfigError(f"Unknown wiring kind {kind!r}; valid kinds are {sorted(WIRING_KINDS)}.")
    input_dim = arguments.pop("input_dim", None)
    adjacency = arguments.pop("adjacency_matrix", None)
    sensory = arguments.pop("sensory_adjacency_matrix", None)
    try:
        wiring = WIRING_KINDS[kind](**arguments)
    except TypeError as error:
        raise CellConfigError(f"Wiring config {dict(config)!r} does not match kind {kind!r}: {error}.") from None
    if input_dim is not None:
        wiring.build(int(input_dim))
    if adjacency is not None:
        wiring.adjacency_matrix = _matrix(adjacency, (wiring.units, wiring.units), "adjacency_matrix")
    if sensory is not None:
        if wiring.input_dim is None:
            raise CellConfigError("Wiring config has a sensory_adjacency_matrix but no input_dim.")
        wiring.sensory_adjacency_matrix = _matrix(sensory, (wiring.input_dim, wiring.units), "sensory_adjacency_matrix")
    return wiring


def built_copy(wiring: Wiring | int, input_dim: int) -> Wiring:
    """A private, built copy of ``wiring`` for a cell (an int means ``FullyConnected(units)``).

    Raises:
        CellConfigError: The wiring is built for a different input size.
    """
    owned = FullyConnected(wiring) if isinstance(wiring, int) else copy.deepcopy(wiring)
    if not isinstance(owned, Wiring):
        raise CellConfigError(f"Expected a Wiring or a number of units, got {wiring!r}.")
    owned.build(input_dim)
    return owned
