"""Check that bundles give the same numbers on aarch64 onnxruntime (qemu) as on x86.

:func:`verify_bundles` records inputs and x86 references (:mod:`lnn_ros_tools.arm.recording`), runs
ONE emulated aarch64 Python over every bundle's graphs (:mod:`lnn_ros_tools.arm.runner`), and
compares output by output (:mod:`lnn_ros_tools.arm.compare`). The CLI is ``lnn-ros verify-arm``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lnn_ros_tools.arm import recording, runner
from lnn_ros_tools.arm.compare import (
    OutputKey,
    PlatformInfo,
    ReferenceOverride,
    VerifyReport,
    compare,
    offset_reference,
)
from lnn_ros_tools.arm.cpus import ArmCpu
from lnn_ros_tools.arm.emulation import CACHE_ENV, Emulation, ensure_emulation
from lnn_ros_tools.arm.errors import ArmSetupError, ArmVerifyError

RESULTS_NAME = "aarch64.npz"
RESULTS_INFO_NAME = "aarch64.json"
RUNNER_NAME = "runner.py"
DEFAULT_CPU = ArmCpu.CORTEX_A76.value
DEFAULT_STEPS = 300
DEFAULT_TOLERANCE = 1e-5

Log = Callable[[str], None]


def run_emulated(work_dir: Path, emulation: Emulation, *, cpu: ArmCpu | str, timeout_s: float = 900.0) -> float:
    """Run the recorded plan of ``work_dir`` in one emulated aarch64 process.

    Writes ``aarch64.npz`` (outputs) and ``aarch64.json`` (platform, versions, CPU, time).

    Returns:
        Wall time of the emulated process in seconds.

    Raises:
        ArmVerifyError: when the emulated process fails (its error output is quoted).
    """
    arm_cpu = ArmCpu.parse(cpu)
    script = work_dir / RUNNER_NAME
    shutil.copyfile(runner.__file__, script)  # the runner must not see lnn_ros beside it
    args = [str(script), str(work_dir / recording.PLAN_NAME), str(work_dir / recording.INPUTS_NAME),
            str(work_dir / RESULTS_NAME)]
    started = time.monotonic()
    done = emulation.run(args, cpu=arm_cpu, cwd=work_dir, timeout_s=timeout_s)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise ArmVerifyError(
            f"The emulated aarch64 run (cpu {arm_cpu.value}) failed with exit code {done.returncode}:\n"
            f"{done.stderr.strip()[-3000:]}\nRerun it by hand in {str(work_dir)!r}: "
            f"{' '.join(emulation.command(args))}"
        )
    info_path = work_dir / RESULTS_INFO_NAME
    info = json.loads(info_path.read_text())
    info.update(cpu=arm_cpu.value, wall_s=round(elapsed, 3))
    info_path.write_text(json.dumps(info) + "\n")
    return elapsed


def _platform(data: dict[str, Any]) -> PlatformInfo:
    return PlatformInfo(*(str(data.get(name, "?")) for name in PlatformInfo._fields))


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def compare_saved(
    work_dir: Path | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    reference_override: ReferenceOverride | None = None,
) -> VerifyReport:
    """Compare the saved aarch64 outputs of a work folder with its x86 references.

    Lets a finished run be compared again (other tolerance, a perturbed reference) without
    running the emulation again.

    Raises:
        ArmVerifyError: when the folder lacks a file of a finished run, or ``tolerance`` is bad.
    """
    folder = Path(work_dir)
    valid = isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool)
    if not valid or not math.isfinite(tolerance) or tolerance < 0:
        raise ArmVerifyError(f"tolerance must be a finite number >= 0, got {tolerance!r}.")
    names = (recording.PLAN_NAME, recording.REFERENCE_NAME, recording.HOST_NAME, RESULTS_NAME, RESULTS_INFO_NAME)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise ArmVerifyError(f"Work folder {str(folder)!r} lacks {missing}; it does not hold a finished run.")
    plan = json.loads((folder / recording.PLAN_NAME).read_text())
    host = json.loads((folder / recording.HOST_NAME).read_text())
    arm = json.loads((folder / RESULTS_INFO_NAME).read_text())
    diffs = compare(
        plan,
        _load_npz(folder / recording.REFERENCE_NAME),
        _load_npz(folder / RESULTS_NAME),
        tolerance=float(tolerance),
        reference_override=reference_override,
    )
    notes = []
    if arm.get("machine") != "aarch64":
        notes.append(f"the emulated process reported machine {arm.get('machine')!r}, not 'aarch64'")
    for lib in ("onnxruntime", "numpy"):
        if arm.get(lib) != host.get(lib):
            notes.append(f"{lib} differs: x86 {host.get(lib)!r}, aarch64 {arm.get(lib)!r}")
    return VerifyReport(
        cpu=str(arm.get("cpu", "?")),
        tolerance=float(tolerance),
        steps=int(plan["settings"]["steps"]),
        seed=int(plan["settings"]["seed"]),
        diffs=diffs,
        host=_platform(host),
        aarch64=_platform(arm),
        emulated_run_s=float(arm.get("wall_s", 0.0)),
        work_dir=str(folder),
        notes=tuple(notes),
    )


def verify_bundles(
    bundle_dirs: Sequence[Path | str],
    *,
    cpu: ArmCpu | str = DEFAULT_CPU,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
    reference_override: ReferenceOverride | None = None,
    cache_dir: Path | str | None = None,
    work_dir: Path | str | None = None,
    log: Log | None = None,
) -> VerifyReport:
    """Verify that every graph of every bundle gives the x86 numbers on aarch64 onnxruntime.

    The bundles are checked and their x86 references computed first, so a bad bundle fails
    before any emulation is set up.

    Args:
        bundle_dirs: bundle folders (each with ``manifest.yaml``).
        cpu: emulated core, ``'cortex-a76'`` (nearest to Jetson Orin) or ``'cortex-a72'`` (Pi 4).
        steps: length of the recurrent rollout through the step graph.
        seed: seed of the recorded inputs.
        tolerance: largest accepted max-abs difference, per output.
        reference_override: changes a reference before the comparison (a self-test, see
            :func:`lnn_ros_tools.arm.compare.offset_reference`).
        cache_dir: emulation cache (default ``$LNN_ROS_ARM_CACHE`` or ``~/.cache/lnn_ros/arm64``).
        work_dir: keep inputs, references and aarch64 outputs here (default: a temporary
            folder, deleted afterwards).
        log: receives progress lines.

    Raises:
        ArmVerifyError: a bundle cannot be verified or the emulated run failed.
        ArmSetupError: the emulation cannot be set up (the message says how to fix it).
    """
    arm_cpu = _parse_cpu(cpu)
    say = log or (lambda line: None)
    with tempfile.TemporaryDirectory(prefix="lnn_ros_verify_arm_") as tmp:
        folder = Path(work_dir) if work_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        plan = recording.record(bundle_dirs, folder, steps=steps, seed=seed)
        say(f"recorded {len(plan['graphs'])} graphs of {len(bundle_dirs)} bundles and their x86 references")
        emulation = ensure_emulation(cache_dir, log=say)
        say(f"running the aarch64 graphs emulated on {arm_cpu.value}")
        run_emulated(folder, emulation, cpu=arm_cpu)
        report = compare_saved(folder, tolerance=tolerance, reference_override=reference_override)
    if work_dir is None:
        report = dataclasses.replace(report, work_dir=None)
    return report


def _parse_cpu(value: ArmCpu | str) -> ArmCpu:
    try:
        return ArmCpu.parse(value)
    except ValueError as exc:
        raise ArmVerifyError(str(exc)) from None


def _perturbation(text: str) -> ReferenceOverride:
    """``'step.y=1e-3'`` -> an override adding 1e-3 to every bundle's step ``y`` reference."""
    target, _, offset = text.partition("=")
    graph, _, output = target.partition(".")
    try:
        value = float(offset)
    except ValueError:
        value = math.nan
    if not graph or not output or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected GRAPH.OUTPUT=OFFSET such as 'step.y=1e-3', got {text!r}")
    return offset_reference(value, graph=graph, output=output)


def add_verify_arm_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``verify-arm`` to an ``argparse`` subparsers object; its handler returns the exit code.

    The handler is set as ``func`` (``sys.exit(args.func(args))``). Exit codes: 0 passed (or
    skipped with ``--skip-if-unavailable``), 1 an output above the tolerance, 2 a bundle
    cannot be verified or the emulation cannot be set up.
    """
    parser = subparsers.add_parser(
        "verify-arm",
        help="check that bundles give the same numbers on aarch64 onnxruntime (qemu emulation)",
        description=(
            "Run every graph of the bundles on x86 onnxruntime and on the aarch64 build of the same "
            "onnxruntime/numpy versions under qemu user-mode emulation, on the same recorded inputs "
            "(a closed-loop rollout with irregular dt), and compare the outputs. The first run sets "
            f"the emulation up (root, apt, PyPI; 20-35 s, ~200 MB in ${CACHE_ENV} or "
            "~/.cache/lnn_ros/arm64)."
        ),
    )
    parser.add_argument("bundles", nargs="+", type=Path, metavar="BUNDLE", help="bundle folders")
    parser.add_argument("--cpu", choices=[cpu.value for cpu in ArmCpu], default=DEFAULT_CPU,
                        help="emulated core: cortex-a76 (nearest to Jetson Orin, default) or cortex-a72 (Pi 4)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="rollout length (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the recorded inputs (default %(default)s)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="largest accepted max-abs difference per output (default %(default)g)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the report as JSON")
    parser.add_argument("--skip-if-unavailable", action="store_true",
                        help="exit 0 with a message when the emulation cannot be set up here")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the inputs, x86 references and aarch64 outputs in this folder")
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"emulation cache (default ${CACHE_ENV})")
    parser.add_argument("--perturb-reference", type=_perturbation, default=None, metavar="GRAPH.OUTPUT=OFFSET",
                        help="self-test: add OFFSET to a reference output, so that the check must fail")
    parser.set_defaults(func=run_verify_arm)
    return parser


def _write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")


def run_verify_arm(args: argparse.Namespace) -> int:
    """Handler of ``lnn-ros verify-arm``; returns the exit code."""
    try:
        report = verify_bundles(
            args.bundles,
            cpu=args.cpu,
            steps=args.steps,
            seed=args.seed,
            tolerance=args.tolerance,
            reference_override=args.perturb_reference,
            cache_dir=args.cache_dir,
            work_dir=args.work_dir,
            log=lambda line: print(f"verify-arm: {line}", file=sys.stderr, flush=True),
        )
    except ArmSetupError as exc:
        if args.skip_if_unavailable:
            print(f"verify-arm: SKIPPED: the aarch64 emulation is unavailable here: {exc}")
            _write_json(args.json, {"status": "skipped", "reason": str(exc)})
            return 0
        print(f"verify-arm: error: {exc}", file=sys.stderr)
        _write_json(args.json, {"status": "error", "error": str(exc)})
        return 2
    except ArmVerifyError as exc:
        print(f"verify-arm: error: {exc}", file=sys.stderr)
        _write_json(args.json, {"status": "error", "error": str(exc)})
        return 2
    print(report.format())
    _write_json(args.json, report.to_dict())
    return 0 if report.passed else 1


__all__ = [
    "OutputKey",
    "VerifyReport",
    "add_verify_arm_parser",
    "compare_saved",
    "offset_reference",
    "run_emulated",
    "run_verify_arm",
    "verify_bundles",
]
