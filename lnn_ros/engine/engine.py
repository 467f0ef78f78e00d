"""The stepping engine: one policy's recurrent state, advanced by stamped inputs.

Per step the engine does no allocation it can avoid: the normalised input, Δt, output and
two hidden buffers are preallocated and bound to onnxruntime once (io_binding), in two
bindings that read one hidden buffer and write the other; each step swaps them, so the new
state is never copied. Measured on a small graph (see ``lnn-ros bench``), binding once is
about twice as fast as ``session.run`` with a feed dict, which allocates its outputs on
every call. The common step (a finite input whose stamp continues the stream) takes one
stamp check (:meth:`StampClock.continue_stream`) and one pass over the outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort

from lnn_ros.bundle import Bundle, load_bundle
from lnn_ros.engine.clock import StampClock
from lnn_ros.engine.fused_input import FUSED_INPUT, fused_input_graph
from lnn_ros.engine.outcome import Outcome
from lnn_ros.engine.plan import UNROLLED_STEPS, StepPlan, StepRun, UnrolledSteps, WindowRunner
from lnn_ros.engine.session import SessionConfig, bound_call, check_graph_runs, open_graph, open_session, run_options
from lnn_ros.errors import BundleError, EngineError
from lnn_ros.units import NS_PER_S

# Module-level names for the step's hot path (a global lookup, not an attribute lookup per call).
_subtract = np.subtract
_multiply = np.multiply
_isfinite = math.isfinite



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
        self._dt_flat = self._dt.reshape(1)  # a view: one int index is cheaper than [0, 0]
        self._hidden = np.zeros((1, model.state_size), dtype=np.float32)
        self._hidden_next = np.zeros((1, model.state_size), dtype=np.float32)
        self._y = np.zeros((1, model.output_size), dtype=np.float32)
        self._output = self._y[0]
        self._x_row = self._x[0]
        # Two bindings: hidden -> hidden_next, and back; _run swaps them (and the two arrays).
        self._call: Callable[[], None] | None = None
        self._spare_call: Callable[[], None] | None = None
        self._bindings: tuple[ort.IOBinding, ...] = ()  # kept alive with the calls that use them
        self._run_options = run_options(self.provider)
        self._spare_x_row = self._x_row  # the input row of the spare binding: the same row unless fused
        self.fused_input = False  # x and hidden bound as one buffer (lnn_ros.engine.fused_input)
        if config.io_binding:
            fused = self._fused_session()
            session = self.session if fused is None else fused
            if fused is not None:
                # Two [1, F + H] buffers: a call reads [x, hidden] from one and writes its state
                # into the other's hidden part, right after the next call's input row.
                features = model.input_size
                front = np.zeros((1, features + model.state_size), dtype=np.float32)
                back = np.zeros_like(front)
                self._x_row, self._spare_x_row = front[0, :features], back[0, :features]
                self._hidden, self._hidden_next = front[:, features:], back[:, features:]
                self._bindings = (self._make_fused_binding(fused, front, back), self._make_fused_binding(fused, back, front))
                self.fused_input = True
            else:
                self._bindings = (
                    self._make_binding(self._hidden, self._hidden_next),
                    self._make_binding(self._hidden_next, self._hidden),
                )
            self._call = bound_call(session, self._bindings[0], self._run_options)
            self._spare_call = bound_call(session, self._bindings[1], self._run_options)
        self._plan: StepPlan | None = None
        self._window: WindowRunner | None = None
        self._warm_up()

    # ------------------------------------------------------------------ set-up
    def _open(self, role: str) -> tuple[ort.InferenceSession, str]:
        """Open graph ``role`` from the bundle's checked bytes, check its signature and run it once."""
        session, provider = open_graph(self.bundle, role, self.config.session)
        check_graph_runs(self.bundle, role, session)
        return session, provider

    def _make_binding(self, hidden: np.ndarray, hidden_out: np.ndarray) -> ort.IOBinding:
        binding = self.session.io_binding()
        for name, array in (("x", self._x), ("dt", self._dt), ("hidden", hidden)):
            binding.bind_input(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
        for name, array in (("y", self._y), ("hidden_out", hidden_out)):
            binding.bind_output(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
        return binding

    def _fused_session(self) -> ort.InferenceSession | None:
        """The step graph reading ``x`` and ``hidden`` from one buffer, if it has the pattern and
        gives exactly the bundle graph's outputs on a random input; else None (the bundle's graph is used)."""
        data = fused_input_graph(self.bundle.graph_data("step"))
        if data is None:
            return None
        try:
            session, _ = open_session(data, self.config.session, f"{self.bundle.graph_path('step')} (x and hidden as one input)")
        except BundleError:
            return None
        model = self.manifest.model
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, model.input_size)).astype(np.float32)
        hidden = rng.standard_normal((1, model.state_size)).astype(np.float32)
        dt = np.full((1, 1), self.max_dt_s / 2, dtype=np.float32)
        want = self.session.run(None, {"x": x, "hidden": hidden, "dt": dt})
        got = session.run(None, {FUSED_INPUT: np.concatenate([x, hidden], axis=1), "dt": dt})
        names = [o.name for o in self.session.get_outputs()]
        order = [o.name for o in session.get_outputs()]
        if any(not np.array_equal(want[names.index(name)], got[order.index(name)]) for name in names):
            return None
        return session

    def _make_fused_binding(self, session: ort.InferenceSession, source: np.ndarray, target: np.ndarray) -> ort.IOBinding:
        features = self.manifest.model.input_size
        binding = session.io_binding()
        binding.bind_input(FUSED_INPUT, "cpu", 0, np.float32, list(source.shape), source.ctypes.data)
        binding.bind_input("dt", "cpu", 0, np.float32, list(self._dt.shape), self._dt.ctypes.data)
        hidden_out = target[:, features:]
        binding.bind_output("y", "cpu", 0, np.float32, list(self._y.shape), self._y.ctypes.data)
        binding.bind_output("hidden_out", "cpu", 0, np.float32, list(hidden_out.shape), hidden_out.ctypes.data)
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
        self._settle()
        hidden: np.ndarray = self._hidden[0].copy()
        return hidden

    def set_hidden(self, hidden: np.ndarray) -> None:
        """Overwrite the hidden state (e.g. to resume a rollout); shape [H]."""
        self._plan = None
        self._hidden[0, :] = hidden

    def reset(self) -> None:
        """Explicit reset: zero state, and the next input only initialises the stamp."""
        self._zero_state()
        self.clock.forget()
        self.counters.explicit_resets += 1

    def _zero_state(self) -> None:
        self._plan = None
        self._hidden.fill(0.0)

    # ------------------------------------------------------------------ stepping
    def step(self, features: np.ndarray, stamp_ns: int) -> StepResult:
        """Feed one raw (un-normalised) feature vector [F] stamped ``stamp_ns``.

        Returns the outcome, the clamped output [O] (only when stepped) and the Δt used.
        """
        x = self._x_row
        _subtract(features, self._mean, out=x)
        _multiply(x, self._inv_std, out=x)
        # NaN or Inf anywhere makes the sum non-finite; Python's float64 sum of float32 values
        # cannot overflow, and for a few features it is cheaper than numpy's reduction.
        if not _isfinite(sum(x.tolist())):
            return StepResult(Outcome.NONFINITE_INPUT, None, 0.0)
        dt_s = self.clock.continue_stream(stamp_ns)
        if dt_s is None:  # not the common case: the full rule, which may not step
            self._settle()
            outcome, dt_s = self.clock.advance(stamp_ns)
            if outcome is Outcome.GAP_RESET:
                self._zero_state()
            if outcome is not Outcome.STEPPED:
                return StepResult(outcome, None, dt_s)
        if dt_s > self.max_dt_s:
            dt_s = self.max_dt_s
            self.counters.dt_clamped += 1
        call = self._call
        if self._plan is None and call is not None:  # the common case, inlined: one bound run, swap
            self._dt_flat[0] = dt_s
            call()
            # The new state is in _hidden_next: swap the buffers and the bindings, no copy.
            self._hidden, self._hidden_next = self._hidden_next, self._hidden
            self._call, self._spare_call = self._spare_call, call
            self._x_row, self._spare_x_row = self._spare_x_row, x
        else:
            plan = self._plan
            if plan is None or not plan.take(stamp_ns, x, self._y, self._hidden):
                if plan is not None:
                    self._settle()
                self._dt_flat[0] = dt_s
                self._run()
            elif plan.exhausted:
                self._plan = None
        output = self._output
        # One Python pass over O floats: NaN fails every comparison, so it lands here too.
        values = output.tolist()
        for v, low, high in zip(values, self._low_list, self._high_list):
            if not low <= v <= high:
                break
        else:
            return StepResult(Outcome.STEPPED, output, dt_s)
        if not all(math.isfinite(v) for v in values):
            self._zero_state()
            return StepResult(Outcome.NONFINITE_OUTPUT, None, dt_s)
        if self.config.clamp_outputs:
            self.counters.outputs_clamped += 1
            np.clip(output, self._low, self._high, out=output)
        return StepResult(Outcome.STEPPED, output, dt_s)

    # ------------------------------------------------------------------ planned steps (replay)
    @property
    def can_plan(self) -> bool:
        """True when the bundle has a window graph, so :meth:`plan` can batch steps."""
        return "window" in self.manifest.graphs

    def plan(self, features: np.ndarray, stamps_ns: Sequence[int]) -> int:
        """Precompute the next steps through the window graph, for inputs known in advance (replay).

        ``features`` [K,F] are the raw feature vectors that the next K :meth:`step` calls are
        expected to receive, stamped ``stamps_ns``. The leading run of them that would step
        (finite, each stamp 0 < Δt <= ``max_gap_s`` after the previous one) goes through the
        window graph, T steps per call, with the same Δt clamp as :meth:`step` (padding steps
        have Δt = 0, which keeps the state). Later :meth:`step` calls whose stamp and
        normalised input equal the planned ones take their output from the plan instead of
        running the step graph; any other call, or any change of state (reset, gap, a NaN
        output, :meth:`set_hidden`), drops the plan first, so the outcomes are those of stepping
        one by one and the outputs equal them to float rounding (the window graph is checked
        against T step calls at export). Returns how many steps were planned (0 without a
        window graph or a started stamp clock).
        """
        self._settle()
        last = self.clock.last_stamp_ns
        if last is None or not len(stamps_ns) or "window" not in self.manifest.graphs:
            return 0
        stamps = np.asarray(stamps_ns, dtype=np.int64)
        deltas = np.diff(stamps, prepend=np.int64(last))
        x = np.subtract(np.asarray(features, dtype=np.float32), self._mean)
        np.multiply(x, self._inv_std, out=x)
        good = (deltas > 0) & (deltas <= self.clock.max_gap_ns) & np.isfinite(x).all(axis=1)
        count = len(stamps) if good.all() else int(np.argmin(good))
        if count == 0:
            return 0
        if self._window is None:
            window_session, _ = self._open("window")
            steps = self.manifest.graphs["window"].steps
            assert steps is not None  # the manifest requires it for a window graph
            self._window = WindowRunner(window_session, steps)
        dts = np.minimum(deltas[:count] / NS_PER_S, self.max_dt_s).astype(np.float32)
        self._plan = StepPlan(self._window, stamps[:count].tolist(), x[:count], dts, self._hidden)
        return count

    def _settle(self) -> None:
        """Drop the plan, leaving the hidden state where the consumed planned steps took it."""
        plan = self._plan
        if plan is not None:
            self._plan = None
            plan.settle(self._hidden)

    def _run(self) -> None:
        call = self._call
        if call is not None:
            call()
            # The new state is in _hidden_next: swap the buffers and the bindings, no copy.
            self._hidden, self._hidden_next = self._hidden_next, self._hidden
            self._call, self._spare_call = self._spare_call, call
            self._x_row, self._spare_x_row = self._spare_x_row, self._x_row
        else:
            y, hidden = self.session.run(None, {"x": self._x, "hidden": self._hidden, "dt": self._dt}, self._run_options)
            np.copyto(self._y, y)
            np.copyto(self._hidden, hidden)

    def encode(self, image: np.ndarray) -> np.ndarray:
        """Run the encoder graph on a normalised image [1, C, H, W]; returns the embedding [E]."""
        if self.encoder_session is None:
            raise EngineError(f"Bundle {self.manifest.name!r} has no encoder graph; it takes no camera input.")
        (embedding,) = self.encoder_session.run(None, {"image": image})
        first: np.ndarray = embedding[0]
        return first

    # ------------------------------------------------------------------ runs of steps (replay)
    _unrolled: UnrolledSteps | None = None  # built by prepare_runs
    _unrolled_error: str | None = None  # why it could not be built
    _encoder_batches: bool | None = None  # the encoder's batch axis is dynamic (known on first use)

    def prepare_runs(self) -> bool:
        """Build the unrolled step graph of :meth:`run_steps` now (else on first use); False if it cannot be built."""
        if self._unrolled is None and self._unrolled_error is None:
            model = self.manifest.model
            label = f"{self.bundle.graph_path('step')} (unrolled)"
            try:
                self._unrolled = UnrolledSteps(
                    self.bundle.graph_data("step"),
                    UNROLLED_STEPS,
                    lambda data: open_session(data, self.config.session, label)[0],
                    self._run_options,
                    (model.input_size, model.state_size, model.output_size),
                )
            except (ValueError, BundleError) as exc:
                self._unrolled_error = str(exc)
        return self._unrolled is not None

    def run_steps(self, features: np.ndarray, stamps_ns: np.ndarray) -> StepRun | None:
        """K :meth:`step` calls at once, for inputs known in advance (a bag replay), when all are common steps.

        ``features`` [K,F] float32 raw feature vectors, ``stamps_ns`` [K] int64. Taken only if every
        one would be ``STEPPED`` by :meth:`step` with a finite output: the stamp clock has started,
        each stamp continues the previous one (0 < Δt <= ``max_gap_s``), every normalised input is
        finite and no plan is pending. The steps then go through the unrolled step graph
        (:class:`~lnn_ros.engine.plan.UnrolledSteps`, equal to step calls) and the engine ends as K
        step calls leave it: stamp clock, state, ``dt_clamped`` and ``outputs_clamped``. Otherwise,
        or if an output is NaN/Inf, it returns None and changes nothing: step them one by one.
        """
        last = self.clock.last_stamp_ns
        count = len(stamps_ns)
        if last is None or not count or self._plan is not None or not self.prepare_runs():
            return None
        assert self._unrolled is not None
        deltas = np.diff(stamps_ns, prepend=np.int64(last))
        if not (deltas > 0).all() or not (deltas <= self.clock.max_gap_ns).all():
            return None
        x = np.subtract(features, self._mean, dtype=np.float32)
        np.multiply(x, self._inv_std, out=x)
        if not np.isfinite(x).all():
            return None
        dt_s = deltas / NS_PER_S
        clamped = dt_s > self.max_dt_s
        y, hidden = self._unrolled.run(x, np.where(clamped, self.max_dt_s, dt_s).astype(np.float32), self._hidden)
        if not np.isfinite(y).all():
            return None
        self.clock.last_stamp_ns = int(stamps_ns[-1])
        self._hidden[...] = hidden
        self.counters.dt_clamped += int(np.count_nonzero(clamped))
        if self.config.clamp_outputs:
            outside = ((y < self._low) | (y > self._high)).any(axis=1)
            self.counters.outputs_clamped += int(np.count_nonzero(outside))
            np.clip(y, self._low, self._high, out=y)
        return StepRun(y, dt_s)

    def encode_batch(self, images: np.ndarray) -> np.ndarray:
        """:meth:`encode` of each normalised image of ``images`` [N, C, H, W]; returns [N, E].

        One encoder call when the graph's batch axis is dynamic, else one call per image.
        """
        if self.encoder_session is None:
            raise EngineError(f"Bundle {self.manifest.name!r} has no encoder graph; it takes no camera input.")
        if self._encoder_batches is None:
            self._encoder_batches = not isinstance(self.encoder_session.get_inputs()[0].shape[0], int)
        if len(images) > 1 and self._encoder_batches:
            (embeddings,) = self.encoder_session.run(None, {"image": images})
            return np.asarray(embeddings)
        return np.stack([self.encode(images[i : i + 1]) for i in range(len(images))])
