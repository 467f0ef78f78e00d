"""The ``sim`` extra (rotorpy) and the ``train`` extra (torch) are optional for the ``lnn-ros`` CLI.

``lnn_ros.cli`` imports every subsystem's CLI module on each call, ``lnn_ros.sim.cli`` among
them; those imports must not need rotorpy or torch, so that onboard commands (``info``,
``replay``, ...) run on a robot without them. Checked in a fresh interpreter in which an import
hook makes both packages unimportable, as on a machine where they are not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

WITHOUT_EXTRAS = '''
import importlib.abc, json, sys

BLOCKED = ("rotorpy", "torch")


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
for name in BLOCKED:
    try:
        __import__(name)
    except ModuleNotFoundError:
        print(f"BLOCKED {name}", file=sys.stderr)
if sys.argv[1] == "--lazy-sim":
    import lnn_ros.sim
    config = lnn_ros.sim.SimConfig()  # plain settings: no rotorpy needed
    try:
        lnn_ros.sim.Simulator
    except ModuleNotFoundError as exc:
        missing = exc.name
    print(json.dumps({"duration_s": config.duration_s, "missing": missing,
                      "loaded": sorted(m for m in BLOCKED if m in sys.modules)}))
else:
    from lnn_ros.cli import main

    sys.argv[0] = "lnn-ros"
    sys.exit(main(sys.argv[1:]))
'''


def _without_extras(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "BLOCKED rotorpy" in done.stderr and "BLOCKED torch" in done.stderr, done.stderr  # the hook works
    return done


def test_lnn_ros_help_lists_every_command_without_rotorpy_and_torch() -> None:
    done = _without_extras("--help")
    assert done.returncode == 0, done.stderr
    for command in ("sim", "demo", "train", "export", "info", "replay", "verify-arm"):
        assert f"    {command} " in done.stdout, command
    assert "Traceback" not in done.stderr
    sim_help = _without_extras("sim", "--help")
    assert sim_help.returncode == 0 and "record-bag" in sim_help.stdout, sim_help.stderr


def test_lnn_ros_info_checks_a_bundle_without_rotorpy_and_torch() -> None:
    done = _without_extras("info", str(REPO / "models" / "sine_cfc"))
    assert done.returncode == 0, done.stderr
    assert "check    ok" in done.stdout and "sine_cfc" in done.stdout
    assert "Traceback" not in done.stderr


def test_simulator_names_load_on_first_use() -> None:
    done = _without_extras("--lazy-sim")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"duration_s": 10.0, "missing": "rotorpy", "loaded": []}
