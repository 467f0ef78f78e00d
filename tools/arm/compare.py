"""Compare the aarch64 outputs with the x86 references: one max-abs difference per output."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class OutputKey(NamedTuple):
    """Which output: bundle folder (as given), graph role, output name."""

    bundle: str
    graph: str
    output: str


class OutputDiff(NamedTuple):
    """Max |aarch64 - x86| of one output over every call, and where it was reached."""

    key: OutputKey
    max_abs_diff: float
    max_abs_reference: float
    worst_call: int
    calls: int
    passed: bool


class PlatformInfo(NamedTuple):
    """Where one side ran."""

    machine: str
    python: str
    numpy: str
    onnxruntime: str


# Given the output and its x86 reference, returns the reference to compare against.
ReferenceOverride = Callable[[OutputKey, np.ndarray], np.ndarray]


def offset_reference(offset: float, *, graph: str, output: str, bundle: str | None = None) -> ReferenceOverride:
    """A :data:`ReferenceOverride` adding ``offset`` to one output's reference (a self-test).

    Args:
        offset: added to every element of the reference.
        graph: graph role (``'step'``).
        output: output name (``'y'``).
        bundle: bundle folder as passed to the verifier; None means every bundle.
    """

    def override(key: OutputKey, reference: np.ndarray) -> np.ndarray:
        if key.graph == graph and key.output == output and bundle in (None, key.bundle):
            return reference + np.asarray(offset, dtype=reference.dtype)
        return reference

    return override


def max_abs_diff(emulated: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Largest absolute difference and the call (axis 0) where it occurs.

    A NaN on one side only, or a shape mismatch, counts as an infinite difference.
    """
    if emulated.shape != reference.shape:
        return math.inf, 0
    a = emulated.astype(np.float64)
    b = reference.astype(np.float64)
    diff = np.abs(a - b)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    diff = np.where(nan_a & nan_b, 0.0, np.where(nan_a | nan_b, np.inf, diff))
    if diff.size == 0:
        return 0.0, 0
    per_call = diff.reshape(diff.shape[0], -1).max(axis=1)
    worst = int(np.argmax(per_call))
    return float(per_call[worst]), worst


def compare(
    plan: Mapping[str, Any],
    reference: Mapping[str, np.ndarray],
    emulated: Mapping[str, np.ndarray],
    *,
    tolerance: float,
    reference_override: ReferenceOverride | None = None,
) -> tuple[OutputDiff, ...]:
    """One :class:`OutputDiff` per output of every graph in ``plan``."""
    diffs = []
    for graph in plan["graphs"]:
        for output in graph["outputs"]:
            name = f"{graph['key']}/out/{output}"
            key = OutputKey(graph["bundle"], graph["role"], output)
            expected = reference[name]
            if reference_override is not None:
                expected = reference_override(key, expected)
            got = emulated.get(name)
            if got is None:
                worst, call = math.inf, 0
            else:
                worst, call = max_abs_diff(got, expected)
            diffs.append(
                OutputDiff(
                    key=key,
                    max_abs_diff=worst,
                    max_abs_reference=float(np.nanmax(np.abs(expected))) if expected.size else 0.0,
                    worst_call=call,
                    calls=int(graph["calls"]),
                    passed=bool(worst <= tolerance),
                )
            )
    return tuple(diffs)


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of one verification: every output's difference and where each side ran."""

    cpu: str
    tolerance: float
    steps: int
    seed: int
    diffs: tuple[OutputDiff, ...]
    host: PlatformInfo
    aarch64: PlatformInfo
    emulated_run_s: float
    work_dir: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """True when every output is within the tolerance."""
        return all(diff.passed for diff in self.diffs)

    @property
    def failures(self) -> tuple[OutputDiff, ...]:
        """The outputs above the tolerance."""
        return tuple(diff for diff in self.diffs if not diff.passed)

    @property
    def max_abs_diff(self) -> float:
        """The largest difference over all outputs."""
        return max((diff.max_abs_diff for diff in self.diffs), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "status": "passed" if self.passed else "failed",
            "cpu": self.cpu,
            "tolerance": self.tolerance,
            "steps": self.steps,
            "seed": self.seed,
            "max_abs_diff": self.max_abs_diff,
            "host": self.host._asdict(),
            "aarch64": self.aarch64._asdict(),
            "emulated_run_s": self.emulated_run_s,
            "work_dir": self.work_dir,
            "notes": list(self.notes),
            "outputs": [
                {
                    **diff.key._asdict(),
                    "max_abs_diff": diff.max_abs_diff,
                    "max_abs_reference": diff.max_abs_reference,
                    "worst_call": diff.worst_call,
                    "calls": diff.calls,
                    "passed": diff.passed,
                }
                for diff in self.diffs
            ],
        }

    def format(self) -> str:
        """A human-readable table, one line per output, and a verdict line."""
        lines = [
            f"aarch64 check: onnxruntime {self.aarch64.onnxruntime} / numpy {self.aarch64.numpy} on emulated "
            f"{self.cpu} ({self.aarch64.machine}, Python {self.aarch64.python}) vs x86 onnxruntime "
            f"{self.host.onnxruntime} / numpy {self.host.numpy} ({self.host.machine}); emulated run "
            f"{self.emulated_run_s:.1f} s",
        ]
        width = max((len(diff.key.bundle) for diff in self.diffs), default=6)
        lines.append(
            f"{'bundle':<{width}}  {'graph':<8} {'output':<12} {'calls':>6} {'max|diff|':>11} {'max|ref|':>10}  result"
        )
        for diff in self.diffs:
            verdict = "ok" if diff.passed else f"FAIL (> {self.tolerance:g}, worst at call {diff.worst_call})"
            lines.append(
                f"{diff.key.bundle:<{width}}  {diff.key.graph:<8} {diff.key.output:<12} {diff.calls:>6} "
                f"{diff.max_abs_diff:>11.3e} {diff.max_abs_reference:>10.3e}  {verdict}"
            )
        lines.extend(f"note: {note}" for note in self.notes)
        if self.passed:
            lines.append(f"PASSED: {len(self.diffs)} outputs within {self.tolerance:g}")
        else:
            names = ", ".join(f"{d.key.bundle} {d.key.graph}.{d.key.output}" for d in self.failures)
            lines.append(f"FAILED: {len(self.failures)} of {len(self.diffs)} outputs above {self.tolerance:g}: {names}")
        return "\n".join(lines)
