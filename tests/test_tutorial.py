"""docs/tutorial.md runs: every block marked ``<!-- ci -->`` is run, in order, in one folder.

The sizes are shrunk by :data:`SMALLER` (each replacement must find its text, so a changed
tutorial cannot silently run at full size); everything else is the documented command. The
``ros2 launch`` block needs the ROS 2 wheels and is marked ``<!-- ci: skip ... -->`` (the launch
file is tested through the real launcher in tests/launch).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lnn_ros.sim.seeds import evaluation_seeds

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
BLOCK = re.compile(r"^<!-- (ci[^>]*?) -->\n```bash\n(.*?)^```", re.S | re.M)
SMALLER = {
    "--episodes 40": "--episodes 2",
    "--episodes 80": "--episodes 2",
    "--duration 10": "--duration 2",
    "--epochs 25": "--epochs 1",
    "--batch-size 32": "--batch-size 4",
    "--window-steps 256": "--window-steps 32",
    "--tbptt-steps 64": "--tbptt-steps 16",
    "--burn-in-steps 16": "--burn-in-steps 2",
    "--episodes 100": "--episodes 2 --workers 1",
}


def marked_blocks() -> list[tuple[str, str]]:
    """``(marker, script)`` of every marked bash block, in document order."""
    return [(marker.strip(), script) for marker, script in BLOCK.findall(TUTORIAL.read_text())]


def test_the_tutorial_marks_its_blocks() -> None:
    blocks = marked_blocks()
    run = [script for marker, script in blocks if marker == "ci"]
    skipped = [(marker, script) for marker, script in blocks if marker != "ci"]
    commands = " ".join(run)
    for step in ("sim record-bag", "lnn-ros train", "lnn-ros export", "lnn-ros info", "lnn-ros replay", "sim check-bundle"):
        assert step in commands, step
    assert [m for m, s in skipped if "ros2 launch" in s] == ["ci: skip, needs the ROS 2 wheels; the launch file is tested in tests/launch"]
    launch = next(s for _, s in skipped if "ros2 launch" in s)
    name = re.search(r"ros2 launch lnn_ros (\S+)", launch)
    assert name is not None and (TUTORIAL.parents[1] / "launch" / name.group(1)).is_file(), launch
    assert "model_path:=" in launch


def test_the_tutorial_runs_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("rotorpy")
    pytest.importorskip("torch")
    scripts = [script for marker, script in marked_blocks() if marker == "ci"]
    text = "\n".join(scripts)
    for full, small in SMALLER.items():
        assert full in text, f"the tutorial no longer says {full!r}; update SMALLER in {__file__}"
        scripts = [s.replace(full, small) for s in scripts]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.setdefault("LNN_ROS_SKIP_CHECKS", "1")
    outputs = []
    for script in scripts:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        outputs.append(done.stdout)
        assert done.returncode == 0, f"tutorial block failed:\n{script}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr[-3000:]}"
    train, export, info, _replay, check = outputs[1:]
    assert "trained camera + cfc" in train and "split    by flight" in train
    assert "(ckpt: encoder, step graphs)" in export
    assert "camera   64x48 rgb8 -> 16 features" in info
    assert (tmp_path / "replay_out" / "metrics.json").is_file()
    assert re.search(r"closed loop  nominal: success \d/2 = \d+% \(95 % Wilson interval", check), check
    assert "training seeds 0..5001" in check  # 2 clean bags from seed 0, 2 noisy from 5000
    noisy = [p for p in (tmp_path / "bags").iterdir() if "noisy_expert" in (p / "sim_episode.yaml").read_text()]
    assert sorted(p.name for p in noisy) == ["flight_5000", "flight_5001"]
    report = json.loads((tmp_path / "check.json").read_text())
    assert [e["seed"] for e in report["per_episode"]] == evaluation_seeds("nominal", 2)
