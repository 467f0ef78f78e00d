"""Export a recurrent cell (step and window graphs) and an image encoder to ONNX opset 17.

Graph contract (see :mod:`lnn_ros.bundle.manifest`)::

    step:    x [B,F], hidden [B,H], dt [B,1]        -> y [B,O], hidden_out [B,H]
    window:  x [B,T,F], hidden [B,H], dt [B,T,1]    -> y [B,T,O], hidden_out [B,H]
    encoder: image [B,C,height,width]               -> embedding [B,E]

The exporter is chosen by :class:`Exporter`. The default is the TorchScript exporter
(``torch.onnx.export(dynamo=False)``): it emits opset 17 natively, while the dynamo exporter of
torch 2.13 only implements opset >= 18 and reaches 17 through the ONNX version converter
(which warns it "may not be successful"), and it exports a graph in tens of milliseconds
instead of seconds (an unrolled LTC window graph takes the dynamo exporter tens of seconds).
Both produce plain-op graphs with a dynamic batch axis; the dynamo exporter is kept as the
fallback for a torch without the TorchScript exporter. Every file is then checked by
:func:`lnn_ros.onnx_export.checks.check_graph_file` whichever exporter wrote it.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from enum import Enum
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from lnn_ros.cells import RecurrentCell
from lnn_ros.onnx_export.checks import OPSET, check_graph_file
from lnn_ros.onnx_export.errors import ExportError
from lnn_ros.onnx_export.fuse import for_export

LOG = logging.getLogger("lnn_ros.onnx_export")
BATCH_AXIS = "batch"
_SAMPLE_BATCH = 2  # torch.export specialises sizes 0 and 1, so trace with 2
# Expected warnings, each matched by the start of its message and its category.
_EXPECTED_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # torch >= 2.9 on every dynamo=False call: the TorchScript exporter is deprecated (see above).
    ("You are using the legacy TorchScript-based ONNX export", DeprecationWarning),
    ("The feature will be removed", DeprecationWarning),  # the same, from inside the TorchScript exporter
    # dynamo: torch-internal pytree deprecation, and every input naming its axis 0 "batch".
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    ("# The axis name: batch will not be used", UserWarning),
)
_NOISY_LOGGERS = ("torch.onnx", "onnxscript")


class Exporter(Enum):
    """Which ``torch.onnx.export`` implementation writes the graph."""

    TORCHSCRIPT = "torchscript"
    DYNAMO = "dynamo"


class WindowUnroll(nn.Module):
    """``cell`` stepped ``steps`` times, unrolled in Python so the graph has no Loop node.

    ``y[:, t], hidden = cell(x[:, t], hidden, dt[:, t])`` for ``t = 0 .. steps-1``.

    Args:
        cell: The recurrent cell.
        steps: T, the fixed window length baked into the graph.
    """

    def __init__(self, cell: nn.Module, steps: int) -> None:
        super().__init__()
        if steps < 1:
            raise ExportError(f"A window graph needs at least 1 step, got steps={steps!r}.")
        self.cell = cell
        self.steps = steps

    def forward(self, x: Tensor, hidden: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        outputs = []
        for t in range(self.steps):
            y, hidden = self.cell(x[:, t], hidden, dt[:, t])
            outputs.append(y)
        return torch.stack(outputs, dim=1), hidden


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporters' known, expected chatter; real warnings still come through.

    The TorchScript exporter's deprecation warning is expected (see the module docstring), the
    dynamo exporter warns about its own internals and logs its opset-18-to-17 conversion and
    progress lines at WARNING/INFO.
    TracerWarnings are not silenced: they point at code that may not generalise.
    """
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for message, category in _EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        try:
            for logger in loggers:
                logger.setLevel(logging.ERROR)
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch with ``count`` intra-op threads for the block, then restore the previous count.

    Export checks step small cells thousands of times; extra threads only spin on such tiny ops
    and slow them down many times on a busy CPU.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Put ``module`` in eval mode for the block, then restore its training flag."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _export_torchscript(
    module: nn.Module, args: tuple[Tensor, ...], path: Path, input_names: Sequence[str], output_names: Sequence[str]
) -> None:
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=list(input_names),
        output_names=list(output_names),
        opset_version=OPSET,
        dynamo=False,
        do_constant_folding=True,
        dynamic_axes={name: {0: BATCH_AXIS} for name in (*input_names, *output_names)},
    )


def _export_dynamo(
    module: nn.Module, args: tuple[Tensor, ...], path: Path, input_names: Sequence[str], output_names: Sequence[str]
) -> None:
    batch = torch.export.Dim(BATCH_AXIS)
    program = torch.onnx.export(
        module,
        args,
        None,
        input_names=list(input_names),
        output_names=list(output_names),
        opset_version=OPSET,
        dynamo=True,
        dynamic_shapes=tuple({0: batch} for _ in args),
        verbose=False,
    )
    if program is None:
        raise ExportError(f"The dynamo exporter returned no program for {type(module).__name__}.")
    program.save(str(path), external_data=False)


_EXPORTERS = {Exporter.TORCHSCRIPT: _export_torchscript, Exporter.DYNAMO: _export_dynamo}
_FALLBACK = {Exporter.TORCHSCRIPT: Exporter.DYNAMO}  # tried when the chosen exporter raises


def _export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    *,
    role: str,
    exporter: Exporter,
    plain: nn.Module | None = None,
) -> Path:
    """Run the exporter (falling back to dynamo if TorchScript fails), tag and check the file.

    ``module`` may be a fused rewrite (:mod:`lnn_ros.onnx_export.fuse`) of ``plain``; the dynamo
    exporter always gets ``plain``: its opset-18-to-17 conversion leaves a ``Split`` with the
    opset-18 attribute ``num_outputs``, which the checker rejects.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = [exporter, *([_FALLBACK[exporter]] if exporter in _FALLBACK else [])]
    failures: list[str] = []
    used: Exporter | None = None
    with eval_mode(module), eval_mode(module if plain is None else plain), _quiet_export(), torch.no_grad():
        for candidate in order:
            try:
                traced = plain if candidate is Exporter.DYNAMO and plain is not None else module
                _EXPORTERS[candidate](traced, args, path, input_names, output_names)
            except Exception as exc:  # torch.onnx raises many private exception types
                failures.append(f"{candidate.value}: {type(exc).__name__}: {exc}")
                LOG.warning("The %s exporter failed on the %s graph (%s).", candidate.value, role, exc)
                continue
            used = candidate
            break
    if used is None:
        raise ExportError(f"Could not export the {role} graph to {str(path)!r}: " + " | ".join(failures))
    model = onnx.load(str(path))
    model.producer_name = "lnn_ros"
    onnx.helper.set_model_props(model, {"lnn_ros.role": role, "lnn_ros.exporter": used.value})
    onnx.save(model, str(path))
    check_graph_file(path)
    LOG.debug("Exported the %s graph to %s with the %s exporter.", role, path, used.value)
    return path


def _cell_samples(cell: RecurrentCell, steps: int | None) -> tuple[Tensor, Tensor, Tensor]:
    reference = next(iter(cell.parameters()), None)
    options = {"dtype": torch.float32} if reference is None else {"dtype": reference.dtype, "device": reference.device}
    generator = torch.Generator().manual_seed(0)
    time_shape = (_SAMPLE_BATCH,) if steps is None else (_SAMPLE_BATCH, steps)
    x = torch.randn(*time_shape, cell.input_size, generator=generator).to(**options)
    dt = (0.1 + torch.rand(*time_shape, 1, generator=generator)).to(**options)
    hidden = torch.zeros(_SAMPLE_BATCH, cell.state_size, **options)
    return x, hidden, dt


def _require_float32(module: nn.Module, what: str) -> None:
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point() and tensor.dtype != torch.float32:
            raise ExportError(f"The {what} tensor {name!r} is {tensor.dtype}; bundles are float32, call .float() first.")


def export_step_graph(cell: RecurrentCell, path: Path, *, exporter: Exporter = Exporter.TORCHSCRIPT) -> Path:
    """Write the one-step graph ``(x, hidden, dt) -> (y, hidden_out)`` of ``cell`` to ``path``.

    Cells with an inference rewrite (:func:`~lnn_ros.onnx_export.fuse.for_export`) are exported
    through it: the same function for Δt > 0 in fewer graph nodes, without the Δt <= 0 rule
    (the engine never steps with Δt <= 0; the window graph keeps the rule for its padding).

    Raises:
        ExportError: The export failed or the file breaks a rule of :func:`check_graph_file`.
    """
    _require_float32(cell, "cell")
    return _export(
        for_export(cell, zero_dt_rule=False),
        _cell_samples(cell, None),
        path,
        ("x", "hidden", "dt"),
        ("y", "hidden_out"),
        role="step",
        exporter=exporter,
        plain=cell,
    )


def export_window_graph(
    cell: RecurrentCell, path: Path, steps: int, *, exporter: Exporter = Exporter.TORCHSCRIPT
) -> Path:
    """Write the T-step window graph of ``cell`` (unrolled, see :class:`WindowUnroll`) to ``path``.

    Raises:
        ExportError: The export failed or the file breaks a rule of :func:`check_graph_file`.
    """
    _require_float32(cell, "cell")
    return _export(
        WindowUnroll(for_export(cell), steps),
        _cell_samples(cell, steps),
        path,
        ("x", "hidden", "dt"),
        ("y", "hidden_out"),
        role="window",
        exporter=exporter,
        plain=WindowUnroll(cell, steps),
    )


def export_encoder_graph(
    encoder: nn.Module, path: Path, image_shape: tuple[int, int, int], *, exporter: Exporter = Exporter.TORCHSCRIPT
) -> Path:
    """Write an image encoder ``image [B,C,H,W] -> embedding [B,E]`` to ``path``.

    Args:
        encoder: Any module mapping a normalised image batch to a flat embedding.
        path: Output ``.onnx`` file.
        image_shape: ``(C, H, W)``.

    Raises:
        ExportError: The encoder does not map to [B,E], or the export/check failed.
    """
    _require_float32(encoder, "encoder")
    sample = torch.randn(_SAMPLE_BATCH, *image_shape, generator=torch.Generator().manual_seed(0))
    with eval_mode(encoder), torch.no_grad():
        embedding = encoder(sample)
    if not isinstance(embedding, Tensor) or embedding.dim() != 2 or embedding.shape[0] != _SAMPLE_BATCH:
        shape = tuple(embedding.shape) if isinstance(embedding, Tensor) else type(embedding).__name__
        raise ExportError(f"The encoder must map [B,{','.join(map(str, image_shape))}] to [B,E], got {shape!r}.")
    return _export(encoder, (sample,), path, ("image",), ("embedding",), role="encoder", exporter=exporter)
