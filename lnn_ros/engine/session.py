"""onnxruntime sessions: thread counts and execution providers (with fallback to CPU), and
opening a bundle's graphs from the bytes the bundle read, checked against the manifest and run once."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lnn_ros.bundle.store import Bundle, Shape, check_graph_io, expected_io
from lnn_ros.errors import BundleError, EngineError

LOG = logging.getLogger("lnn_ros.engine")
KNOWN_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


@dataclass(frozen=True)
class SessionConfig:
    """How onnxruntime runs the graphs.

    Attributes:
        intra_op_threads: threads inside one operator (1 keeps latency steady on a busy CPU).
        inter_op_threads: threads across independent operators.
        providers: execution providers in order of preference (``cpu``, ``cuda``, ``tensorrt``
            or the onnxruntime names); unavailable ones are skipped with a log line and
            the CPU provider is always the last fallback.
        tensorrt_cache_path: TensorRT only: folder where built engines are cached and reused
            across starts ('' = rebuild at every start).
        tensorrt_fp16: TensorRT only: allow FP16 kernels.
    """

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    tensorrt_cache_path: str = ""
    tensorrt_fp16: bool = False

    def __post_init__(self) -> None:
        for name, value in (("intra_op_threads", self.intra_op_threads), ("inter_op_threads", self.inter_op_threads)):
            if not isinstance(value, int) or value < 0:
                raise EngineError(f"SessionConfig.{name} must be an integer >= 0 (0 = onnxruntime default), got {value!r}.")
        for provider in self.providers:
            if PROVIDER_ALIASES.get(provider.lower(), provider) not in KNOWN_PROVIDERS:
                raise EngineError(
                    f"Unknown execution provider {provider!r}; use one of {list(PROVIDER_ALIASES)} or {list(KNOWN_PROVIDERS)}."
                )

    def resolved_providers(self) -> list[str]:
        """Requested providers that this onnxruntime build has, CPU always last."""
        available = set(ort.get_available_providers())
        chosen: list[str] = []
        for provider in self.providers:
            name = PROVIDER_ALIASES.get(provider.lower(), provider)
            if name not in available:
                LOG.warning("Execution provider %s is not available in this onnxruntime build; skipping it.", name)
            elif name not in chosen:
                chosen.append(name)
        if "CPUExecutionProvider" in chosen:
            chosen.remove("CPUExecutionProvider")
        chosen.append("CPUExecutionProvider")
        return chosen

    def provider_options(self, provider: str) -> dict[str, str]:
        """onnxruntime's options for ``provider`` (its full name): the TensorRT engine cache and FP16."""
        if provider != "TensorrtExecutionProvider":
            return {}
        options = {"trt_fp16_enable": str(self.tensorrt_fp16)}
        if self.tensorrt_cache_path:
            options.update(trt_engine_cache_enable="True", trt_engine_cache_path=self.tensorrt_cache_path)
        return options


def open_session(
    source: Path | bytes, config: SessionConfig, label: str | Path | None = None
) -> tuple[ort.InferenceSession, str]:
    """Open an ONNX graph with ``config``; returns the session and the provider actually used first.

    ``source`` is the graph's bytes (what a :class:`~lnn_ros.bundle.Bundle` read and hashed:
    the bytes checked are the bytes run) or a path; ``label`` names it in messages.

    Raises:
        BundleError: onnxruntime refused the graph.
    """
    name = str(label if label is not None else source if isinstance(source, Path) else "graph")
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.intra_op_threads
    options.inter_op_num_threads = config.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    model = source if isinstance(source, bytes) else str(source)
    try:
        providers = config.resolved_providers()
        session = ort.InferenceSession(
            model, sess_options=options, providers=providers,
            provider_options=[config.provider_options(provider) for provider in providers],
        )
    except Exception as exc:  # onnxruntime raises several private exception types
        raise BundleError(f"{name}: onnxruntime could not load the graph ({_one_line(exc)}).") from None
    provider = session.get_providers()[0]
    LOG.info("Loaded %s with execution provider %s.", Path(name).name, provider)
    return session, provider


def run_once(session: ort.InferenceSession, feeds: dict[str, np.ndarray], label: str | Path) -> list[np.ndarray]:
    """Run ``session`` on ``feeds``; onnxruntime's failures become one BundleError naming ``label``.

    Raises:
        BundleError: the graph failed to run on inputs of the shapes the manifest promises.
    """
    try:
        outputs = session.run(None, feeds)
    except Exception as exc:  # onnxruntime's Fail / InvalidArgument / RuntimeException
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
        raise BundleError(f"{label}: the graph failed to run on inputs {shapes} ({_one_line(exc)}).") from None
    return [np.asarray(o) for o in outputs]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 400 else f"{text[:397]}..."


def open_graph(bundle: Bundle, role: str, config: SessionConfig) -> tuple[ort.InferenceSession, str]:
    """Open graph ``role`` from the bytes ``bundle`` read and check its inputs/outputs against the manifest.

    Raises:
        BundleError: onnxruntime refused the graph, or its signature differs from the manifest.
    """
    label = bundle.graph_path(role)
    session, provider = open_session(bundle.graph_data(role), config, label)
    check_graph_io(label, role, bundle.manifest, session.get_inputs(), session.get_outputs())
    return session, provider


def _concrete(shape: Shape) -> tuple[int, ...]:
    return tuple(1 if dim is None else dim for dim in shape)


def check_graph_runs(bundle: Bundle, role: str, session: ort.InferenceSession) -> None:
    """Run graph ``role`` once with batch 1 on the manifest's shapes: the normalised mean input
    (zeros), a zero state and Δt = ``dt.max_s``. Every output must have exactly the promised
    shape, be float32 and finite.

    Raises:
        BundleError: naming the graph and the output that is wrong.
    """
    label = bundle.graph_path(role)
    want_in, want_out = expected_io(bundle.manifest, role)
    feeds = {name: np.zeros(_concrete(shape), dtype=np.float32) for name, shape in want_in.items()}
    if "dt" in feeds:
        feeds["dt"].fill(bundle.manifest.dt.max_s)
    outputs = run_once(session, feeds, label)
    for info, value in zip(session.get_outputs(), outputs):
        shape = _concrete(want_out[info.name])
        if value.shape != shape or value.dtype != np.float32:
            raise BundleError(
                f"{label}: output {info.name!r} came out {value.dtype} {list(value.shape)} but must be float32 "
                f"{list(shape)} for the inputs {[list(v.shape) for v in feeds.values()]}."
            )
        if not np.isfinite(value).all():
            raise BundleError(f"{label}: output {info.name!r} is NaN or Inf for the mean input and a zero state.")


def check_bundle_graphs(bundle: Bundle, config: SessionConfig = SessionConfig()) -> dict[str, str]:
    """Open, signature-check and run once every graph of ``bundle`` (window included).

    Returns the execution provider used per graph role.

    Raises:
        BundleError: the first graph that does not load, match the manifest or run.
    """
    providers: dict[str, str] = {}
    for role in bundle.manifest.graphs:
        session, providers[role] = open_graph(bundle, role, config)
        check_graph_runs(bundle, role, session)
    return providers


def run_options(provider: str) -> ort.RunOptions:
    """The engine's run options: on the CPU provider, no end-of-run device synchronisation.

    With ``run_options=None`` onnxruntime builds default options on every call and, at the end
    of each run, synchronises every execution provider; on the CPU there is nothing to wait
    for, and skipping both saves about 0.5 µs per step (``lnn-ros bench``). On CUDA / TensorRT
    the synchronisation is what makes the outputs ready, so it stays.
    """
    options = ort.RunOptions()
    if provider == "CPUExecutionProvider":
        options.add_run_config_entry("disable_synchronize_execution_providers", "1")
    return options


def bound_call(session: ort.InferenceSession, binding: ort.IOBinding, options: ort.RunOptions) -> Callable[[], None]:
    """``session.run_with_iobinding(binding, options)`` as a no-argument call, without the Python wrapper where possible.

    onnxruntime >= 1.2x's wrapper checks for WebGPU graph capture on every call (a pybind call
    and a few lookups, about 1 µs); the engine binds CPU buffers and never captures, so it calls
    the C++ method directly, falling back to the public wrapper if the private names change.
    """
    raw_run = getattr(getattr(session, "_sess", None), "run_with_iobinding", None)
    raw_binding = getattr(binding, "_iobinding", None)
    if raw_run is None or raw_binding is None:
        return functools.partial(session.run_with_iobinding, binding, options)
    return functools.partial(raw_run, raw_binding, options)
