"""The stepping engine: one policy's recurrent state, advanced by stamped inputs.

Per step the engine does no allocation it can avoid: the normalised input, Δt, output and
two hidden buffers are preallocated and bound to onnxruntime once (io_binding), in two
bindings (:class:`_Side`) that read one hidden buffer and write the other; each step moves to
the other side, so the new state is never copied. Measured on a small graph (see ``lnn-ros
bench``), binding once is about twice as fast as ``session.run`` with a feed dict, which
allocates its outputs on every call. The common step (a finite input whose stamp continues the
stream) takes one stamp check (:meth:`StampClock.continue_stream`) and one pass over the outputs.
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
from lnn_ros.engine.fused_input import FUSED_INPUT, FUSED_OUTPUT, fused_input_graph
from lnn_ros.engine.outcome import Outcome
from lnn_ros.engine.plan import UNROLLED_STEPS, StepPlan, StepRun, UnrolledSteps, WindowRunner
from lnn_ros.engine.session import SessionConfig, bound_call, check_graph_runs, open_graph, open_session, run_options
from lnn_ros.errors import BundleError, EngineError
from lnn_ros.units import NS_PER_S

# Module-level names for the step's hot path (a global lookup, not an attribute lookup per call).
_subtract = np.subtract
_multiply = np.multiply
_isfinite = math.isfinite
# A NamedTuple's own __new__ is a Python function; tuple.__new__ builds the same instance,
# about 0.1 µs cheaper (the common step's result).
_new_tuple = tuple.__new__
_STEPPED = Outcome.STEPPED  # an enum member's class attribute costs ~70 ns on Python 3.11



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


class _Side:
    """One io-binding's buffers: ``call`` reads ``x_row`` and ``hidden`` and writes the new state
    into ``other.hidden`` and the output into ``other.y``; the engine then steps from ``other``,
    so the state is never copied. Without io_binding there is one side, its own ``other``."""

    __slots__ = ("call", "hidden", "other", "output", "x_row", "y")

    def __init__(self, x_row: np.ndarray, hidden: np.ndarray, y: np.ndarray) -> None:
        self.call: Callable[[], None] | None = None
        self.x_row = x_row  # [F], the normalised input
        self.hidden = hidden  # [1, H]
        self.y = y  # [1, O]
        self.output = y[0]
        self.other = self


def _bind(session: ort.InferenceSession, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> ort.IOBinding:
    """An io-binding of ``session`` to the float32 CPU buffers ``inputs`` and ``outputs`` (by name)."""
    binding = session.io_binding()
    for name, array in inputs.items():
        binding.bind_input(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
    for name, array in outputs.items():
        binding.bind_output(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
    return binding


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
        self._dt = np.zeros((1, 1), dtype=np.float32)
        self._dt_flat = self._dt.reshape(1)  # a view: one int index is cheaper than [0, 0]
        self._run_options = run_options(self.provider)
        self._bindings: tuple[ort.IOBinding, ...] = ()  # kept alive with the calls that use them
        self.fused_input = False  # x and hidden bound as one buffer (lnn_ros.engine.fused_input)
        self.fused_output = False  # hidden_out and y written as one buffer, right after the next input row
        self._side = self._make_sides(model.input_size, model.state_size, model.output_size)
        self._plan: StepPlan | None = None
        self._window: WindowRunner | None = None
        self._warm_up()

    # ------------------------------------------------------------------ set-up
    def _open(self, role: str) -> tuple[ort.InferenceSession, str]:
        """Open graph ``role`` from the bundle's checked bytes, check its signature and run it once."""
        session, provider = open_graph(self.bundle, role, self.config.session)
        check_graph_runs(self.bundle, role, session)
        return session, provider

    def _make_sides(self, features: int, state: int, outputs: int) -> _Side:
        """The buffers and io-bindings (:class:`_Side`); returns the side the first step reads.

        Bound buffers: with the bundle's graph, one ``x`` and one ``y`` and a ``hidden`` per side;
        with :func:`fused_input_graph` a ``[x | hidden]`` buffer per side (``y`` shared), or
        ``[x | hidden | y]`` when the graph writes ``hy = [hidden_out, y]`` as one output.
        """
        if not self.config.io_binding:
            return _Side(np.zeros(features, np.float32), np.zeros((1, state), np.float32), np.zeros((1, outputs), np.float32))
        fused = self._fused_session()
        shared_y = np.zeros((1, outputs), dtype=np.float32)
        if fused is None:
            x = np.zeros((1, features), dtype=np.float32)
            sides = [_Side(x[0], np.zeros((1, state), np.float32), shared_y) for _ in range(2)]
            session = self.session
            feeds: list[dict[str, np.ndarray]] = [{"x": x, "dt": self._dt, "hidden": side.hidden} for side in sides]
            results: list[dict[str, np.ndarray]] = [{"y": shared_y, "hidden_out": side.hidden} for side in sides[::-1]]
        else:
            session, self.fused_output = fused
            self.fused_input = True
            end = features + state
            # A call reads [x, hidden] from one buffer and writes its state (and its output) into
            # the other, right after the next call's input row.
            buffers = [np.zeros((1, end + outputs * self.fused_output), np.float32) for _ in range(2)]
            sides = [_Side(b[0, :features], b[:, features:end], b[:, end:] if self.fused_output else shared_y) for b in buffers]
            feeds = [{FUSED_INPUT: b[:, :end], "dt": self._dt} for b in buffers]
            if self.fused_output:
                results = [{FUSED_OUTPUT: b[:, features:]} for b in buffers[::-1]]
            else:
                results = [{"y": shared_y, "hidden_out": side.hidden} for side in sides[::-1]]
        sides[0].other, sides[1].other = sides[1], sides[0]
        self._bindings = tuple(_bind(session, inputs, outs) for inputs, outs in zip(feeds, results))
        for side, binding in zip(sides, self._bindings):
            side.call = bound_call(session, binding, self._run_options)
        return sides[0]

    def _fused_session(self) -> tuple[ort.InferenceSession, bool] | None:
        """The step graph reading ``x`` and ``hidden`` from one buffer (and writing ``hidden_out``
        and ``y`` as one, if it ends in their Split), if it has the pattern and gives exactly the
        bundle graph's outputs on a random input; else None (the bundle's graph is used).
        The flag says whether the outputs are fused."""
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
        want = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, {"x": x, "hidden": hidden, "dt": dt})))
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {FUSED_INPUT: np.concatenate([x, hidden], axis=1), "dt": dt})))
        fused_output = FUSED_OUTPUT in got
        if fused_output:
            joined = got.pop(FUSED_OUTPUT)
            got = {"hidden_out": joined[:, : model.state_size], "y": joined[:, model.state_size :]}
        if got.keys() != want.keys() or any(not np.array_equal(want[name], got[name]) for name in want):
            return None
        return session, fused_output

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
        for side in (self._side, self._side.other):
            side.hidden.fill(0.0)
            side.y.fill(0.0)
        self._plan = None
        self._dt.fill(0.0)
        if self.encoder_session is not None and self.manifest.camera is not None:
            camera = self.manifest.camera
            image = np.zeros((1, camera.channels, camera.height, camera.width), dtype=np.float32)
            self.encoder_session.run(None, {"image": image})

    # ------------------------------------------------------------------ state
    @property
    def _hidden(self) -> np.ndarray:
        """The state buffer [1, H] that the next step reads."""
        return self._side.hidden

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
        side = self._side
        x = side.x_row
        _subtract(features, self._mean, x)  # out= given positionally: cheaper than a keyword
        _multiply(x, self._inv_std, x)
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
        call = side.call
        if call is not None and self._plan is None:  # the common case, inlined: one bound run
            self._dt_flat[0] = dt_s
            call()
            side = self._side = side.other  # the new state (and output) are there: no copy
        else:
            plan = self._plan
            if plan is None or not plan.take(stamp_ns, x, side.y, side.hidden):
                if plan is not None:
                    self._settle()
                self._dt_flat[0] = dt_s
                self._run()
            elif plan.exhausted:
                self._plan = None
            side = self._side
        output = side.output
        # One Python pass over O floats: NaN fails every comparison, so it lands here too.
        values = output.tolist()
        for v, low, high in zip(values, self._low_list, self._high_list):
            if not low <= v <= high:
                break
        else:
            return _new_tuple(StepResult, (_STEPPED, output, dt_s))
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
        side = self._side
        if side.call is not None:
            side.call()
            self._side = side.other  # the new state is there: no copy
        else:
            feeds = {"x": side.x_row[None], "hidden": side.hidden, "dt": self._dt}
            y, hidden = self.session.run(None, feeds, self._run_options)
            np.copyto(side.y, y)
            np.copyto(side.hidden, hidden)

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
