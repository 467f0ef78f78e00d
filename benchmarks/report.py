"""What every benchmark writes beside its figures: the machine and its load, and the JSON file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """CPUs, platform, Python, and the load averages before the run (given) and now."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
    }


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON to ``out`` (folders created) and say so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
