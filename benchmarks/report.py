"""What every benchmark writes beside its figures: the machine and its load, the JSON file, and
for the scaling benchmarks the spread over repeated rounds and a small plot."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple


def machine(load_before: tuple[float, float, float], packages: Sequence[str] = ()) -> dict[str, Any]:
    """CPUs, platform, Python, the load averages before the run (given) and now, and the
    installed versions of ``packages`` (``None`` for one that is not installed)."""
    report: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }
    if packages:
        report["versions"] = {name: _version(name) for name in packages}
    return report


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


REPO = Path(__file__).resolve().parent.parent


def command_line(
    module: str, parser: argparse.ArgumentParser, args: argparse.Namespace, ignore: Sequence[str] = ("out", "scratch")
) -> str:
    """``python -m lnn_ros_benchmarks.<module>`` with every option whose value differs from the
    parser's default (``ignore``: options that do not change the figures): the command that
    regenerates a report. A flag is given bare, a list as its items, a float as ``:g``."""

    def text(value: Any) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    words = [f"python -m lnn_ros_benchmarks.{module}"]
    for dest, value in vars(args).items():
        if dest in ignore or value == parser.get_default(dest):
            continue
        flag = "--" + dest.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words.append(" ".join([flag, *map(text, value)]))
        else:
            words.append(f"{flag} {text(value)}")
    return " ".join(words)


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (as the reports record a model)."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON to ``out`` (folders created) and say so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


def publish(
    out: Path,
    result: dict[str, Any],
    *,
    benchmark: str,
    command: str,
    load_before: tuple[float, float, float],
    started: float,
    packages: Sequence[str],
    plot: Callable[[dict[str, Any], Path], Path],
    table: Callable[[dict[str, Any]], str],
    **about: Any,
) -> dict[str, Any]:
    """A scaling benchmark's end: its report (``benchmark``, ``command``, the ``about`` fields, the
    :func:`machine`, the wall time since ``started`` (``time.time()``), then ``result``) written to
    ``out``, its figure beside it (``out`` with ``.png``) and its table on stdout. Returns the report."""
    report = {
        "benchmark": benchmark,
        "command": command,
        **about,
        "machine": machine(load_before, packages),
        "wall_s": round(time.time() - started, 1),
        **result,
    }
    write_report(out, report)
    plot(report, out.with_suffix(".png"))
    print(table(report))
    return report


def spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median, min and max of one figure over repeated rounds, and the rounds themselves."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "rounds": [round(v, digits) for v in values],
    }


class Series(NamedTuple):
    """One line of a plot: medians at ``x`` with a bar from ``low`` to ``high`` (the spread)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    low: Sequence[float]
    high: Sequence[float]


class Panel(NamedTuple):
    """One axes of a plot, log-log unless ``log`` is false."""

    title: str
    xlabel: str
    ylabel: str
    series: Sequence[Series]
    log: bool = True
    ticks: Sequence[tuple[float, str]] = ()  # x positions and labels; the default ticks otherwise


def plot_panels(out: Path, panels: Sequence[Panel], title: str) -> Path:
    """A small PNG (matplotlib, Agg) of ``panels`` side by side, written to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for line in panel.series:
            below = [y - lo for y, lo in zip(line.y, line.low)]
            above = [hi - y for y, hi in zip(line.y, line.high)]
            ax.errorbar(line.x, line.y, yerr=[below, above], marker="o", markersize=3, capsize=2, label=line.label)
        if panel.log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        if panel.ticks:
            ax.set_xticks([x for x, _ in panel.ticks], [label for _, label in panel.ticks])
            ax.xaxis.set_minor_locator(NullLocator())
            if max(len(label) for _, label in panel.ticks) > 4:
                ax.tick_params(axis="x", labelrotation=30)
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel(panel.xlabel, fontsize=8)
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)
    print(f"wrote {out}")
    return out
