"""The GRU and frame-stack MLP baselines: the GRU is a real GRU, the stack moves only on new frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_factory import CAMERA, make_imu_camera_bundle

from lnn_ros.cells import FrameStackMLPCell, GRUCell, SequenceModel
from lnn_ros.engine import Engine, EngineConfig, Outcome

FEATURES, UNITS = 5, 7


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def gru_pair(dt_weight: float = 0.0) -> tuple[GRUCell, torch.nn.GRUCell]:
    """Our GRU with torch's weights copied in and the Δt column of the input weights set to ``dt_weight``."""
    torch.manual_seed(0)
    reference = torch.nn.GRUCell(FEATURES, UNITS).double()
    ours = GRUCell(FEATURES, UNITS).double()
    with torch.no_grad():
        ours.input_gates.weight[:, :FEATURES].copy_(reference.weight_ih)
        ours.input_gates.weight[:, FEATURES].fill_(dt_weight)
        ours.input_gates.bias.copy_(reference.bias_ih)
        ours.hidden_gates.weight.copy_(reference.weight_hh)
        ours.hidden_gates.bias.copy_(reference.bias_hh)
    return ours, reference


def gru_sequences(dt_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    ours, reference = gru_pair(dt_weight)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 20, FEATURES, generator=generator, dtype=torch.float64)
    dt_s = 0.01 + torch.rand(3, 20, generator=generator, dtype=torch.float64)
    h0 = torch.randn(3, UNITS, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        y, h = SequenceModel(ours)(x, dt_s, h0)
        h_ref, ys_ref = h0, []
        for t in range(x.shape[1]):
            h_ref = reference(x[:, t], h_ref)
            ys_ref.append(h_ref)
    return y, h, torch.stack(ys_ref, dim=1), h_ref


def test_gru_is_torch_gru_when_the_dt_column_is_zero() -> None:
    y, h, y_ref, h_ref = gru_sequences(0.0)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, h_ref, rtol=0, atol=1e-12)


def test_gru_sees_dt_through_its_dt_column() -> None:
    y, _, y_ref, _ = gru_sequences(0.5)
    assert (y - y_ref).abs().max() > 1e-3


def test_gru_readout_and_sizes() -> None:
    cell = GRUCell(22, 32, output_size=4)
    assert (cell.state_size, cell.output_size) == (32, 4)
    y, h = cell(torch.randn(2, 22), cell.initial_state(2), torch.full((2, 1), 0.005))
    assert y.shape == (2, 4) and h.shape == (2, 32)
    assert GRUCell(22, 32).output_size == 32


def stack_cell() -> FrameStackMLPCell:
    torch.manual_seed(0)
    return FrameStackMLPCell(input_size=5, output_size=2, stack_size=3, stack_features=2, hidden_units=8).eval()


def frame(value: float) -> torch.Tensor:
    """One input row: 3 other features (changing every step) and the embedding [value, -value]."""
    return torch.cat([torch.randn(1, 3), torch.tensor([[value, -value]])], dim=1)


def test_stack_shifts_only_when_a_new_frame_arrives_with_elapsed_time() -> None:
    cell = stack_cell()
    hidden = cell.initial_state(1)
    expected_stacks = []
    # (embedding value, Δt): held frames, a new frame at Δt = 0 (pushed on the next step), a frame
    # that differs in one element only, and an embedding back to an older (not the newest) frame.
    script = [(1.0, 0.005), (1.0, 0.005), (1.0, 0.005), (2.0, 0.005), (2.0, 0.005), (3.0, 0.0),
              (3.0, -0.001), (3.0, 0.005), (3.0, 0.005), (1.0, 0.005), (1.0, 0.005)]  # fmt: skip
    newest: list[float] = [0.0, 0.0, 0.0]
    for value, dt in script:
        if dt > 0 and value != newest[0]:
            newest = [value, *newest[:-1]]
        expected_stacks.append([v for n in newest for v in (n, -n)])
        with torch.no_grad():
            _, hidden = cell(frame(value), hidden, torch.tensor([[dt]]))
        assert hidden[0].tolist() == expected_stacks[-1], (value, dt)
    assert expected_stacks[-1] == [1.0, -1.0, 3.0, -3.0, 2.0, -2.0]

    one_element = torch.tensor([[0.0, 0.0, 0.0, 1.0, -1.5]])  # only the second embedding element differs
    _, shifted = cell(one_element, hidden, torch.tensor([[0.005]]))
    assert shifted[0].tolist() == [1.0, -1.5, 1.0, -1.0, 3.0, -3.0]


def test_output_sees_the_previous_distinct_frames_on_held_steps_too() -> None:
    """The MLP input is [x, Δt, previous frames]: the same on the step a frame arrives and while held."""
    cell = stack_cell()
    seen: list[torch.Tensor] = []
    cell.net.register_forward_hook(lambda _module, args, _out: seen.append(args[0][0, 6:].clone()))
    hidden = cell.initial_state(1)
    for value in (1.0, 2.0, 2.0, 2.0, 3.0, 3.0):
        with torch.no_grad():
            _, hidden = cell(frame(value), hidden, torch.tensor([[0.005]]))
    assert [s.tolist() for s in seen] == [
        [0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0],
        [2.0, -2.0, 1.0, -1.0], [2.0, -2.0, 1.0, -1.0],
    ]  # fmt: skip


def test_stack_mlp_bundle_in_the_engine_equals_torch_with_held_embeddings(tmp_path: Path) -> None:
    """IMU at 200 Hz, the camera embedding held for 6-7 steps (30 Hz): Engine == PyTorch at every step."""
    bundle = make_imu_camera_bundle(tmp_path / "stack_mlp", "stack_mlp")
    cell = bundle.cell.eval()
    assert isinstance(cell, FrameStackMLPCell) and cell.stack_features == CAMERA.embedding_size
    engine = Engine(bundle.path, EngineConfig(clamp_outputs=False))
    manifest = engine.manifest
    mean = np.array([f.mean for f in manifest.features], dtype=np.float32)
    std = np.array([f.std for f in manifest.features], dtype=np.float32)

    generator = np.random.default_rng(3)
    steps, period_ns = 120, 5_000_000
    frame_index = (np.arange(steps) * period_ns) // 33_333_333  # a new frame every ~6.7 steps
    embeddings = np.tanh(generator.standard_normal((frame_index[-1] + 1, CAMERA.embedding_size))).astype(np.float32)
    imu = generator.standard_normal((steps, 6)).astype(np.float32) * std[:6] + mean[:6]
    raw = np.concatenate([imu, embeddings[frame_index]], axis=1).astype(np.float32)

    hidden = cell.initial_state(1)
    for i in range(steps):
        result = engine.step(raw[i], 10**9 + i * period_ns)
        if i == 0:
            assert result.outcome is Outcome.INITIALISED
            continue
        assert result.outcome is Outcome.STEPPED and result.output is not None
        x = torch.from_numpy((raw[i] - mean) / std)[None]
        with torch.no_grad():
            y, hidden = cell(x, hidden, torch.tensor([[period_ns / 1e9]]))
        np.testing.assert_allclose(result.output, y[0].numpy(), rtol=0, atol=1e-5)

    # The stack holds the 4 newest distinct frames, newest first (the held repeats were not pushed).
    expected = embeddings[frame_index[-1] - 3 : frame_index[-1] + 1][::-1].reshape(-1)
    np.testing.assert_array_equal(engine.hidden, expected)
    np.testing.assert_array_equal(hidden[0].numpy(), expected)
