"""onnxruntime sessions: thread counts and execution providers, with fallback to CPU."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

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


def open_session(path: Path, config: SessionConfig) -> tuple[ort.InferenceSession, str]:
    """Open ``path`` with ``config``; returns the session and the provider actually used first."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.intra_op_threads
    options.inter_op_num_threads = config.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        providers = config.resolved_providers()
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=providers,
            provider_options=[config.provider_options(name) for name in providers],
        )
    except Exception as exc:  # onnxruntime raises several private exception types
        raise BundleError(f"{path}: onnxruntime could not load the graph ({exc}).") from None
    provider = session.get_providers()[0]
    LOG.info("Loaded %s with execution provider %s.", path.name, provider)
    return session, provider
