"""Numerical parity of lnn_ros.cells with the reference ncps 1.0.1 (test-only dependency).

ncps's sequence wrappers broadcast ``timespans`` wrongly for batch > 1 (ncps issues #81/#82/#83),
so the reference runs each sample alone (batch 1, where its timespan is a scalar) and ours runs the
whole batch at once with per-sample Δt.
"""

import re
from collections.abc import Callable

import pytest
import torch
from ncps import wirings as ncps_wirings
from ncps.torch import LTC as NcpsLTC
from ncps.torch import CfC as NcpsCfC

from lnn_ros.cells import NCP, AutoNCP, CfCCell, FullyConnected, LTCCell, RecurrentCell, SequenceModel, WiredCfCCell

BATCH, STEPS, FEATURES = 4, 50, 5
Factories = tuple[Callable[[], RecurrentCell], Callable[[], torch.nn.Module]]  # (ours, ncps)
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


def ours_name(ncps_name: str) -> str:
    """Map an ncps CfC/LTC sequence-model state_dict key to the lnn_ros cell key."""
    name = ncps_name.removeprefix("rnn_cell.")
    return re.sub(r"^layer_(\d+)\.", r"layers.\1.", name)


def copy_ncps_weights(ours: RecurrentCell, reference: torch.nn.Module) -> None:
    """Copy every ncps parameter into ours; wiring masks (buffers in ours) must already be equal."""
    reference_state = {ours_name(key): value for key, value in reference.state_dict().items()}
    our_state = ours.state_dict()
    assert set(reference_state) == set(our_state)
    buffers = {name for name, _ in ours.named_buffers()}
    for name, value in reference_state.items():
        if name in buffers:  # sparsity masks come from our own wiring: they must match ncps's
            assert torch.equal(our_state[name], value.to(our_state[name].dtype)), name
    ours.load_state_dict(reference_state, strict=True)


def random_sequence(dtype: torch.dtype, seed: int, state_size: int) -> tuple[torch.Tensor, ...]:
    """Inputs, Δt (uniform in [1e-3, 2] with ~10% of steps in [2, 20]) and an initial state."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, STEPS, FEATURES, generator=generator, dtype=dtype)
    dt_s = torch.rand(BATCH, STEPS, generator=generator, dtype=dtype) * (2.0 - 1e-3) + 1e-3
    large = torch.rand(BATCH, STEPS, generator=generator) < 0.1
    dt_s = torch.where(large, 2.0 + 18.0 * torch.rand(BATCH, STEPS, generator=generator, dtype=dtype), dt_s)
    hidden = 0.5 * torch.randn(BATCH, state_size, generator=generator, dtype=dtype)
    return x, dt_s, hidden


def parity_error(
    ours: RecurrentCell, reference: torch.nn.Module, dtype: torch.dtype, seed: int = 0
) -> tuple[float, float]:
    """Max abs difference of (all outputs, final hidden) between ours (batched) and ncps (per sample)."""
    torch.manual_seed(seed)
    reference = reference.to(dtype).eval()
    ours = ours.to(dtype).eval()
    copy_ncps_weights(ours, reference)
    x, dt_s, hidden = random_sequence(dtype, seed, ours.state_size)
    with torch.no_grad():
        y, h = SequenceModel(ours)(x, dt_s, hidden)
        expected = [reference(x[b : b + 1], hidden[b : b + 1], dt_s[b : b + 1]) for b in range(BATCH)]
    y_ref = torch.cat([pair[0] for pair in expected])
    h_ref = torch.cat([pair[1] for pair in expected])
    assert y.shape == y_ref.shape and h.shape == h_ref.shape
    assert torch.isfinite(y).all() and y.abs().max() > 1e-3
    return (y - y_ref).abs().max().item(), (h - h_ref).abs().max().item()


def cfc_pair(mode: str, layers: int, activation: str = "lecun_tanh", proj: int | None = None) -> Factories:
    kwargs = dict(mode=mode, backbone_activation=activation, backbone_units=16, backbone_layers=layers, proj_size=proj)
    return (
        lambda: CfCCell(FEATURES, 12, **kwargs),
        lambda: NcpsCfC(FEATURES, 12, proj_size=proj, batch_first=True, mode=mode, activation=activation,
                        backbone_units=16, backbone_layers=layers),
    )


def wired_pair(kind: str, mode: str = "default", proj: int | None = None) -> Factories:
    if kind == "auto_ncp":
        ours_wiring, ncps_wiring = AutoNCP(16, 4, seed=3), ncps_wirings.AutoNCP(16, 4, seed=3)
    elif kind == "ncp":
        args = (6, 4, 3, 3, 2, 4, 2)
        ours_wiring, ncps_wiring = NCP(*args, seed=7), ncps_wirings.NCP(*args, seed=7)
    else:
        ours_wiring, ncps_wiring = FullyConnected(8), ncps_wirings.FullyConnected(8)
    return (
        lambda: WiredCfCCell(FEATURES, ours_wiring, mode=mode, proj_size=proj),
        lambda: NcpsCfC(FEATURES, ncps_wiring, proj_size=proj, batch_first=True, mode=mode),
    )


def ltc_pair(
    kind: str, implicit: bool, input_mapping: str | None = "affine", output_mapping: str | None = "affine"
) -> Factories:
    if kind == "auto_ncp":
        ours_wiring, ncps_wiring = AutoNCP(12, 3, seed=5), ncps_wirings.AutoNCP(12, 3, seed=5)
    else:
        ours_wiring, ncps_wiring = FullyConnected(10, 4), ncps_wirings.FullyConnected(10, 4)
    kwargs = dict(input_mapping=input_mapping, output_mapping=output_mapping, implicit_param_constraints=implicit)
    return (
        lambda: LTCCell(FEATURES, ours_wiring, **kwargs),
        lambda: NcpsLTC(FEATURES, ncps_wiring, batch_first=True, **kwargs),
    )


CASES = {
    **{
        f"cfc-{mode}-layers{layers}": (cfc_pair, (mode, layers))
        for mode in ("default", "pure", "no_gate")
        for layers in (0, 1, 2)
    },
    **{f"cfc-default-layers1-{act}": (cfc_pair, ("default", 1, act)) for act in ("silu", "relu", "tanh", "gelu")},
    "cfc-default-layers1-proj3": (cfc_pair, ("default", 1, "lecun_tanh", 3)),
    "cfc-pure-layers2-proj3": (cfc_pair, ("pure", 2, "lecun_tanh", 3)),
    "wired-auto_ncp-default": (wired_pair, ("auto_ncp",)),
    "wired-auto_ncp-pure": (wired_pair, ("auto_ncp", "pure")),
    "wired-auto_ncp-no_gate-proj2": (wired_pair, ("auto_ncp", "no_gate", 2)),
    "wired-ncp-default": (wired_pair, ("ncp",)),
    "wired-fully_connected-default": (wired_pair, ("fully_connected",)),
    **{
        f"ltc-{kind}-{'implicit' if implicit else 'explicit'}": (ltc_pair, (kind, implicit))
        for kind in ("fully_connected", "auto_ncp")
        for implicit in (True, False)
    },
    "ltc-auto_ncp-linear-none": (ltc_pair, ("auto_ncp", True, "linear", None)),
    "ltc-fully_connected-none-linear": (ltc_pair, ("fully_connected", False, None, "linear")),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_ncps(case: str, dtype: torch.dtype) -> None:
    make, args = CASES[case]
    ours, reference = make(*args)
    y_error, h_error = parity_error(ours(), reference(), dtype=dtype)
    assert y_error <= TOLERANCE[dtype] and h_error <= TOLERANCE[dtype], (y_error, h_error)


@pytest.mark.parametrize("case", ["cfc-pure-layers2-proj3", "wired-ncp-default", "ltc-auto_ncp-implicit"])
def test_same_seed_gives_ncps_initial_weights(case: str) -> None:
    """Constructing under the same torch seed draws the same initial weights as ncps."""
    make, args = CASES[case]
    make_ours, make_reference = make(*args)
    torch.manual_seed(11)
    ours = make_ours()
    torch.manual_seed(11)
    reference = make_reference()
    reference_state = {ours_name(key): value for key, value in reference.state_dict().items()}
    for name, value in ours.state_dict().items():
        assert torch.equal(value, reference_state[name]), name


def test_explicit_weight_constraints_match_ncps() -> None:
    ours, reference = (make() for make in ltc_pair("auto_ncp", implicit=False))
    copy_ncps_weights(ours, reference)
    with torch.no_grad():
        for name in ("w", "sensory_w", "cm", "gleak", "vleak"):
            noise = torch.randn_like(getattr(ours, name))
            getattr(ours, name).sub_(noise)
            getattr(reference.rnn_cell, name).sub_(noise)
    assert (ours.w < 0).any()
    ours.apply_weight_constraints()
    reference.rnn_cell.apply_weight_constraints()
    reference_state = {ours_name(key): value for key, value in reference.state_dict().items()}
    for name, value in ours.state_dict().items():
        assert torch.equal(value, reference_state[name]), name
    assert (ours.w >= 0).all() and (ours.vleak < 0).any()  # vleak is not constrained


def test_implicit_constraints_make_clipping_a_no_op() -> None:
    ours = LTCCell(FEATURES, FullyConnected(6), implicit_param_constraints=True)
    with torch.no_grad():
        ours.w.fill_(-1.0)
    ours.apply_weight_constraints()
    assert (ours.w == -1.0).all()


def test_zero_dt_is_where_we_deliberately_differ_from_ncps() -> None:
    """ncps LTC returns NaN at Δt = 0 and ncps CfC still moves the state; ours keep the state."""
    make_ltc, make_ncps_ltc = ltc_pair("fully_connected", implicit=True)
    ours, reference = make_ltc(), make_ncps_ltc()
    copy_ncps_weights(ours, reference)
    x, _, hidden = random_sequence(torch.float32, 3, ours.state_size)
    with torch.no_grad():
        assert torch.isnan(reference.rnn_cell(x[:1, 0], hidden[:1], 0.0)[1]).all()
        assert torch.equal(ours(x[:1, 0], hidden[:1], torch.zeros(1, 1))[1], hidden[:1])
    make_cfc, make_ncps_cfc = cfc_pair("default", 1)
    ours, reference = make_cfc(), make_ncps_cfc()
    copy_ncps_weights(ours, reference)
    x, _, hidden = random_sequence(torch.float32, 4, ours.state_size)
    with torch.no_grad():
        assert not torch.allclose(reference.rnn_cell(x[:1, 0], hidden[:1], 0.0)[1], hidden[:1])
        assert torch.equal(ours(x[:1, 0], hidden[:1], torch.zeros(1, 1))[1], hidden[:1])
