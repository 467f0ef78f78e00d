"""The declared camera preprocessing: one function for training and flight, every encoding, bad frames.

References are computed independently here (float64 overlap matrices for area averaging and
bilinear interpolation), not by calling the code under test.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import yaml

from lnn_ros.bundle import CameraSpec, load_bundle
from lnn_ros.bundle.preprocess import Preprocess, PreprocessError
from lnn_ros.errors import BundleError
from lnn_ros.runtime.factory import build_runner
from lnn_ros.runtime.image import ImageDecoder, ImageStatus
from lnn_ros.runtime.messages import compressed_format, image_frame
from lnn_ros.runtime.records import ImageFrame, ImuSample

Image = pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "drone_cfc"
LUMA = np.array([0.299, 0.587, 0.114])


def camera(width: int = 64, height: int = 48, encoding: str = "rgb8", **prep: object) -> CameraSpec:
    channels = 1 if encoding == "mono8" else 3
    return CameraSpec(
        width, height, encoding, 4, (0.4, 0.5, 0.6)[:channels], (0.2, 0.25, 0.3)[:channels],
        preprocess=Preprocess.from_dict(prep),
    )


def raw(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> ImageFrame:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).view(np.uint8) if pixels.dtype != np.uint8 else pixels.reshape(h, -1)
    rows = np.concatenate([rows, np.full((h, pad), 99, np.uint8)], axis=1)
    return ImageFrame(7, h, w, encoding, rows.shape[1], rows.tobytes(), bigendian)


def compressed(rgb: np.ndarray, fmt: str, **options: object) -> ImageFrame:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt.upper(), **options)
    return ImageFrame(7, 0, 0, fmt, 0, buffer.getvalue())


def smooth(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A camera-like image: smooth gradients and a few blobs, rgb8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    planes = [0.5 + 0.4 * np.sin(6 * x + rng.uniform(0, 6)) * np.cos(4 * y + rng.uniform(0, 6)) for _ in range(3)]
    return (np.stack(planes, axis=-1) * 255).round().astype(np.uint8)


def area_matrix(src: int, dst: int) -> np.ndarray:
    """[dst, src] weights of area averaging (overlap of output cell j with source pixel i, normalised)."""
    m = np.zeros((dst, src))
    for j in range(dst):
        lo, hi = j * src / dst, (j + 1) * src / dst
        for i in range(src):
            m[j, i] = max(0.0, min(hi, i + 1) - max(lo, i))
    return m / m.sum(axis=1, keepdims=True)


def bilinear_matrix(src: int, dst: int) -> np.ndarray:
    m = np.zeros((dst, src))
    for j in range(dst):
        c = min(max((j + 0.5) * src / dst - 0.5, 0.0), src - 1.0)
        i = int(np.floor(c))
        m[j, i] += 1 - (c - i)
        m[j, min(i + 1, src - 1)] += c - i
    return m


# ---------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize(("src_w", "src_h"), [(640, 480), (100, 75), (160, 120), (1000, 750), (1920, 1080), (32, 24), (96, 40)])
def test_resize_matches_an_independent_reference(src_w: int, src_h: int) -> None:
    rgb = smooth(src_h, src_w, seed=src_w)
    cam = camera()
    out = ImageDecoder(cam).pixels(raw(rgb, "rgb8")).pixels
    assert out is not None
    # centre crop to 4:3, then area (shrink) or bilinear (grow) per axis
    crop_w, crop_h = min(src_w, round(src_h * 64 / 48)), min(src_h, round(src_w * 48 / 64))
    top, left = (src_h - crop_h) // 2, (src_w - crop_w) // 2
    region = rgb[top : top + crop_h, left : left + crop_w].astype(np.float64)
    rows = area_matrix(crop_h, 48) if crop_h > 48 else bilinear_matrix(crop_h, 48)
    cols = area_matrix(crop_w, 64) if crop_w > 64 else bilinear_matrix(crop_w, 64)
    expected = np.einsum("ji,iwc,kw->jkc", rows, region, cols, optimize=True)  # two tensordots, not one 5-deep loop
    assert np.abs(out.astype(np.float64) - expected).max() <= 0.51  # rounding to uint8 only


def test_integer_area_averaging_recovers_pixel_repeated_frames_exactly() -> None:
    small = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    wide = np.full((720, 1280, 3), 128, np.uint8)  # 1280x720: the 4:3 centre is the 15x upscaled frame
    wide[:, 160:1120] = np.repeat(np.repeat(small, 15, axis=0), 15, axis=1)
    decoder = ImageDecoder(camera())
    np.testing.assert_array_equal(decoder.pixels(raw(wide, "rgb8")).pixels, small)
    np.testing.assert_array_equal(decoder.pixels(compressed(wide, "png")).pixels, small)


def test_letterbox_fits_the_whole_frame_and_pads() -> None:
    wide = np.full((720, 1280, 3), 200, np.uint8)
    out = ImageDecoder(camera(crop="letterbox", pad_value=7)).pixels(raw(wide, "rgb8")).pixels
    assert out is not None
    band = (48 - 36) // 2  # 1280x720 fitted into 64 wide -> 36 rows
    assert (out[:band] == 7).all() and (out[band + 36 :] == 7).all()
    assert (out[band : band + 36] == 200).all()


# --------------------------------------------------------------------------------------- encodings
def test_every_encoding_of_one_scene_gives_the_same_input() -> None:
    rgb = smooth(480, 640)
    decoder = ImageDecoder(camera())
    reference = decoder.pixels(raw(rgb, "rgb8")).pixels.copy()
    alpha = np.full((480, 640, 1), 255, np.uint8)
    same = {
        "bgr8": raw(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8", pad=16),
        "rgba8": raw(np.concatenate([rgb, alpha], axis=2), "rgba8"),
        "bgra8": raw(np.concatenate([rgb[:, :, ::-1], alpha], axis=2), "bgra8", pad=4),
        "png": compressed(rgb, "png"),
    }
    for name, frame in same.items():
        np.testing.assert_array_equal(decoder.pixels(frame).pixels, reference, err_msg=name)
    jpeg = decoder.pixels(compressed(rgb, "jpeg", quality=90)).pixels
    assert jpeg is not None and np.abs(jpeg.astype(int) - reference).mean() < 2.0


def test_mono_sources_and_targets() -> None:
    rgb = smooth(480, 752)
    grey = (rgb @ LUMA + 0.5).astype(np.uint8)
    colour = ImageDecoder(camera())
    from_mono = colour.pixels(raw(grey[:, :, None], "mono8", pad=48)).pixels
    assert from_mono is not None and (from_mono[:, :, 0] == from_mono[:, :, 2]).all()
    mono = ImageDecoder(camera(encoding="mono8"))
    from_rgb = mono.pixels(raw(rgb, "rgb8")).pixels.copy()
    from_grey = mono.pixels(raw(grey[:, :, None], "mono8")).pixels.copy()
    assert np.abs(from_rgb.astype(int) - from_grey).max() <= 1
    for bigendian in (False, True):
        wide = (grey.astype(np.uint16) * 257).astype(">u2" if bigendian else "<u2")
        from_16 = mono.pixels(raw(wide[:, :, None], "mono16", pad=6, bigendian=bigendian)).pixels
        assert np.abs(from_16.astype(int) - from_grey).max() <= 1, bigendian


# -------------------------------------------------------------------------------- training == flight
def test_a_frame_gives_the_same_bytes_in_training_and_in_flight() -> None:
    """The recipe's training path (encoder_pixels + DronePolicy.normalise_images) vs the runtime's decode."""
    torch = pytest.importorskip("torch")
    from lnn_ros.sim.world.sensors import CameraOutput
    from lnn_ros_examples.drone_policy.data import encoder_pixels, training_camera
    from lnn_ros_examples.drone_policy.model import DronePolicy, PolicyArch

    manifest = load_bundle(MODEL).manifest
    cam = manifest.camera
    assert cam is not None and cam.preprocess is not None
    rendered = smooth(48, 64, seed=4)
    for size in ((640, 480), (1280, 720), (64, 48)):
        frame = CameraOutput(*size, "rgb8").present(rendered)
        training = encoder_pixels(frame[None], training_camera(cam.width, cam.height))
        policy = DronePolicy(PolicyArch(), (0.0,) * 6, (1.0,) * 6, cam.mean, cam.std)
        train_input = policy.normalise_images(torch.from_numpy(training)).numpy()
        flight = ImageDecoder(cam).decode(raw(frame, "rgb8")).image
        assert flight is not None
        assert train_input.tobytes() == flight.tobytes(), size


@pytest.mark.parametrize(("width", "height"), [(640, 480), (1000, 750), (40, 30)])  # factor 10, 15.625, growth
def test_raw_frames_allocate_no_image_sized_memory(width: int, height: int) -> None:
    decoder = ImageDecoder(camera())
    frame = raw(np.ascontiguousarray(smooth(height, width)[:, :, ::-1]), "bgr8", pad=8)
    decoder.decode(frame)
    tracemalloc.start()
    result = decoder.decode(frame)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.status is ImageStatus.OK
    # numpy 1.x counts its ufunc casting buffer here (8192 elements x 8 B = 64 KiB); an image-sized copy is >= 300 KB.
    assert peak < 128 * 1024, peak


# ------------------------------------------------------------------------------------- bad frames
def _jpeg_with_size(width: int, height: int) -> bytes:
    data = bytearray(compressed(smooth(48, 64), "jpeg").data)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_bad_frames_are_counted_by_reason_and_never_raise() -> None:
    runner = build_runner(MODEL)
    good = compressed(smooth(720, 1280), "jpeg")
    jpeg = bytes(good.data)
    bad = {
        "camera_wrong_encoding": [
            raw(smooth(48, 64), "rgb8")._replace(encoding="yuv422"),
            raw(smooth(48, 64), "rgb8")._replace(encoding="16UC1"),
            good._replace(encoding="compresseddepth png"),
        ],
        "camera_wrong_size": [
            ImageFrame(1, 0, 0, "rgb8", 0, b""),
            ImageFrame(1, 100_000, 100_000, "mono8", 100_000, b"\0" * 16),
            good._replace(data=_jpeg_with_size(60_000, 60_000)),
        ],
        "camera_malformed": [
            good._replace(data=jpeg[: len(jpeg) // 2]),  # truncated
            good._replace(data=jpeg[:200] + bytes(range(256)) * 8),  # corrupt
            good._replace(data=b""),  # zero bytes
            good._replace(data=bytes(compressed(smooth(48, 64), "png").data)),  # a png labelled jpeg
            raw(smooth(48, 64), "rgb8")._replace(step=10),
        ],
    }
    stamp = 10_000_000
    for frames in bad.values():
        for frame in frames:
            stamp += 1_000_000
            assert runner.on_image(frame._replace(stamp_ns=stamp)) is None
    counters = runner.counters_dict()
    for name, frames in bad.items():
        assert counters.get(name, 0) == len(frames), (name, counters)
    assert counters.get("camera_encoded", 0) == 0
    # a good frame afterwards is taken, and the IMU then steps the policy
    runner.on_image(good._replace(stamp_ns=stamp + 1_000_000))
    imu = ImuSample(stamp + 2_000_000, np.zeros(3), np.array([0.0, 0.0, 9.81]), np.array([0.0, 0.0, 0.0, 1.0]))
    runner.on_imu(imu)
    command = runner.on_imu(imu._replace(stamp_ns=stamp + 7_000_000))
    assert command is not None and runner.counters_dict()["camera_encoded"] == 1


# ------------------------------------------------------------------------- messages and manifest
def test_compressed_image_messages_are_recognised_by_format() -> None:
    class Msg:
        def __init__(self, fmt: str) -> None:
            self.format, self.data = fmt, b"\xff\xd8"

    assert compressed_format("jpeg") == "jpeg"
    assert compressed_format("bgr8; jpeg compressed bgr8") == "jpeg"
    assert compressed_format("rgb8; png compressed rgb8") == "png"
    assert compressed_format("16UC1; compressedDepth png") != "png"
    assert image_frame(Msg("JPEG"), 5).encoding == "jpeg"


def test_preprocess_declaration_is_checked() -> None:
    for bad, field in (
        ({"crop": "stretch"}, "crop"),
        ({"resize": "lanczos"}, "resize"),
        ({"encodings": ["yuv422"]}, "encodings[0]"),
        ({"formats": ["gif"]}, "formats[0]"),
        ({"max_pixels": 0}, "max_pixels"),
        ({"colour": "srgb"}, "unknown keys"),
    ):
        with pytest.raises(PreprocessError, match=field.replace("[", r"\[").replace("]", r"\]")):
            Preprocess.from_dict(bad)
    assert Preprocess.from_dict(Preprocess().to_dict()) == Preprocess()


def test_schema_1_bundles_load_as_encoder_size_only(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(MODEL, folder)
    data = yaml.safe_load((folder / "manifest.yaml").read_text())
    data["schema_version"] = 2
    assert "preprocess" in data["inputs"]["camera"]
    data["schema_version"] = 1
    (folder / "manifest.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(BundleError, match="preprocess.*needs schema_version 2"):
        load_bundle(folder)
    del data["inputs"]["camera"]["preprocess"]
    (folder / "manifest.yaml").write_text(yaml.safe_dump(data))
    manifest = load_bundle(folder).manifest
    assert manifest.schema_version == 1 and manifest.camera is not None and manifest.camera.preprocess is None
    decoder = ImageDecoder(manifest.camera)
    assert decoder.pixels(raw(smooth(480, 640), "bgr8")).status is ImageStatus.WRONG_SIZE
    assert decoder.pixels(raw(smooth(48, 64), "bgr8")).status is ImageStatus.OK
    info = subprocess.run(
        [sys.executable, "-m", "lnn_ros.cli", "info", str(folder)], capture_output=True, text=True, check=True
    ).stdout
    assert "input must already be the encoder's size" in info
    shipped = subprocess.run(
        [sys.executable, "-m", "lnn_ros.cli", "info", str(MODEL)], capture_output=True, text=True, check=True
    ).stdout
    assert "preprocess: any size" in shipped


def test_preprocessing_cost_is_reported_in_diagnostics() -> None:
    from lnn_ros.runtime.factory import build_live_loop
    from lnn_ros.runtime.live import LiveConfig

    clock = [1_000_000_000]
    loop = build_live_loop(MODEL, live=LiveConfig(), now_ns=lambda: clock[0])
    loop.on_image(compressed(smooth(720, 1280), "jpeg")._replace(stamp_ns=clock[0]))
    values = dict(loop.report().values)
    assert float(values["preprocess_ms.p50"]) > 0.0, values
    assert values.get("camera_encoded") == "1", values


@pytest.mark.parametrize(
    ("size", "encoding", "compressed"),
    [((640, 480), "bgr8", ""), ((1280, 720), "bgra8", ""), ((752, 480), "mono8", ""), ((1280, 720), "rgb8", "png")],
)
def test_simulator_camera_output_comes_back_through_the_preprocessing(
    size: tuple[int, int], encoding: str, compressed: str
) -> None:
    """sim_drone_node's camera options: whole-pixel upscaling, centred; the centre crop + area average undo it."""
    from lnn_ros.sim.world.sensors import CameraOutput

    rendered = smooth(48, 64, seed=9)
    frame = CameraOutput(*size, encoding, compressed).frame(ImageFrame(3, 48, 64, "rgb8", 192, rendered.tobytes()))
    assert (frame.width, frame.height) == ((0, 0) if compressed else size)
    out = ImageDecoder(camera()).pixels(frame).pixels
    assert out is not None
    if encoding == "mono8":  # 752x480: 10x repetition, 640x480 centred; the grey repeated to colour comes back
        grey = (rendered @ LUMA + 0.5).astype(np.uint8)
        np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))
    else:
        np.testing.assert_array_equal(out, rendered)
