"""PolicyRunner's fusion rule, input rules and determinism, on real exported bundles.

The reference in each test is written independently of the runner: it assembles the raw
feature vector by hand (6 IMU values, then the embedding of the newest frame), normalises
the image with a float64 formula, and steps a second Engine on the same bundle.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_factory import (  # noqa: F401 (module-scoped fixtures)
    CAMERA,
    DT_LIMITS,
    TWIST_OUTPUTS,
    TinyEncoder,
    camera_bundle,
    imu_bundle,
    imu_features,
    narrow_bundle,
    small_cell_config,
)

from lnn_ros.bundle import CameraSpec, FeatureSpec, OutputSpec, load_bundle, write_manifest
from lnn_ros.cells import build_cell
from lnn_ros.engine import Engine, Outcome
from lnn_ros.onnx_export import export_bundle_with_report
from lnn_ros.runtime import (
    Command,
    ImageFrame,
    ImuSample,
    PolicyConfig,
    PolicyError,
    PolicyRunner,
    Stream,
)

MS = 1_000_000
T0 = 1_000 * 1_000 * MS  # stamps start at 1000 s


# ---------------------------------------------------------------------- bundles
def _export(folder: Path, features: list[FeatureSpec], *, camera: CameraSpec | None = None) -> Path:
    torch.manual_seed(7)
    cell = build_cell(small_cell_config("cfc", len(features), 2))
    encoder = TinyEncoder(camera.channels, camera.embedding_size) if camera else None
    outputs = [OutputSpec("vx", "m/s", -2.0, 2.0, "linear.x"), OutputSpec("wz", "rad/s", -1.0, 1.0, "angular.z")]
    return export_bundle_with_report(
        cell, folder, name=folder.name, features=features, outputs=outputs, dt=DT_LIMITS, window_steps=None,
        encoder=encoder, camera=camera, verify_steps=20,
    ).path


@pytest.fixture(scope="module")
def mono_camera_only_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Camera-only (so the camera drives), mono8 encoder input, rgb8/bgr8/mono8 frames accepted."""
    camera = CameraSpec(width=32, height=24, encoding="mono8", embedding_size=4, mean=(0.5,), std=(0.25,))
    features = [FeatureSpec(f"camera_{i}", "camera", index=i) for i in range(4)]
    return _export(tmp_path_factory.mktemp("mono") / "mono_camera", features, camera=camera)


@pytest.fixture(scope="module")
def imu_vector_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IMU gyro (3) + a 2-element vector."""
    features = imu_features()[:3] + [
        FeatureSpec("v0", "vector", index=0, mean=1.0, std=2.0),
        FeatureSpec("v1", "vector", index=1),
    ]
    return _export(tmp_path_factory.mktemp("imu_vector") / "imu_vector", features)


# ---------------------------------------------------------------------- streams
def imu(stamp_ns: int, rng: np.random.Generator, scale: float = 1.0) -> ImuSample:
    return ImuSample(
        stamp_ns,
        rng.normal(0.0, 0.5 * scale, 3),
        rng.normal((0.0, 0.0, 9.81), 2.0 * scale),
        np.array([0.0, 0.0, 0.0, 1.0]),
    )


def image(stamp_ns: int, rng: np.random.Generator, encoding: str = "rgb8") -> ImageFrame:
    channels = 1 if encoding == "mono8" else 3
    pixels = rng.integers(0, 256, CAMERA.height * CAMERA.width * channels, dtype=np.uint8)
    return ImageFrame(stamp_ns, CAMERA.height, CAMERA.width, encoding, CAMERA.width * channels, pixels.tobytes())


def irregular_stream(seed: int, seconds: float = 1.0) -> list[ImuSample | ImageFrame]:
    """IMU at ~200 Hz and camera at ~30 Hz with jittered stamps, in arrival order.

    Frames arrive 15-45 ms after their stamp (camera latency), IMU messages 0.5-2 ms after.
    """
    rng = np.random.default_rng(seed)
    events: list[tuple[int, ImuSample | ImageFrame]] = []
    t = T0
    while t < T0 + seconds * 1e9:
        t += int(rng.uniform(3.0, 7.0) * MS)
        events.append((t + int(rng.uniform(0.5, 2.0) * MS), imu(t, rng)))
    t = T0 - 40 * MS
    while t < T0 + seconds * 1e9:
        t += int(rng.uniform(25.0, 42.0) * MS)
        events.append((t + int(rng.uniform(15.0, 45.0) * MS), image(t, rng, "bgr8" if rng.random() < 0.3 else "rgb8")))
    events.sort(key=lambda e: e[0])
    return [message for _, message in events]


def feed(runner: PolicyRunner, messages: list[ImuSample | ImageFrame]) -> list[Command]:
    commands = []
    for message in messages:
        command = runner.on_imu(message) if isinstance(message, ImuSample) else runner.on_image(message)
        if command is not None:
            commands.append(command)
    return commands


def normalised(frame: ImageFrame) -> np.ndarray:
    """The encoder input for an rgb8/bgr8 frame, by the manifest formula in float64."""
    pixels = np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3).astype(np.float64)
    if frame.encoding == "bgr8":
        pixels = pixels[:, :, ::-1]
    mean, std = np.array(CAMERA.mean), np.array(CAMERA.std)
    return ((pixels / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)


def imu_raw(sample: ImuSample) -> np.ndarray:
    return np.concatenate([sample.angular_velocity, sample.linear_acceleration]).astype(np.float32)


def reference(bundle: Path, messages: list[ImuSample | ImageFrame]) -> Iterator[tuple[int, np.ndarray]]:
    """The fusion rule written out: step on each IMU once a frame has arrived, with the newest embedding."""
    engine = Engine(bundle)
    embedding = None
    for message in messages:
        if isinstance(message, ImageFrame):
            embedding = engine.encode(normalised(message)).copy()
        elif embedding is not None or not engine.manifest.uses_camera:
            features = imu_raw(message) if embedding is None else np.concatenate([imu_raw(message), embedding])
            result = engine.step(features, message.stamp_ns)
            if result.output is not None:
                yield message.stamp_ns, result.output.copy()


def assert_commands_match(commands: list[Command], expected: list[tuple[int, np.ndarray]], atol: float) -> None:
    assert [c.stamp_ns for c in commands] == [stamp for stamp, _ in expected]
    np.testing.assert_allclose(np.array([c.values for c in commands]), np.array([v for _, v in expected]), rtol=0, atol=atol)


# ---------------------------------------------------------------------- tests
def test_imu_bundle_steps_on_every_imu_message(imu_bundle: Path) -> None:
    rng = np.random.default_rng(0)
    stamps = T0 + np.cumsum(rng.uniform(2.0, 12.0, 200) * MS).astype(np.int64)
    messages = [imu(int(s), rng) for s in stamps]
    runner = PolicyRunner(Engine(imu_bundle))
    commands = feed(runner, messages)
    assert_commands_match(commands, list(reference(imu_bundle, messages)), atol=0.0)
    assert len(commands) == len(messages) - 1  # the first one only starts the clock
    assert runner.driver is Stream.IMU and runner.ready
    command = commands[-1]
    # vx, vy, vz, yaw_rate -> linear.x, linear.y, linear.z, angular.z; angular.x/y stay 0.
    assert command.twist == (*(float(v) for v in command.values[:3]), 0.0, 0.0, float(command.values[3]))
    assert command.values is not commands[-2].values  # a copy, not the engine's buffer


def test_camera_fusion_rule_on_irregular_streams(camera_bundle: Path) -> None:
    messages = irregular_stream(seed=1)
    engine = Engine(camera_bundle)
    calls = []
    encode = engine.encode
    engine.encode = lambda image: calls.append(1) or encode(image)  # type: ignore[method-assign]
    runner = PolicyRunner(engine)
    commands = feed(runner, messages)
    expected = list(reference(camera_bundle, messages))
    assert_commands_match(commands, expected, atol=1e-5)
    frames = sum(isinstance(m, ImageFrame) for m in messages)
    imus = len(messages) - frames
    first_frame = next(i for i, m in enumerate(messages) if isinstance(m, ImageFrame))
    waiting = sum(isinstance(m, ImuSample) for m in messages[:first_frame])
    counters = runner.counters_dict()
    assert len(calls) == frames == counters["camera_encoded"] == counters["camera_received"]
    assert counters["camera_waiting"] == waiting > 0
    assert counters["imu_received"] == imus
    assert counters["imu_initialised"] == 1 and counters["imu_stepped"] == len(commands) == imus - waiting - 1


def test_replaying_the_same_messages_gives_identical_commands(camera_bundle: Path) -> None:
    messages = irregular_stream(seed=2, seconds=0.5)
    runs = [feed(PolicyRunner(Engine(camera_bundle)), messages) for _ in range(2)]
    assert len(runs[0]) > 50
    for a, b in zip(*runs, strict=True):
        assert a.stamp_ns == b.stamp_ns and a.twist == b.twist
        np.testing.assert_array_equal(a.values, b.values)


def test_bad_imu_messages_are_dropped_without_touching_the_state(narrow_bundle: Path) -> None:
    rng = np.random.default_rng(3)
    good = [image(T0 - 10 * MS, rng)] + [imu(T0 + k * 5 * MS, rng, scale=50.0) for k in range(40)]
    nan = good[10]._replace(stamp_ns=good[10].stamp_ns + 2 * MS, angular_velocity=np.array([0.1, np.nan, 0.0]))
    bad = [
        (11, nan, Outcome.NONFINITE_INPUT),
        (15, good[14], Outcome.DUPLICATE),  # same stamp as the message before
        (21, good[18], Outcome.OUT_OF_ORDER),
    ]
    messages = list(good)
    for position, message, _ in sorted(bad, key=lambda b: -b[0]):
        messages.insert(position, message)
    jump = imu(good[-1].stamp_ns + 300 * 1_000 * MS, rng)  # a stamp jump of five minutes
    after = [imu(jump.stamp_ns + k * 5 * MS, rng) for k in range(1, 6)]
    runner = PolicyRunner(Engine(narrow_bundle))
    outcomes = {}
    commands = []
    for message in [*messages, jump, *after]:
        command = runner.on_imu(message) if isinstance(message, ImuSample) else runner.on_image(message)
        outcomes[id(message)] = runner.last_outcome
        commands += [command] if command is not None else []
    for _, message, outcome in bad:
        assert outcomes[id(message)] is outcome
        assert not outcome.valid
    assert outcomes[id(jump)] is Outcome.GAP_RESET and outcomes[id(after[0])] is Outcome.STEPPED
    # Dropped messages changed nothing: the commands are those of the good messages alone,
    # and after the jump the state restarted from zero.
    expected = list(reference(narrow_bundle, good)) + list(reference(narrow_bundle, [good[0], jump, *after]))
    assert_commands_match(commands, expected, atol=1e-5)
    values = np.array([c.values for c in commands])
    assert np.isfinite(values).all() and np.abs(values).max() <= np.float32(0.05)  # float32 limit (numpy 1.x compares in float64)
    counters = runner.counters_dict()
    assert counters["outputs_clamped"] > 0
    assert (counters["imu_nonfinite_input"], counters["imu_duplicate"], counters["imu_out_of_order"], counters["imu_gap_reset"]) == (1, 1, 1, 1)


def test_bad_frames_are_counted_and_keep_the_held_embedding(camera_bundle: Path) -> None:
    rng = np.random.default_rng(4)
    frame = image(T0, rng)
    imus = [imu(T0 + k * 5 * MS, rng) for k in range(1, 12)]
    wrong_size = image(T0 + 7 * MS, rng)._replace(width=CAMERA.width - 1)
    bad_frames = {
        "camera_wrong_encoding": image(T0 + 6 * MS, rng)._replace(encoding="rgba8"),
        "camera_wrong_size": wrong_size._replace(step=wrong_size.width * 3, data=bytes(wrong_size.height * wrong_size.width * 3)),
        "camera_malformed": image(T0 + 8 * MS, rng)._replace(step=CAMERA.width * 3 + 1),
        "camera_duplicate": image(T0, rng),
        "camera_out_of_order": image(T0 - 1 * MS, rng),
    }
    runner = PolicyRunner(Engine(camera_bundle))
    messages: list[ImuSample | ImageFrame] = [frame, *imus[:4], *bad_frames.values(), *imus[4:]]
    commands = feed(runner, messages)
    assert_commands_match(commands, list(reference(camera_bundle, [frame, *imus])), atol=1e-5)
    counters = runner.counters_dict()
    for name in bad_frames:
        assert counters[name] == 1, name
    assert counters["camera_encoded"] == 1  # rejected and stale frames never reach the encoder


def test_reset_zeroes_the_state_and_keeps_the_newest_frame(camera_bundle: Path) -> None:
    rng = np.random.default_rng(5)
    frame = image(T0, rng)
    before = [imu(T0 + k * 5 * MS, rng) for k in range(1, 10)]
    after = [imu(T0 + k * 5 * MS, rng) for k in range(10, 20)]
    runner = PolicyRunner(Engine(camera_bundle))
    feed(runner, [frame, *before])
    runner.reset()
    assert runner.ready  # the held frame is kept
    commands = feed(runner, after)
    assert runner.counters_dict()["explicit_resets"] == 1
    assert_commands_match(commands, list(reference(camera_bundle, [frame, *after])), atol=1e-5)
    # Older stamps than before the reset are accepted again: every stamp was forgotten.
    runner.reset()
    assert runner.on_imu(before[0]) is None and runner.last_outcome is Outcome.INITIALISED


def test_camera_drives_a_camera_only_bundle(mono_camera_only_bundle: Path) -> None:
    rng = np.random.default_rng(6)
    frames = [image(T0 + k * 33 * MS, rng, encoding) for k, encoding in enumerate(["rgb8", "bgr8", "mono8"] * 4)]
    runner = PolicyRunner(Engine(mono_camera_only_bundle))
    assert runner.driver is Stream.CAMERA and runner.streams == (Stream.CAMERA,)
    commands = feed(runner, frames[:6] + [frames[5], frames[2]] + frames[6:])
    assert [c.stamp_ns for c in commands] == [f.stamp_ns for f in frames[1:]]
    counters = runner.counters_dict()
    assert counters["camera_encoded"] == len(frames)  # the repeated and the old frame were not encoded
    assert (counters["camera_duplicate"], counters["camera_out_of_order"]) == (1, 1)
    assert runner.on_imu(imu(T0, rng)) is None and runner.last_outcome is Outcome.UNUSED


def test_vector_bundle_with_held_imu(imu_vector_bundle: Path) -> None:
    rng = np.random.default_rng(7)
    imus = [imu(T0 + k * 5 * MS, rng) for k in range(30)]
    vectors = [(rng.normal(size=2), T0 + k * 5 * MS + 2 * MS) for k in range(30)]

    default = PolicyRunner(Engine(imu_vector_bundle))  # IMU drives, the vector is held
    assert default.driver is Stream.IMU
    assert default.on_imu(imus[0]) is None and default.last_outcome is Outcome.WAITING
    assert default.counters_dict()["vector_waiting"] == 1

    runner = PolicyRunner(Engine(imu_vector_bundle), PolicyConfig(driver=Stream.VECTOR))
    reference_engine = Engine(imu_vector_bundle)
    held = None
    nan = imus[12]._replace(stamp_ns=imus[12].stamp_ns + 1, angular_velocity=np.array([np.inf, 0.0, 0.0]))
    stale = imus[11]._replace()  # re-sent after imus[12]: out of order
    rejected = {id(nan), id(stale)}
    sequence: list[tuple[str, object]] = []
    for k in range(30):
        sequence.append(("imu", imus[k]))
        if k == 12:
            sequence += [("imu", nan), ("imu", stale)]
        sequence.append(("vector", vectors[k]))
    for kind, item in sequence:
        if kind == "imu":
            assert runner.on_imu(item) is None  # type: ignore[arg-type]
            assert runner.last_outcome.valid is (id(item) not in rejected)
            held = held if id(item) in rejected else item
            continue
        values, stamp = item  # type: ignore[misc]
        command = runner.on_vector(values, stamp)
        result = reference_engine.step(np.concatenate([held.angular_velocity, values]).astype(np.float32), stamp)
        if result.output is None:
            assert command is None
        else:
            assert command is not None and command.stamp_ns == stamp
            np.testing.assert_allclose(command.values, result.output, rtol=0, atol=1e-6)
    assert runner.counters_dict()["imu_nonfinite_input"] == 1 and runner.counters_dict()["imu_out_of_order"] == 1
    with pytest.raises(PolicyError, match="vector of 2 values"):
        runner.on_vector(np.zeros(3), T0 + 10**9)


def test_misuse_is_a_clear_error(imu_bundle: Path) -> None:
    engine = Engine(imu_bundle)
    with pytest.raises(PolicyError, match="'camera'.*only uses \\['imu'\\]"):
        PolicyRunner(engine, PolicyConfig(driver=Stream.CAMERA))
    runner = PolicyRunner(engine)
    rng = np.random.default_rng(8)
    assert runner.on_image(image(T0, rng)) is None and runner.last_outcome is Outcome.UNUSED
    assert runner.on_vector(np.zeros(1), T0) is None and runner.counters_dict()["camera_unused"] == runner.counters_dict()["vector_unused"] == 1
    hover = runner.hover_command(T0)
    assert hover.twist == (0.0,) * 6 and hover.values.shape == (len(TWIST_OUTPUTS),) and not hover.values.any()


def test_a_restarted_camera_clock_is_held_again_not_locked_out(camera_bundle: Path) -> None:
    """Held stamps follow the engine's rule: a jump back beyond max_gap_s (1 s) is a restarted clock."""
    rng = np.random.default_rng(9)
    imus = iter(imu(T0 + k * 5 * MS, rng) for k in range(1, 200))
    frames = [
        image(T0, rng),
        image(5_000 * MS, rng),  # the camera driver restarted: its clock now reads 5 s
        image(5_033 * MS, rng),
        image(5_033 * MS - 1 * MS, rng),  # 1 ms older: out of order (within max_gap_s)
        image(5_033 * MS + 3_600_000 * MS, rng),  # one frame stamped an hour ahead...
        image(5_066 * MS, rng),  # ...then the true clock again: a restart, not "out of order"
        image(5_099 * MS, rng),
    ]
    messages: list[ImuSample | ImageFrame] = []
    for frame in frames:
        messages += [frame, *(next(imus) for _ in range(5))]
    runner = PolicyRunner(Engine(camera_bundle))
    commands = feed(runner, messages)
    accepted = [m for m in messages if m is not frames[3]]
    assert_commands_match(commands, list(reference(camera_bundle, accepted)), atol=1e-5)
    counters = runner.counters_dict()
    assert (counters["camera_clock_restart"], counters["camera_out_of_order"]) == (2, 1)
    assert counters["camera_encoded"] == len(frames) - 1 and counters.get("imu_clock_restart", 0) == 0


def test_a_camera_driver_leaves_a_jump_back_beyond_the_gap_to_the_engine(mono_camera_only_bundle: Path) -> None:
    rng = np.random.default_rng(10)
    frames = [image(T0 + k * 33 * MS, rng) for k in range(4)]
    restarted = [image(2_000 * MS + k * 33 * MS, rng) for k in range(4)]  # the camera clock restarted at 2 s
    runner = PolicyRunner(Engine(mono_camera_only_bundle))
    outcomes = []
    for frame in [*frames, frames[3]._replace(stamp_ns=frames[3].stamp_ns - 5 * MS), *restarted]:
        runner.on_image(frame)
        outcomes.append(runner.last_outcome)
    assert outcomes[4] is Outcome.OUT_OF_ORDER and outcomes[5] is Outcome.GAP_RESET
    assert outcomes[6:] == [Outcome.STEPPED] * 3
    counters = runner.counters_dict()
    assert (counters["camera_out_of_order"], counters["camera_gap_reset"]) == (1, 1)  # dropped before decoding; the jump back is a gap
    assert counters["camera_encoded"] == 8 and counters.get("camera_clock_restart", 0) == 0  # the driver's restart is a gap


def test_a_restarted_held_imu_clock_under_a_vector_driver(imu_vector_bundle: Path) -> None:
    rng = np.random.default_rng(11)
    runner = PolicyRunner(Engine(imu_vector_bundle), PolicyConfig(driver=Stream.VECTOR))
    assert runner.on_imu(imu(T0, rng)) is None and runner.last_outcome is Outcome.HELD
    assert runner.on_imu(imu(T0 - 500 * MS, rng)) is None and runner.last_outcome is Outcome.OUT_OF_ORDER
    restarted = imu(T0 - 60_000 * MS, rng)
    assert runner.on_imu(restarted) is None and runner.last_outcome is Outcome.CLOCK_RESTART
    assert (runner.counters_dict()["imu_clock_restart"], runner.counters_dict()["imu_out_of_order"]) == (1, 1)
    values = rng.normal(size=2)
    runner.on_vector(values, T0)
    command = runner.on_vector(values, T0 + 5 * MS)
    engine = Engine(imu_vector_bundle)
    features = np.concatenate([restarted.angular_velocity, values]).astype(np.float32)
    engine.step(features, T0)
    expected = engine.step(features, T0 + 5 * MS).output
    assert command is not None and expected is not None
    np.testing.assert_allclose(command.values, expected, rtol=0, atol=1e-6)  # the restarted sample is the one held


def test_hover_is_zero_clamped_into_the_output_limits(imu_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "offset"
    shutil.copytree(imu_bundle, folder)
    manifest = load_bundle(folder).manifest
    limits = [(0.5, 2.0), (-2.0, -0.25), (-1.0, 1.0), (0.0, 1.0)]  # vx >= 0.5, vy <= -0.25
    outputs = tuple(dataclasses.replace(o, min=low, max=high) for o, (low, high) in zip(manifest.outputs, limits))
    write_manifest(folder, dataclasses.replace(manifest, outputs=outputs))
    runner = PolicyRunner(Engine(folder))
    hover = runner.hover_command(T0)
    np.testing.assert_array_equal(hover.values, np.array([0.5, -0.25, 0.0, 0.0], dtype=np.float32))
    assert hover.twist == (0.5, -0.25, 0.0, 0.0, 0.0, 0.0) and hover.stamp_ns == T0
    hover.values[0] = 9.0  # the caller owns its copy
    assert runner.hover_command(T0 + 1).values[0] == np.float32(0.5)
