"""The stepping engine: one policy's recurrent state, advanced by stamped inputs.

Per step the engine does no allocation it can avoid: the normalised input, Δt, output and
both hidden buffers are preallocated and bound to onnxruntime once (io_binding), and the
new hidden state is copied back in place. Measured on a small graph (see ``lnn-ros bench``),
binding once is about twice as fast as ``session.run`` with a feed dict, which allocates
its outputs on every call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort

from lnn_ros.bundle import Bundle, load_bundle
from lnn_ros.engine.clock import StampClock
from lnn_ros.engine.outcome import Outcome
from lnn_ros.engine.session import SessionConfig, check_graph_runs, open_graph
from lnn_ros.errors import BundleError, EngineError


@dataclass(frozen=True)
class EngineConfig:
    """Engine settings; ``None`` fields take the bundle manifest's value.

    Attributes:
        session: onnxruntime threads and execution providers.
        max_gap_s: a gap between stamps above this resets the state.
        max_dt_s: a step's Δt above this (but within the gap) is clamped to it.
        clamp_outputs: clamp outputs to the manifest's ``min``/``max`` (on by default).
        io_binding: bind preallocated buffers to onnxruntime instead of ``session.run``.
    """

    session: SessionConfig = SessionConfig()
    max_gap_s: float | None = None
    max_dt_s: float | None = None
    clamp_outputs: bool = True
    io_binding: bool = True


@dataclass
class EngineCounters:
    """The engine's own events that are not the fate of a message (those are :class:`Outcome` s,
    counted per stream by the runtime); all start at 0."""

    dt_clamped: int = 0  # a step's Δt above max_dt_s (within the gap) was clamped to it
    outputs_clamped: int = 0  # a step's output left the manifest's [min, max] and was clamped
    explicit_resets: int = 0  # reset() calls

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class StepResult(NamedTuple):
    """What :meth:`Engine.step` did with one input.

    ``output`` is the engine's own buffer (overwritten by the next step): copy it to keep it.
    It is ``None`` unless ``outcome`` is ``STEPPED``.
    """

    outcome: Outcome
    output: np.ndarray | None
    dt_s: float


class Engine:
    """Runs a bundle's step graph (and encoder) on one stream of stamped inputs; batch 1."""

    def __init__(self, bundle: Bundle | str | Path, config: EngineConfig = EngineConfig()) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.config = config
        manifest = self.bundle.manifest
        self.manifest = manifest
        model = manifest.model

        self.session, self.provider = self._open("step")
        self.encoder_session: ort.InferenceSession | None = None
        if "encoder" in manifest.graphs:
            self.encoder_session, _ = self._open("encoder")

        max_gap_s = manifest.dt.max_gap_s if config.max_gap_s is None else config.max_gap_s
        max_dt_s = min(manifest.dt.max_s if config.max_dt_s is None else config.max_dt_s, max_gap_s)
        if not 0 < max_dt_s <= max_gap_s:
            raise EngineError(f"Engine Δt limits need 0 < max_dt_s <= max_gap_s, got {max_dt_s!r} and {max_gap_s!r}.")
        self.max_dt_s = max_dt_s
        self.clock = StampClock(max_gap_s=max_gap_s)
        self.counters = EngineCounters()

        self._mean = np.array([f.mean for f in manifest.features], dtype=np.float32)
        self._inv_std = np.array([1.0 / f.std for f in manifest.features], dtype=np.float32)
        self._low = np.array([o.min for o in manifest.outputs], dtype=np.float32)
        self._high = np.array([o.max for o in manifest.outputs], dtype=np.float32)
        self._low_list = self._low.tolist()
        self._high_list = self._high.tolist()
        self._x = np.zeros((1, model.input_size), dtype=np.float32)
        self._dt = np.zeros((1, 1), dtype=np.float32)
        self._hidden = np.zeros((1, model.state_size), dtype=np.float32)
        self._hidden_next = np.zeros((1, model.state_size), dtype=np.float32)
        self._y = np.zeros((1, model.output_size), dtype=np.float32)
        self._output = self._y[0]
        self._binding = self._make_binding() if config.io_binding else None
        self._warm_up()

    # ------------------------------------------------------------------ set-up
    def _open(self, role: str) -> tuple[ort.InferenceSession, str]:
        """Open graph ``role`` from the bundle's checked bytes, check its signature and run it once."""
        session, provider = open_graph(self.bundle, role, self.config.session)
        check_graph_runs(self.bundle, role, session)
        return session, provider

    def _make_binding(self) -> ort.IOBinding:
        binding = self.session.io_binding()
        for name, array in (("x", self._x), ("dt", self._dt)):
            binding.bind_input(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
        binding.bind_input("hidden", "cpu", 0, np.float32, list(self._hidden.shape), self._hidden.ctypes.data)
        binding.bind_output("y", "cpu", 0, np.float32, list(self._y.shape), self._y.ctypes.data)
        binding.bind_output(
            "hidden_out", "cpu", 0, np.float32, list(self._hidden_next.shape), self._hidden_next.ctypes.data
        )
        return binding

    def _warm_up(self) -> None:
        """Run each graph once at load: first runs allocate (and on CUDA / TensorRT build kernels),
        which must not happen inside the first sensor callback. State and buffers end as new.
        (Each graph already ran once in :meth:`_open`; this run goes through the io_binding.)"""
        self._dt[0, 0] = self.max_dt_s
        try:
            self._run()
        except Exception as exc:  # onnxruntime's own exception types
            raise BundleError(
                f"{self.bundle.graph_path('step')}: the step graph failed its first run ({' '.join(str(exc).split())})."
            ) from None
        self._zero_state()
        self._y.fill(0.0)
        self._dt.fill(0.0)
        if self.encoder_session is not None and self.manifest.camera is not None:
            camera = self.manifest.camera
            image = np.zeros((1, camera.channels, camera.height, camera.width), dtype=np.float32)
            self.encoder_session.run(None, {"image": image})

    # ------------------------------------------------------------------ state
    @property
    def hidden(self) -> np.ndarray:
        """A copy of the current hidden state [H]."""
        hidden: np.ndarray = self._hidden[0].copy()
        return hidden

    def set_hidden(self, hidden: np.ndarray) -> None:
        """Overwrite the hidden state (e.g. to resume a rollout); shape [H]."""
        self._hidden[0, :] = hidden

    def reset(self) -> None:
        """Explicit reset: zero state, and the next input only initialises the stamp."""
        self._zero_state()
        self.clock.forget()
        self.counters.explicit_resets += 1

    def _zero_state(self) -> None:
        self._hidden.fill(0.0)

    # ------------------------------------------------------------------ stepping
    def step(self, features: np.ndarray, stamp_ns: int) -> StepResult:
        """Feed one raw (un-normalised) feature vector [F] stamped ``stamp_ns``.

        Returns the outcome, the clamped output [O] (only when stepped) and the Δt used.
        """
        x = self._x[0]
        np.subtract(features, self._mean, out=x)
        np.multiply(x, self._inv_std, out=x)
        if not math.isfinite(x.sum()):  # NaN or Inf anywhere makes the sum non-finite
            return StepResult(Outcome.NONFINITE_INPUT, None, 0.0)
        outcome, dt_s = self.clock.advance(stamp_ns)
        if outcome is Outcome.GAP_RESET:
            self._zero_state()
        if outcome is not Outcome.STEPPED:
            return StepResult(outcome, None, dt_s)
        if dt_s > self.max_dt_s:
            dt_s = self.max_dt_s
            self.counters.dt_clamped += 1
        self._dt[0, 0] = dt_s
        self._run()
        values = self._output.tolist()
        # One Python pass over O floats: NaN fails every comparison, so it lands here too.
        if not all(low <= v <= high for v, low, high in zip(values, self._low_list, self._high_list)):
            if not all(math.isfinite(v) for v in values):
                self._zero_state()
                return StepResult(Outcome.NONFINITE_OUTPUT, None, dt_s)
            if self.config.clamp_outputs:
                self.counters.outputs_clamped += 1
                np.clip(self._output, self._low, self._high, out=self._output)
        return StepResult(Outcome.STEPPED, self._output, dt_s)

    def _run(self) -> None:
        if self._binding is not None:
            self.session.run_with_iobinding(self._binding)
            np.copyto(self._hidden, self._hidden_next)
        else:
            y, hidden = self.session.run(None, {"x": self._x, "hidden": self._hidden, "dt": self._dt})
            np.copyto(self._y, y)
            np.copyto(self._hidden, hidden)

    def encode(self, image: np.ndarray) -> np.ndarray:
        """Run the encoder graph on a normalised image [1, C, H, W]; returns the embedding [E]."""
        if self.encoder_session is None:
            raise EngineError(f"Bundle {self.manifest.name!r} has no encoder graph; it takes no camera input.")
        (embedding,) = self.encoder_session.run(None, {"image": image})
        first: np.ndarray = embedding[0]
        return first
