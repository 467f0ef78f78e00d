"""ImageDecoder against a float64 reference of the normalisation, for every encoding path."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from lnn_ros.bundle import CameraSpec
from lnn_ros.runtime import ImageDecoder, ImageFrame, ImageStatus

H, W = 24, 32
MEAN = (0.4, 0.5, 0.6)
STD = (0.2, 0.25, 0.3)
LUMA = np.array([0.299, 0.587, 0.114])


def spec(encoding: str = "rgb8", accepted: tuple[str, ...] = ("rgb8", "bgr8", "mono8"), h: int = H, w: int = W) -> CameraSpec:
    channels = 1 if encoding == "mono8" else 3
    return CameraSpec(
        width=w, height=h, encoding=encoding, embedding_size=4,
        mean=MEAN[:channels], std=STD[:channels], accepted_encodings=accepted,
    )


def frame(pixels: np.ndarray, encoding: str, *, pad: int = 0, stamp_ns: int = 1) -> ImageFrame:
    """An ImageFrame of ``pixels`` [H, W, C] uint8 with ``pad`` junk bytes after each row."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    padded = np.concatenate([rows, np.full((h, pad), 77, dtype=np.uint8)], axis=1)
    return ImageFrame(stamp_ns, h, w, encoding, rows.shape[1] + pad, padded.tobytes())


def reference(rgb: np.ndarray, camera: CameraSpec) -> np.ndarray:
    """(pixel / 255 - mean) / std in float64, channels in the camera's encoding, [1, C, H, W]."""
    if camera.encoding == "mono8":  # luma rounded to uint8, as the preprocessing stores it
        planes = np.floor(rgb.astype(np.float64) @ LUMA + 0.5)[None]
    elif camera.encoding == "bgr8":
        planes = rgb[:, :, ::-1].transpose(2, 0, 1).astype(np.float64)
    else:
        planes = rgb.transpose(2, 0, 1).astype(np.float64)
    mean = np.array(camera.mean).reshape(-1, 1, 1)
    std = np.array(camera.std).reshape(-1, 1, 1)
    return ((planes / 255.0 - mean) / std)[None]


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.mark.parametrize("target", ["rgb8", "bgr8"])
@pytest.mark.parametrize("source", ["rgb8", "bgr8"])
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_frames_match_reference(rgb: np.ndarray, target: str, source: str, pad: int) -> None:
    camera = spec(target)
    decoder = ImageDecoder(camera)
    pixels = rgb if source == "rgb8" else rgb[:, :, ::-1]
    result = decoder.decode(frame(np.ascontiguousarray(pixels), source, pad=pad))
    assert result.status is ImageStatus.OK
    assert result.image is decoder.image and result.image.dtype == np.float32
    np.testing.assert_allclose(result.image, reference(rgb, camera), rtol=0, atol=2e-6)


def test_mono_frame_feeds_every_colour_channel() -> None:
    gray = np.random.default_rng(4).integers(0, 256, (H, W), dtype=np.uint8)
    camera = spec("rgb8")
    result = ImageDecoder(camera).decode(frame(gray[:, :, None], "mono8", pad=3))
    assert result.status is ImageStatus.OK
    expected = reference(np.repeat(gray[:, :, None], 3, axis=2), camera)
    np.testing.assert_allclose(result.image, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("source", ["rgb8", "bgr8", "mono8"])
def test_mono_target_uses_bt601_luma(rgb: np.ndarray, source: str) -> None:
    camera = spec("mono8")
    decoder = ImageDecoder(camera)
    if source == "mono8":
        gray = rgb[:, :, 0]
        result = decoder.decode(frame(gray[:, :, None], "mono8"))
        expected = reference(np.repeat(gray[:, :, None], 3, axis=2), camera)
    else:
        pixels = rgb if source == "rgb8" else rgb[:, :, ::-1]
        result = decoder.decode(frame(np.ascontiguousarray(pixels), source, pad=2))
        expected = reference(rgb, camera)
    assert result.status is ImageStatus.OK and result.image.shape == (1, 1, H, W)
    np.testing.assert_allclose(result.image, expected, rtol=0, atol=5e-6)


def test_rejections_leave_the_buffer_untouched(rgb: np.ndarray) -> None:
    decoder = ImageDecoder(spec("rgb8", accepted=("rgb8", "mono8")))
    assert decoder.decode(frame(rgb, "rgb8")).status is ImageStatus.OK
    before = decoder.image.copy()
    cases = {
        "bgr8 not accepted": (frame(rgb, "bgr8"), ImageStatus.WRONG_ENCODING),
        "unknown encoding": (frame(rgb, "rgba8"), ImageStatus.WRONG_ENCODING),
        "16-bit": (frame(rgb, "16UC1"), ImageStatus.WRONG_ENCODING),
        "too wide": (frame(np.zeros((H, W + 1, 3), np.uint8), "rgb8"), ImageStatus.WRONG_SIZE),
        "too short": (frame(np.zeros((H - 1, W, 3), np.uint8), "rgb8"), ImageStatus.WRONG_SIZE),
        "step below a row": (frame(rgb, "rgb8")._replace(step=W * 3 - 1), ImageStatus.MALFORMED),
        "data too short": (frame(rgb, "rgb8")._replace(data=rgb.tobytes()[:-1]), ImageStatus.MALFORMED),
        "data too long": (frame(rgb, "rgb8")._replace(data=rgb.tobytes() + b"\0"), ImageStatus.MALFORMED),
        "mono step for rgb": (frame(rgb[:, :, :1].copy(), "rgb8")._replace(width=W), ImageStatus.MALFORMED),
    }
    for name, (bad, status) in cases.items():
        result = decoder.decode(bad)
        assert result.status is status, name
        assert result.image is None, name
    np.testing.assert_array_equal(decoder.image, before)


def test_reads_any_buffer_without_copying(rgb: np.ndarray) -> None:
    """bytes, memoryview and array.array (what rclpy gives) decode alike; VGA allocates no image-sized memory."""
    import array

    camera = spec("rgb8")
    decoder = ImageDecoder(camera)
    base = frame(rgb, "bgr8")
    results = [
        decoder.decode(base._replace(data=data)).image.copy()
        for data in (base.data, memoryview(base.data), array.array("B", base.data))
    ]
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])

    big = np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for target, source in (("rgb8", "rgb8"), ("rgb8", "bgr8"), ("rgb8", "mono8"), ("mono8", "rgb8")):
        vga = ImageDecoder(spec(target, h=480, w=640))
        pixels = big[:, :, :1].copy() if source == "mono8" else big
        vga_frame = frame(pixels, source, pad=8)
        vga.decode(vga_frame)  # warm up
        tracemalloc.start()
        result = vga.decode(vga_frame)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert result.status is ImageStatus.OK
        # numpy 1.x counts its ufunc casting buffer (64 KiB) here; an image-sized copy would be >= 300 KB.
        assert peak < 128 * 1024, f"{source}->{target} allocated {peak} bytes for a {vga.image.nbytes}-byte image"


@pytest.mark.parametrize("pad", [0, 5])
def test_to_array_gives_the_pixels_without_row_padding(rgb: np.ndarray, pad: int) -> None:
    colour = frame(rgb, "rgb8", pad=pad).to_array()
    assert colour.shape == (H, W, 3) and not colour.flags.writeable  # a view of the bytes
    np.testing.assert_array_equal(colour, rgb)
    mono = rgb[:, :, :1].copy()
    np.testing.assert_array_equal(frame(mono, "mono8", pad=pad).to_array(), mono)
    good = frame(rgb, "rgb8")
    for bad, message in (
        (good._replace(encoding="rgba8"), "'rgba8' is not one of"),
        (good._replace(step=W * 3 - 1), "needs step >= 96"),
        (good._replace(data=good.data[:-1]), "got step 96 and 2303 bytes"),
    ):
        with pytest.raises(ValueError, match=message):
            bad.to_array()
