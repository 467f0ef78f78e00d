"""Default cell configurations for training a model of a given kind and size from data."""

from __future__ import annotations

from typing import Any

from lnn_ros.training.errors import TrainingError

CELL_KINDS = ("cfc", "wired_cfc", "ltc", "lstm", "gru", "mlp", "stack_mlp")


def default_cell_config(kind: str, input_size: int, output_size: int, units: int = 32) -> dict[str, Any]:
    """A :func:`lnn_ros.cells.build_cell` config with ``output_size`` outputs and ``units`` neurons.

    * ``cfc``: CfC with a one-layer backbone of ``2 * units`` and a linear readout (proj_size).
    * ``wired_cfc`` / ``ltc``: AutoNCP wiring of ``units`` neurons, ``output_size`` motor neurons
      (needs ``units > output_size + 2``); ``wired_cfc`` reads them out through a linear layer.
    * ``lstm`` / ``gru``: LSTM / GRU of ``units`` with a linear readout.
    * ``mlp``: two hidden layers of ``units``. ``stack_mlp``: the same on a stack of 4 frames of the
      last ``min(16, input_size)`` features (the camera embedding).

    Raises:
        TrainingError: Unknown kind or sizes the wiring cannot honour.
    """
    if min(input_size, output_size, units) < 1:
        raise TrainingError(
            f"Cell sizes must be >= 1, got input_size={input_size!r}, output_size={output_size!r}, units={units!r}."
        )
    if kind == "cfc":
        return {
            "kind": kind,
            "input_size": input_size,
            "hidden_size": units,
            "backbone_units": 2 * units,
            "backbone_layers": 1,
            "proj_size": output_size,
        }
    if kind in ("wired_cfc", "ltc"):
        if units <= output_size + 2:
            raise TrainingError(
                f"A {kind} cell with {output_size} outputs needs units > {output_size + 2} for its AutoNCP wiring, got {units!r}."
            )
        wiring = {"kind": "auto_ncp", "units": units, "output_size": output_size}
        if kind == "wired_cfc":
            # A linear readout of the motor neurons: their CfC states are bounded in (-1, 1) and
            # normalised targets are not (without it the drone policy could not command > ~1 std).
            return {"kind": kind, "input_size": input_size, "wiring": wiring, "proj_size": output_size}
        return {"kind": kind, "input_size": input_size, "wiring": wiring}
    if kind in ("lstm", "gru"):
        return {"kind": kind, "input_size": input_size, "units": units, "output_size": output_size}
    if kind == "mlp":
        return {"kind": kind, "input_size": input_size, "output_size": output_size, "hidden_units": units}
    if kind == "stack_mlp":
        stack_features = min(16, input_size)
        return {"kind": kind, "input_size": input_size, "output_size": output_size, "hidden_units": units, "stack_features": stack_features}
    raise TrainingError(f"Unknown cell kind {kind!r}; use one of {list(CELL_KINDS)}.")
