"""aarch64 verification of real ONNX bundles under qemu (one emulated run for the module).

Needs the emulation (root, apt, PyPI; cached in ~/.cache/lnn_ros/arm64 after the first run).
If it cannot be set up the tests FAIL, unless LNN_ROS_SKIP_ARM=1 is set.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from lnn_ros_tools.arm import (
    ArmSetupError,
    ArmVerifyError,
    Emulation,
    add_verify_arm_parser,
    compare_saved,
    ensure_emulation,
    offset_reference,
    verify_bundles,
)

torch = pytest.importorskip("torch", reason="the test bundles are exported with torch (extra 'train')")

pytestmark = [
    pytest.mark.timeout(900),  # the first run on a machine sets the emulation up (~35 s)
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"),
]

TOLERANCE = 1e-5
STEPS = 200
WINDOW = 8


def _arm_emulation() -> Emulation:
    if os.environ.get("LNN_ROS_SKIP_ARM") == "1":
        pytest.skip("LNN_ROS_SKIP_ARM=1: aarch64 emulation tests skipped on request")
    try:
        return ensure_emulation()
    except ArmSetupError as exc:
        pytest.fail(f"aarch64 emulation unavailable (set LNN_ROS_SKIP_ARM=1 to skip): {exc}")


class _Cell(torch.nn.Module):
    """A small liquid-style cell: h' = t * f + (1 - t) * g, t = sigmoid(-softplus(a) * dt)."""

    def __init__(self, features: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.mix = torch.nn.Linear(features + hidden, 3 * hidden)
        self.head = torch.nn.Linear(hidden, outputs)

    def cell(self, x: torch.Tensor, h: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        f, g, a = self.mix(torch.cat([x, h], dim=-1)).split(self.hidden, dim=-1)
        t = torch.sigmoid(-torch.nn.functional.softplus(a) * dt)
        return t * torch.tanh(f) + (1.0 - t) * torch.tanh(g)


class _Step(torch.nn.Module):
    def __init__(self, cell: _Cell) -> None:
        super().__init__()
        self.core = cell

    def forward(self, x: torch.Tensor, hidden: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.core.cell(x, hidden, dt)
        return self.core.head(h), h


class _Window(torch.nn.Module):
    def __init__(self, cell: _Cell, steps: int) -> None:
        super().__init__()
        self.core = cell
        self.steps = steps

    def forward(self, x: torch.Tensor, hidden: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = []
        h = hidden
        for index in range(self.steps):
            h = self.core.cell(x[:, index], h, dt[:, index])
            outputs.append(self.core.head(h))
        return torch.stack(outputs, dim=1), h


class _Encoder(torch.nn.Module):
    def __init__(self, channels: int, embedding: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 6, kernel_size=3, stride=2)
        self.out = torch.nn.Linear(6, embedding)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(torch.relu(self.conv(image)).mean(dim=(2, 3))))


def _export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, inputs: list[str],
            outputs: list[str]) -> None:
    torch.onnx.export(
        module, args, str(path), input_names=inputs, output_names=outputs, opset_version=17, dynamo=False,
        dynamic_axes={name: {0: "batch"} for name in inputs + outputs},
    )


def _make_bundle(folder: Path, *, features: int, hidden: int, outputs: int, window: bool,
                 camera: tuple[int, int, int] | None, seed: int) -> Path:
    torch.manual_seed(seed)
    folder.mkdir(parents=True)
    cell = _Cell(features, hidden, outputs).eval()
    graphs: dict[str, dict[str, object]] = {"step": {"file": "step.onnx"}}
    with torch.no_grad():
        _export(_Step(cell), (torch.zeros(1, features), torch.zeros(1, hidden), torch.ones(1, 1)),
                folder / "step.onnx", ["x", "hidden", "dt"], ["y", "hidden_out"])
        if window:
            _export(_Window(cell, WINDOW), (torch.zeros(1, WINDOW, features), torch.zeros(1, hidden),
                                            torch.ones(1, WINDOW, 1)),
                    folder / "window.onnx", ["x", "hidden", "dt"], ["y", "hidden_out"])
            graphs["window"] = {"file": "window.onnx", "steps": WINDOW}
        if camera is not None:
            _export(_Encoder(camera[0], 5).eval(), (torch.zeros(1, *camera),), folder / "encoder.onnx",
                    ["image"], ["embedding"])
            graphs["encoder"] = {"file": "encoder.onnx"}
    (folder / "manifest.yaml").write_text(yaml.safe_dump({"schema": 1, "name": folder.name, "graphs": graphs}))
    return folder


@pytest.fixture(scope="module")
def emulation() -> Emulation:
    return _arm_emulation()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("arm_bundles")
    return [
        _make_bundle(root / "imu", features=7, hidden=12, outputs=4, window=True, camera=None, seed=1),
        _make_bundle(root / "camera", features=9, hidden=10, outputs=4, window=False, camera=(3, 16, 20), seed=2),
    ]


@pytest.fixture(scope="module")
def cli_run(emulation: Emulation, bundles: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One `verify-arm` run over both bundles through the CLI handler (the only emulated run)."""
    out = tmp_path_factory.mktemp("arm_run")
    parser = argparse.ArgumentParser(prog="lnn-ros")
    add_verify_arm_parser(parser.add_subparsers())
    args = parser.parse_args(["verify-arm", *map(str, bundles), "--steps", str(STEPS), "--json",
                              str(out / "report.json"), "--work-dir", str(out / "work"),
                              "--cache-dir", str(emulation.cache_dir)])
    code = args.func(args)
    return {"code": code, "report": json.loads((out / "report.json").read_text()), "work_dir": out / "work"}


def test_good_bundles_pass_on_emulated_aarch64(cli_run: dict[str, object], bundles: list[Path]) -> None:
    report = cli_run["report"]
    assert cli_run["code"] == 0, report
    assert report["status"] == "passed"
    assert report["aarch64"]["machine"] == "aarch64"
    assert report["host"]["machine"] == "x86_64"
    assert report["aarch64"]["onnxruntime"] == report["host"]["onnxruntime"]
    assert report["aarch64"]["numpy"] == report["host"]["numpy"]
    assert report["cpu"] == "cortex-a76"
    checked = {(o["bundle"], o["graph"], o["output"]) for o in report["outputs"]}
    imu, camera = map(str, bundles)
    assert checked == {
        (imu, "step", "y"), (imu, "step", "hidden_out"), (imu, "window", "y"), (imu, "window", "hidden_out"),
        (camera, "step", "y"), (camera, "step", "hidden_out"), (camera, "encoder", "embedding"),
    }
    calls = {(o["bundle"], o["graph"]): o["calls"] for o in report["outputs"]}
    assert calls[(imu, "step")] == STEPS and calls[(imu, "window")] == STEPS // WINDOW
    for output in report["outputs"]:
        assert output["max_abs_diff"] <= TOLERANCE, output
        assert output["max_abs_reference"] > 0.01, output  # real, non-degenerate numbers were compared


def test_rollout_really_feeds_hidden_back(cli_run: dict[str, object]) -> None:
    work = cli_run["work_dir"]
    with np.load(work / "reference.npz") as ref, np.load(work / "inputs.npz") as inputs:
        hidden = ref["b0.step/out/hidden_out"]
        y_window = ref["b0.window/out/y"]  # [windows, B, T, O] on the same x/dt sequence
        y_step = ref["b0.step/out/y"]
        dt = inputs["b0.step/in/dt"]
    assert hidden.shape[0] == STEPS and np.abs(hidden[-1]).max() > 0.01
    assert dt.min() >= 1e-4 and dt.max() <= 1.0 and dt.max() / dt.min() > 1e3
    # The window graph chained over windows reproduces the step rollout: same inputs, same state.
    windows = y_window.shape[0]
    as_steps = y_window.transpose(0, 2, 1, 3).reshape(windows * WINDOW, *y_step.shape[1:])
    np.testing.assert_allclose(as_steps, y_step[: windows * WINDOW], atol=1e-5)


@pytest.mark.parametrize(("graph", "output", "offset"), [("step", "y", 1e-3), ("window", "hidden_out", -2e-5)])
def test_perturbed_reference_fails_naming_the_output(cli_run: dict[str, object], bundles: list[Path], graph: str,
                                                     output: str, offset: float) -> None:
    imu = str(bundles[0])
    report = compare_saved(cli_run["work_dir"], tolerance=TOLERANCE,
                           reference_override=offset_reference(offset, graph=graph, output=output, bundle=imu))
    assert not report.passed
    assert [(d.key.bundle, d.key.graph, d.key.output) for d in report.failures] == [(imu, graph, output)]
    assert report.failures[0].max_abs_diff == pytest.approx(abs(offset), rel=0.05)
    text = report.format()
    assert f"FAILED: 1 of 7 outputs above {TOLERANCE:g}: {imu} {graph}.{output}" in text


def test_compare_detects_a_changed_aarch64_output(cli_run: dict[str, object], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for item in Path(cli_run["work_dir"]).iterdir():
        (work / item.name).write_bytes(item.read_bytes())
    with np.load(work / "aarch64.npz") as data:
        arrays = {name: data[name] for name in data.files}
    arrays["b1.encoder/out/embedding"][2, 1, 3] = np.nan
    np.savez(work / "aarch64.npz", **arrays)
    report = compare_saved(work, tolerance=TOLERANCE)
    assert [(d.key.graph, d.key.output, d.worst_call) for d in report.failures] == [("encoder", "embedding", 2)]
    assert report.failures[0].max_abs_diff == float("inf")


def test_cli_fails_with_exit_1_on_perturbed_reference(emulation: Emulation, bundles: list[Path],
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="lnn-ros")
    add_verify_arm_parser(parser.add_subparsers())
    args = parser.parse_args(["verify-arm", str(bundles[1]), "--steps", "20", "--cpu", "cortex-a72",
                              "--perturb-reference", "encoder.embedding=1e-4", "--json", str(tmp_path / "r.json"),
                              "--cache-dir", str(emulation.cache_dir)])
    assert args.func(args) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "failed" and report["cpu"] == "cortex-a72"
    failed = [(o["graph"], o["output"]) for o in report["outputs"] if not o["passed"]]
    assert failed == [("encoder", "embedding")]
    assert "FAILED: 1 of 3 outputs" in capsys.readouterr().out


def test_missing_bundle_is_a_clear_error_before_any_emulation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no_such_bundle"
    with pytest.raises(ArmVerifyError, match="Bundle folder .*no_such_bundle' does not exist"):
        verify_bundles([missing], cache_dir=tmp_path / "never_created")
    assert not (tmp_path / "never_created").exists()
    parser = argparse.ArgumentParser(prog="lnn-ros")
    add_verify_arm_parser(parser.add_subparsers())
    args = parser.parse_args(["verify-arm", str(missing), "--cache-dir", str(tmp_path / "never_created")])
    assert args.func(args) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bundle_with_wrong_graph_inputs_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    with torch.no_grad():
        _export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), folder / "step.onnx", ["x"], ["y"])
    (folder / "manifest.yaml").write_text(yaml.safe_dump({"graphs": {"step": {"file": "step.onnx"}}}))
    with pytest.raises(ArmVerifyError, match=r"step graph 'step.onnx'.*inputs are \['x'\]; expected exactly"):
        verify_bundles([folder], cache_dir=tmp_path / "never_created")
    (folder / "manifest.yaml").write_text(yaml.safe_dump({"graphs": {"step": {"file": "missing.onnx"}}}))
    with pytest.raises(ArmVerifyError, match="'missing.onnx' named in manifest.yaml does not exist"):
        verify_bundles([folder], cache_dir=tmp_path / "never_created")


def test_skip_if_unavailable(bundles: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get: a fresh cache cannot be set up
    parser = argparse.ArgumentParser(prog="lnn-ros")
    add_verify_arm_parser(parser.add_subparsers())
    common = ["verify-arm", str(bundles[0]), "--steps", "5", "--cache-dir", str(tmp_path / "fresh_cache")]
    args = parser.parse_args([*common, "--json", str(tmp_path / "skipped.json")])
    assert args.func(args) == 2
    assert "needs the Debian tools ['apt-get'" in capsys.readouterr().err
    args = parser.parse_args([*common, "--skip-if-unavailable", "--json", str(tmp_path / "skipped.json")])
    assert args.func(args) == 0
    assert "verify-arm: SKIPPED: the aarch64 emulation is unavailable here" in capsys.readouterr().out
    report = json.loads((tmp_path / "skipped.json").read_text())
    assert report["status"] == "skipped" and "apt-get" in report["reason"]
