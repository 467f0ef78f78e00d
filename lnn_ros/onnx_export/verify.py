"""Parity of exported graphs with the PyTorch model, run through onnxruntime.

Used by :func:`lnn_ros.onnx_export.export_bundle` at export time and by the tests. The check
drives both sides with the same random inputs and Δt drawn log-uniformly (default 1e-4 s to
1 s), feeding every side its own previous hidden state, so an error that builds up over a
rollout is seen, not only the error of one step::

    step graph    : 200 steps, batch 1 and 3, vs cell(x_t, h_t, dt_t) stepped in torch
                    (rollout: each side fed its own hidden; one-step: the graph fed torch's hidden)
    window graph  : the same 200 steps cut into windows of T (the last one padded with Δt = 0,
                    which leaves the state unchanged), vs torch and vs the step graph
    encoder graph : random images, batch 1 and 3, vs encoder(image)

The errors are the largest absolute differences over every output and hidden element.

Why a float64 reference: a one-step difference of ~1e-7 (float32 rounding: summation order,
onnxruntime's tanh/sigmoid kernels) stays ~1e-7 in a contracting model, but a trained model
that integrates its inputs (the sine example's phase, a drone's velocity) carries it along,
and a 200-step rollout of *PyTorch float32 itself* then drifts by 1e-6..1e-5 from the same
model run in float64. ``reference_drift`` measures that drift; :attr:`ParityReport.passed`
requires the one-step error and window-vs-step error within the tolerance, and the rollout
errors within ``max(tolerance, DRIFT_FACTOR * reference_drift)``: the graph must be as exact
as PyTorch float32 is. An export bug (a wrong op, weight, or state wiring) shows up in the
one-step error at once, orders of magnitude above 1e-5.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from lnn_ros.cells import RecurrentCell
from lnn_ros.engine.session import SessionConfig, open_session
from lnn_ros.onnx_export.errors import ExportError, ParityError
from lnn_ros.onnx_export.graphs import torch_threads

DEFAULT_TOLERANCE = 1e-5
DRIFT_FACTOR = 10.0  # rollout allowance, in units of PyTorch float32's own drift from float64


@dataclass(frozen=True)
class ParityReport:
    """Largest absolute differences between the graphs and PyTorch (None: graph not checked).

    Attributes:
        tolerance: The bound every error must stay within.
        steps: Length of the rollouts.
        batch_sizes: Batch sizes every graph was run with.
        dt_range_s: The log-uniform Δt range of the rollouts.
        step_error: Step graph vs torch over the rollout (each fed its own hidden state).
        step_one_step_error: Step graph fed torch's hidden state at every step vs torch.
        reference_drift: PyTorch float32 vs the same cell in float64 over the same rollouts.
        window_error: Window graph vs torch.
        window_vs_step_error: Window graph vs T calls of the step graph.
        encoder_error: Encoder graph vs torch.
    """

    tolerance: float
    steps: int
    batch_sizes: tuple[int, ...]
    dt_range_s: tuple[float, float]
    step_error: float
    step_one_step_error: float
    reference_drift: float
    window_error: float | None = None
    window_vs_step_error: float | None = None
    encoder_error: float | None = None

    @property
    def rollout_allowance(self) -> float:
        """Bound of the rollout errors: the tolerance, or more if PyTorch float32 itself drifts more."""
        return max(self.tolerance, DRIFT_FACTOR * self.reference_drift)

    @property
    def errors(self) -> dict[str, float]:
        """The errors compared with graphs, by name."""
        named = {
            "step": self.step_error,
            "step_one_step": self.step_one_step_error,
            "window": self.window_error,
            "window_vs_step": self.window_vs_step_error,
            "encoder": self.encoder_error,
        }
        return {name: value for name, value in named.items() if value is not None}

    @property
    def max_error(self) -> float:
        return max(self.errors.values())

    def bounds(self) -> dict[str, float]:
        """The bound each error of :attr:`errors` must stay within."""
        rollout = {"step", "window"}
        return {name: self.rollout_allowance if name in rollout else self.tolerance for name in self.errors}

    def failures(self) -> dict[str, float]:
        """The errors above their bound (NaN counts as above)."""
        bounds = self.bounds()
        return {name: value for name, value in self.errors.items() if not value <= bounds[name]}

    @property
    def passed(self) -> bool:
        return not self.failures()

    @property
    def within_tolerance(self) -> bool:
        """Every error, rollouts included, within the plain tolerance (no drift allowance)."""
        return all(value <= self.tolerance for value in self.errors.values())

    def summary(self) -> str:
        parts = ", ".join(f"{name} {value:.2e}" for name, value in self.errors.items())
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"max abs error vs PyTorch: {parts}; PyTorch float32 drift from float64 {self.reference_drift:.2e} "
            f"({verdict}: tolerance {self.tolerance:.0e}, rollout allowance {self.rollout_allowance:.1e}; "
            f"{self.steps} steps, batch {'/'.join(map(str, self.batch_sizes))}, "
            f"Δt log-uniform in [{self.dt_range_s[0]:g}, {self.dt_range_s[1]:g}] s)"
        )

    def raise_if_failed(self) -> None:
        """Raise :class:`ParityError` naming every error above its bound."""
        failures = self.failures()
        if failures:
            bounds = self.bounds()
            raise ParityError(
                "Exported graphs differ from PyTorch: "
                + ", ".join(f"{name} {value:.3e} > {bounds[name]:.1e}" for name, value in failures.items())
                + f" (one-step error {self.step_one_step_error:.2e}, PyTorch float32 drift {self.reference_drift:.2e}). "
                "Check the cell for ops that trace differently (Python branches on tensor values, "
                "in-place updates, non-float32 tensors)."
            )


def log_uniform_dt(
    generator: np.random.Generator, shape: tuple[int, ...], dt_range_s: tuple[float, float]
) -> np.ndarray:
    """float32 Δt in seconds, log-uniform over ``dt_range_s``."""
    low, high = np.log(dt_range_s[0]), np.log(dt_range_s[1])
    return np.exp(generator.uniform(low, high, size=shape)).astype(np.float32)


def _session(path: Path) -> ort.InferenceSession:
    session, _ = open_session(Path(path), SessionConfig())  # the engine's own settings
    return session


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def _torch_rollout(
    cell: RecurrentCell, x: np.ndarray, hidden: np.ndarray, dt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Step ``cell`` over x [B,T,F], dt [B,T,1]; returns (y [B,T,O], hidden after every step [B,T,H])."""
    h = torch.from_numpy(hidden)
    ys, hs = [], []
    for t in range(x.shape[1]):
        y, h = cell(torch.from_numpy(x[:, t]), h, torch.from_numpy(dt[:, t]))
        ys.append(y.numpy())
        hs.append(h.numpy())
    return np.stack(ys, axis=1), np.stack(hs, axis=1)


def _one_step(
    session: ort.InferenceSession, x: np.ndarray, hidden: np.ndarray, dt: np.ndarray, h_torch: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every step at once (as one batch), each fed torch's hidden state before it."""
    batch, steps = x.shape[:2]
    h_before = np.concatenate([hidden[:, None], h_torch[:, :-1]], axis=1)
    y, h = session.run(
        None,
        {
            "x": x.reshape(batch * steps, -1),
            "hidden": h_before.reshape(batch * steps, -1),
            "dt": dt.reshape(batch * steps, 1),
        },
    )
    return y.reshape(batch, steps, -1), h.reshape(batch, steps, -1)


def _step_rollout(
    session: ort.InferenceSession, x: np.ndarray, hidden: np.ndarray, dt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    ys, hs = [], []
    for t in range(x.shape[1]):
        y, hidden = session.run(None, {"x": x[:, t], "hidden": hidden, "dt": dt[:, t]})
        ys.append(y)
        hs.append(hidden)
    return np.stack(ys, axis=1), np.stack(hs, axis=1)


def _window_rollout(
    session: ort.InferenceSession, steps: int, x: np.ndarray, hidden: np.ndarray, dt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``steps``; the tail is padded with x = 0, Δt = 0. Returns (y [B,T,O], final hidden)."""
    batch, total, features = x.shape
    padded = -(-total // steps) * steps
    x_pad = np.zeros((batch, padded, features), dtype=np.float32)
    dt_pad = np.zeros((batch, padded, 1), dtype=np.float32)
    x_pad[:, :total], dt_pad[:, :total] = x, dt
    ys = []
    for start in range(0, padded, steps):
        window = slice(start, start + steps)
        y, hidden = session.run(None, {"x": x_pad[:, window], "hidden": hidden, "dt": dt_pad[:, window]})
        ys.append(y)
    return np.concatenate(ys, axis=1)[:, :total], hidden


def verify_graphs(
    cell: RecurrentCell,
    step_path: Path,
    *,
    window_path: Path | None = None,
    window_steps: int | None = None,
    encoder: nn.Module | None = None,
    encoder_path: Path | None = None,
    steps: int = 200,
    batch_sizes: tuple[int, ...] = (1, 3),
    dt_range_s: tuple[float, float] = (1e-4, 1.0),
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
) -> ParityReport:
    """Compare exported graphs with ``cell`` (and ``encoder``) in PyTorch; see the module docstring.

    Args:
        cell: The float32 cell the graphs were exported from.
        step_path: Its step graph.
        window_path: Its window graph, if any; ``window_steps`` is then its T.
        window_steps: T of the window graph.
        encoder: The image encoder, if ``encoder_path`` is given.
        encoder_path: Its encoder graph.
        steps: Rollout length.
        batch_sizes: Batch sizes to run (each a separate rollout).
        dt_range_s: Δt range (seconds) for the log-uniform draw.
        tolerance: Stored in the report; call :meth:`ParityReport.raise_if_failed` to enforce it.
        seed: Seeds the inputs.

    Returns:
        The :class:`ParityReport`; it does not raise on a mismatch by itself.
    """
    if window_path is not None and window_steps is None:
        raise ExportError("verify_graphs needs window_steps together with window_path.")
    with torch_threads(1):
        return _verify(
            cell, step_path, window_path, window_steps, encoder, encoder_path, steps, batch_sizes, dt_range_s, tolerance, seed
        )


def _verify(
    cell: RecurrentCell,
    step_path: Path,
    window_path: Path | None,
    window_steps: int | None,
    encoder: nn.Module | None,
    encoder_path: Path | None,
    steps: int,
    batch_sizes: tuple[int, ...],
    dt_range_s: tuple[float, float],
    tolerance: float,
    seed: int,
) -> ParityReport:
    generator = np.random.default_rng(seed)
    step_session = _session(step_path)
    window_session = None if window_path is None else _session(window_path)
    step_error, one_step_error, drift, window_error, window_vs_step = 0.0, 0.0, 0.0, 0.0, 0.0
    was_training = cell.training
    cell.eval()
    reference = copy.deepcopy(cell).double().eval()
    try:
        with torch.no_grad():
            for batch in batch_sizes:
                x = generator.standard_normal((batch, steps, cell.input_size)).astype(np.float32)
                dt = log_uniform_dt(generator, (batch, steps, 1), dt_range_s)
                hidden = (0.5 * generator.standard_normal((batch, cell.state_size))).astype(np.float32)
                y_torch, h_torch = _torch_rollout(cell, x, hidden, dt)
                y_64, h_64 = _torch_rollout(reference, x.astype(np.float64), hidden.astype(np.float64), dt.astype(np.float64))
                drift = max(drift, _max_diff(y_torch, y_64), _max_diff(h_torch, h_64))
                y_step, h_step = _step_rollout(step_session, x, hidden, dt)
                step_error = max(step_error, _max_diff(y_step, y_torch), _max_diff(h_step, h_torch))
                y_one, h_one = _one_step(step_session, x, hidden, dt, h_torch)
                one_step_error = max(one_step_error, _max_diff(y_one, y_torch), _max_diff(h_one, h_torch))
                if window_session is not None:
                    assert window_steps is not None
                    y_window, h_window = _window_rollout(window_session, window_steps, x, hidden, dt)
                    window_error = max(window_error, _max_diff(y_window, y_torch), _max_diff(h_window, h_torch[:, -1]))
                    window_vs_step = max(
                        window_vs_step, _max_diff(y_window, y_step), _max_diff(h_window, h_step[:, -1])
                    )
    finally:
        cell.train(was_training)
    encoder_error = None
    if encoder is not None and encoder_path is not None:
        encoder_error = _encoder_error(encoder, encoder_path, batch_sizes, generator)
    return ParityReport(
        tolerance=tolerance,
        steps=steps,
        batch_sizes=tuple(batch_sizes),
        dt_range_s=dt_range_s,
        step_error=step_error,
        step_one_step_error=one_step_error,
        reference_drift=drift,
        window_error=None if window_session is None else window_error,
        window_vs_step_error=None if window_session is None else window_vs_step,
        encoder_error=encoder_error,
    )


def _encoder_error(
    encoder: nn.Module, encoder_path: Path, batch_sizes: tuple[int, ...], generator: np.random.Generator
) -> float:
    session = _session(encoder_path)
    (image_input,) = session.get_inputs()
    channels, height, width = (int(d) for d in image_input.shape[1:])
    was_training = encoder.training
    encoder.eval()
    error = 0.0
    try:
        with torch.no_grad():
            for batch in batch_sizes:
                image = generator.standard_normal((batch, channels, height, width)).astype(np.float32)
                (embedding,) = session.run(None, {"image": image})
                error = max(error, _max_diff(embedding, encoder(torch.from_numpy(image)).numpy()))
    finally:
        encoder.train(was_training)
    return error
