"""Cell behaviour: Δt rule, batch consistency, gradients, config round-trip, exportable forward."""

import ast
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

import lnn_ros.cells as cells_package
from lnn_ros.cells import (
    CELL_KINDS,
    NCP,
    AutoNCP,
    CellConfigError,
    CfCCell,
    FrameStackMLPCell,
    FullyConnected,
    GRUCell,
    LSTMCell,
    LTCCell,
    MLPCell,
    RecurrentCell,
    SequenceModel,
    WiredCfCCell,
    build_cell,
)

FEATURES = 5
CELLS: dict[str, Callable[[], RecurrentCell]] = {
    "cfc-default-proj": lambda: CfCCell(FEATURES, 10, backbone_units=16, proj_size=3),
    "cfc-pure-2layers-dropout": lambda: CfCCell(
        FEATURES, 8, "pure", "gelu", backbone_units=12, backbone_layers=2, backbone_dropout=0.2
    ),
    "cfc-no_gate-masked": lambda: CfCCell(
        FEATURES, 6, "no_gate", backbone_layers=0, sparsity_mask=torch.randint(0, 2, (FEATURES + 6, 6)).numpy()
    ),
    "wired_cfc-auto_ncp": lambda: WiredCfCCell(FEATURES, AutoNCP(14, 3, seed=2)),
    "wired_cfc-ncp-proj": lambda: WiredCfCCell(FEATURES, NCP(5, 4, 2, 3, 2, 3, 2), mode="pure", proj_size=4),
    "wired_cfc-fc-out2": lambda: WiredCfCCell(FEATURES, FullyConnected(6, 2)),
    "ltc-implicit": lambda: LTCCell(FEATURES, AutoNCP(12, 3)),
    "ltc-explicit-fc": lambda: LTCCell(FEATURES, 7, "linear", None, ode_unfolds=3, implicit_param_constraints=False),
    "lstm": lambda: LSTMCell(FEATURES, 6, output_size=2),
    "gru": lambda: GRUCell(FEATURES, 6, output_size=2),
    "gru-no_readout": lambda: GRUCell(FEATURES, 4),
    "mlp": lambda: MLPCell(FEATURES, 3, hidden_units=16),
    "stack_mlp": lambda: FrameStackMLPCell(FEATURES, 3, stack_size=3, stack_features=2, hidden_units=16),
}
STATEFUL = sorted(name for name in CELLS if not name.startswith("mlp"))
# y = readout(hidden_new): Δt <= 0 repeats the last y. The MLPs read y from x and Δt as well.
OUTPUT_FROM_STATE = [name for name in STATEFUL if not name.startswith("stack_mlp")]


def make(name: str, dtype: torch.dtype = torch.float32) -> RecurrentCell:
    torch.manual_seed(0)
    return CELLS[name]().to(dtype).eval()


def inputs(cell: RecurrentCell, batch: int, steps: int, dtype: torch.dtype = torch.float32, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, cell.input_size, generator=generator, dtype=dtype)
    dt_s = 0.05 + 1.5 * torch.rand(batch, steps, generator=generator, dtype=dtype)
    hidden = 0.3 * torch.randn(batch, cell.state_size, generator=generator, dtype=dtype)
    if isinstance(cell, MLPCell):
        hidden = torch.zeros_like(hidden)
    return x, dt_s, hidden


@pytest.mark.parametrize("name", sorted(CELLS))
def test_shapes_and_sizes(name: str) -> None:
    cell = make(name)
    x, dt_s, hidden = inputs(cell, 3, 1)
    y, hidden_new = cell(x[:, 0], hidden, dt_s[:, :1])
    assert y.shape == (3, cell.output_size) and hidden_new.shape == (3, cell.state_size)
    assert torch.equal(cell.initial_state(3), torch.zeros(3, cell.state_size))
    assert cell.double().initial_state(2).dtype == torch.float64


@pytest.mark.parametrize("name", STATEFUL)
@pytest.mark.parametrize("dt_value", [0.0, -0.3], ids=["zero", "negative"])
def test_no_elapsed_time_keeps_the_state_and_the_output(name: str, dt_value: float) -> None:
    """Δt <= 0: hidden_new is hidden bit for bit, and y is read from it (so y repeats the last y)."""
    cell = make(name)
    x, dt_s, hidden = inputs(cell, 4, 2)
    y1, h1 = cell(x[:, 0], hidden, dt_s[:, :1])
    assert not torch.equal(h1, hidden)
    y2, h2 = cell(x[:, 1], h1, torch.full((4, 1), dt_value))
    assert torch.equal(h2, h1)
    if name in OUTPUT_FROM_STATE:
        assert torch.equal(y2, y1)


@pytest.mark.parametrize("name", STATEFUL)
def test_mixed_batch_keeps_only_the_rows_without_elapsed_time(name: str) -> None:
    cell = make(name, torch.float64)
    x, _dt_s, hidden = inputs(cell, 4, 1, torch.float64)
    dt_mixed = torch.tensor([[0.0], [0.4], [-1.0], [1.2]], dtype=torch.float64)
    _, h = cell(x[:, 0], hidden, dt_mixed)
    _, h_moving = cell(x[:, 0], hidden, dt_mixed.clamp(min=0.1))
    keep = torch.tensor([True, False, True, False])
    assert torch.equal(h[keep], hidden[keep])
    torch.testing.assert_close(h[~keep], h_moving[~keep], rtol=0, atol=1e-14)
    assert not torch.allclose(h[~keep], hidden[~keep])


def test_mlp_keeps_its_dummy_state_and_sees_dt() -> None:
    cell = make("mlp")
    x, _, hidden = inputs(cell, 2, 1)
    y_a, h_a = cell(x[:, 0], hidden, torch.full((2, 1), 0.1))
    y_b, _ = cell(x[:, 0], hidden, torch.full((2, 1), 0.9))
    assert cell.state_size == 1 and h_a is hidden and not torch.allclose(y_a, y_b)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("batch", [1, 3, 7])
def test_batch_equals_each_sample_stepped_alone(name: str, batch: int) -> None:
    """Per-sample, per-step Δt (ncps issues #81/#82/#83). float64: equal up to BLAS summation order."""
    cell = make(name, torch.float64)
    model = SequenceModel(cell)
    x, dt_s, hidden = inputs(cell, batch, 12, torch.float64, seed=batch)
    dt_s[0, 3] = 0.0
    with torch.no_grad():
        y, h = model(x, dt_s.unsqueeze(-1) if batch == 3 else dt_s, hidden)
        for b in range(batch):
            h_b = hidden[b : b + 1]
            for t in range(x.shape[1]):
                y_b, h_b = cell(x[b : b + 1, t], h_b, dt_s[b : b + 1, t : t + 1])
                torch.testing.assert_close(y[b : b + 1, t], y_b, rtol=0, atol=1e-12)
            torch.testing.assert_close(h[b : b + 1], h_b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_gradients_are_finite_with_zero_and_negative_dt(name: str) -> None:
    cell = make(name)
    cell.train()
    x, dt_s, hidden = inputs(cell, 3, 6)
    dt_s[:, 2] = 0.0
    dt_s[1, 4] = -0.5
    dt_s[2, 5] = 40.0
    x.requires_grad_(True)
    dt_s.requires_grad_(True)
    y, h = SequenceModel(cell)(x, dt_s, hidden)
    (y.square().mean() + h.square().mean()).backward()
    grads = [p.grad for p in cell.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    assert torch.isfinite(x.grad).all() and torch.isfinite(dt_s.grad).all()


@pytest.mark.parametrize("name", sorted(CELLS))
def test_build_cell_round_trip_through_json_and_yaml(name: str) -> None:
    cell = make(name)
    config = cell.config()
    assert config["kind"] in CELL_KINDS and isinstance(cell, CELL_KINDS[config["kind"]])
    for text_round_trip in (lambda c: json.loads(json.dumps(c)), lambda c: yaml.safe_load(yaml.safe_dump(c))):
        torch.manual_seed(123)  # other weights than `cell`: the state_dict must carry everything
        rebuilt = build_cell(text_round_trip(config)).eval()
        assert type(rebuilt) is type(cell) and rebuilt.config() == config
        rebuilt.load_state_dict(cell.state_dict(), strict=True)
        x, dt_s, hidden = inputs(cell, 2, 5)
        with torch.no_grad():
            expected = SequenceModel(cell)(x, dt_s, hidden)
            actual = SequenceModel(rebuilt)(x, dt_s, hidden)
        assert all(torch.equal(a, e) for a, e in zip(actual, expected))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": "rnn"}, r"Unknown cell kind 'rnn'; valid kinds are \['cfc', 'gru', 'lstm', 'ltc', 'mlp', 'stack_mlp', 'wired_cfc'\]"),
        ({"kind": "gru", "input_size": 3, "units": 0}, "GRUCell needs input_size >= 1, units >= 1"),
        ({"kind": "stack_mlp", "input_size": 3, "output_size": 2}, r"stack_features <= input_size \(3\), got stack_size=4 and stack_features=16"),
        ({"kind": "stack_mlp", "input_size": 3, "output_size": 2, "stack_size": 1, "stack_features": 2}, "needs stack_size >= 2"),
        ({"kind": "stack_mlp", "input_size": 3, "output_size": 2, "stack_features": 2, "activation": "elu"}, "Unknown activation 'elu'"),
        ({"input_size": 3}, "Unknown cell kind None"),
        ({"kind": "cfc", "input_size": 3, "hidden_size": 4, "units": 4}, "does not match CfCCell"),
        ({"kind": "cfc", "input_size": 3, "hidden_size": 4, "mode": "fast"}, "Unknown CfC mode 'fast'; valid modes"),
        ({"kind": "cfc", "input_size": 3, "hidden_size": 4, "backbone_activation": "elu"}, "Unknown backbone_activ"),
        ({"kind": "ltc", "input_size": 3, "wiring": 4, "input_mapping": "scale"}, "Unknown input_mapping 'scale'"),
        ({"kind": "ltc", "input_size": 3, "wiring": {"kind": "ncp"}}, "does not match kind 'ncp'"),
        ({"kind": "wired_cfc", "input_size": 3, "wiring": FullyConnected(4).to_config() | {"input_dim": 2}},
         "already built for 2 inputs"),
    ],
)
def test_bad_cell_configs_raise_clear_errors(config: dict, message: str) -> None:
    with pytest.raises(CellConfigError, match=message):
        build_cell(config)


def test_sequence_model_rejects_bad_shapes() -> None:
    model = SequenceModel(CfCCell(FEATURES, 4, backbone_layers=0))
    x = torch.zeros(2, 3, FEATURES)
    with pytest.raises(CellConfigError, match=r"x must have shape \[B,T,5\]"):
        model(torch.zeros(2, 3, 4), torch.ones(2, 3))
    with pytest.raises(CellConfigError, match="dt_s must have shape"):
        model(x, torch.ones(3, 2))
    with pytest.raises(CellConfigError, match=r"hidden must have shape \[2,4\]"):
        model(x, torch.ones(2, 3), torch.zeros(2, 5))


@pytest.mark.parametrize(
    "name", ["cfc-pure-2layers-dropout", "wired_cfc-ncp-proj", "ltc-implicit", "lstm", "gru", "mlp", "stack_mlp"]
)
def test_forward_exports_with_a_dynamic_batch_and_no_value_branches(name: str) -> None:
    """torch.export refuses Python branches on tensor values; the exported graph must then match
    eager mode for another batch size and for Δt values (0, negative) it was not traced with."""
    cell = make(name)
    batch = torch.export.Dim("batch")
    example = (torch.randn(2, FEATURES), cell.initial_state(2), torch.full((2, 1), 0.5))
    program = torch.export.export(cell, example, dynamic_shapes=({0: batch}, {0: batch}, {0: batch}))
    x, _, hidden = inputs(cell, 5, 1)
    dt_s = torch.tensor([[0.0], [0.3], [-1.0], [2.0], [7.5]])
    for actual, expected in zip(program.module()(x[:, 0], hidden, dt_s), cell(x[:, 0], hidden, dt_s)):
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


def test_cells_package_never_imports_ncps() -> None:
    for path in Path(cells_package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "ncps" for n in names), path
