"""Camera frames to the encoder's input: ``[1, C, height, width]`` float32, normalised.

The one preprocessing function of lnn_ros: the node, the replay, the simulator pilot and every
training-data path (simulator demonstrations, ``bag-to-dataset``) call :class:`ImageDecoder`,
so a frame becomes the same tensor in training and in flight. Two stages:

1. :meth:`ImageDecoder.pixels`: frame -> uint8 ``[height, width, C]`` in ``camera.encoding``'s
   channel order (what training stores), by

   * decode: ``sensor_msgs/Image`` pixels are read through a strided view of the message buffer
     (row padding ``step > width * channels`` skipped, ``mono16`` byte order from
     ``is_bigendian``); a ``CompressedImage`` (``encoding`` ``jpeg`` / ``png``, see
     :func:`lnn_ros.runtime.messages.compressed_frame`) is decoded by Pillow (libjpeg-turbo,
     zlib). A jpeg is decoded with libjpeg's DCT scaling (1/2, 1/4, 1/8) to the smallest size
     that still covers what the crop needs, then resized like any frame.
   * crop: ``centre`` takes the centred region of the encoder's aspect ratio; ``letterbox``
     keeps the whole frame, fitted inside and centred, the bands filled with ``pad_value``.
   * resize, rows then columns: area averaging when the axis shrinks (each output pixel is the
     exact mean of the source area it covers, end pixels weighted by the fraction covered),
     bilinear (half-pixel centres, edges clamped) when it grows, a copy when it is equal.
   * colour: channels reordered (``bgr8`` <-> ``rgb8``, alpha dropped), ``mono`` repeated to
     colour, colour -> mono by BT.601 luma ``0.299 R + 0.587 G + 0.114 B``; ``mono16`` is
     scaled to 0..255 by ``/ 257``; then rounded to uint8.

2. :meth:`ImageDecoder.normalise`: ``image[0, c] = pixel_c * scale[c] - offset[c]`` with
   ``scale = 1 / (255 std)`` and ``offset = mean / std`` (= ``(pixel / 255 - mean) / std``).

A bundle without ``camera.preprocess`` (schema 1) takes only frames of exactly the encoder's
size in ``camera.accepted_encodings`` (others are ``WRONG_SIZE``); the steps above are then
the identity except for the colour conversion.

Buffers are allocated at construction and per source geometry (kept for the next frame of the
same size), so a stream of raw frames allocates no image-sized memory per frame; jpeg / png
decoding allocates Pillow's decoded image. The returned arrays are those buffers: each call
overwrites them.
"""

from __future__ import annotations

import io
import math
import time
from enum import Enum
from typing import Any, NamedTuple

import numpy as np

from lnn_ros.bundle import CameraSpec
from lnn_ros.bundle.preprocess import RAW_ENCODINGS, Preprocess
from lnn_ros.runtime.records import ImageFrame
from lnn_ros.runtime.stats import RollingWindow
from lnn_ros.units import NS_PER_S

LUMA_RGB = (0.299, 0.587, 0.114)
COMPRESSED_ENCODINGS = ("jpeg", "png")
""":attr:`ImageFrame.encoding` of a ``sensor_msgs/CompressedImage`` (its format); height, width, step are 0."""
MAX_SIDE = 1 << 15
COST_WINDOW = 1000

_PIL_MODES = {"L": "mono8", "RGB": "rgb8", "RGBA": "rgba8", "I;16": "mono16", "I;16B": "mono16"}


class ImageStatus(Enum):
    """What :meth:`ImageDecoder.decode` did with one frame."""

    OK = "ok"
    WRONG_ENCODING = "wrong_encoding"  # encoding / compressed format not accepted by the bundle
    WRONG_SIZE = "wrong_size"  # zero, absurd (> max_pixels), or (schema 1) not the encoder's size
    MALFORMED = "malformed"  # step shorter than a row, data length != step * height, corrupt jpeg / png


class DecodeResult(NamedTuple):
    """``image`` is the decoder's buffer [1, C, H, W] when ``status`` is OK, else ``None``."""

    status: ImageStatus
    image: np.ndarray | None


class PixelsResult(NamedTuple):
    """``pixels`` is the decoder's uint8 buffer [H, W, C] when ``status`` is OK, else ``None``."""

    status: ImageStatus
    pixels: np.ndarray | None


class _Tap(NamedTuple):
    """One output sample: ``(sum(src[start:stop]) + sum(w * src[i] for i, w in partial)) * scale``."""

    start: int
    stop: int
    partial: tuple[tuple[int, float], ...]
    scale: float


class _Axis(NamedTuple):
    """How one axis of ``src`` samples becomes ``dst`` samples (``taps`` is empty for a copy).

    ``factor`` > 0: an integer shrink factor (every output averages ``factor`` whole samples).
    """

    size: int
    taps: tuple[_Tap, ...]
    factor: int = 0


def _axis(src: int, dst: int) -> _Axis:
    if src == dst:
        return _Axis(dst, ())
    taps: list[_Tap] = []
    factor = src // dst if src % dst == 0 else 0
    if dst < src:  # area: output j averages [j, j + 1) * src / dst, fractional end pixels weighted
        step = src / dst
        for j in range(dst):
            lo, hi = j * step, min(src, (j + 1) * step)
            first, last = math.ceil(lo), math.floor(hi)
            partial: list[tuple[int, float]] = []
            if first > lo:
                partial.append((math.floor(lo), first - lo))
            if last < hi and last < src:
                partial.append((last, hi - last))
            taps.append(_Tap(first, max(first, last), tuple(partial), 1.0 / (hi - lo)))
    else:  # bilinear: half-pixel centres, clamped at the edges
        for j in range(dst):
            centre = min(max((j + 0.5) * src / dst - 0.5, 0.0), src - 1.0)
            left = math.floor(centre)
            right = min(left + 1, src - 1)
            w = centre - left
            taps.append(_Tap(0, 0, ((left, 1.0 - w), (right, w)), 1.0))
    return _Axis(dst, tuple(taps), factor)


class _Pass:
    """One resampling pass along the first axis of a ``[src, rest]`` array into float32 ``[dst, rest]``.

    A copy and an integer shrink factor are one numpy call each. Any other factor (area with
    fractional end samples, or bilinear growth) covers at most K source samples per output:

    * K <= ``MAX_GATHER_TAPS`` (growth, and shrinking by less than about 3): K taps,
      ``dst[j] = sum_k w[k, j] * src[index[k, j]]`` (a weight of 0 where an output covers
      fewer), for all ``j`` at once: per tap one ``np.take`` gather and one multiply-add, 3 K
      numpy calls per pass instead of about 4 per output sample;
    * larger K: per output sample one ``np.sum`` over its run of whole samples plus its
      weighted end samples; the contiguous reduction beats K gathers once K is large
      (``python -m lnn_ros_benchmarks.camera_scaling``: 160x120 -> 64x48 0.77 -> 0.21 ms with
      taps, 1920x1080 3.1 ms with sums against 6.7 ms with taps).

    Every buffer is allocated here, once per source geometry; a frame allocates no image-sized memory.
    """

    MAX_GATHER_TAPS = 4

    def __init__(self, axis: _Axis, rest: int, dtype: np.dtype[Any]) -> None:
        self.axis = axis
        self.gather = False
        if not axis.taps or axis.factor:
            return
        per_output = [
            [(i, tap.scale) for i in range(tap.start, tap.stop)] + [(i, w * tap.scale) for i, w in tap.partial]
            for tap in axis.taps
        ]
        count = max(len(taps) for taps in per_output)
        if count > self.MAX_GATHER_TAPS:
            return
        self.gather = True
        padded = [taps + [(0, 0.0)] * (count - len(taps)) for taps in per_output]
        self.index = np.array([[taps[k][0] for taps in padded] for k in range(count)], dtype=np.intp)  # [K, dst]
        self.weight = np.array([[taps[k][1] for taps in padded] for k in range(count)], dtype=np.float32)[:, :, None]
        self.gathered = np.zeros((axis.size, rest), dtype)
        self.weighted = np.zeros((axis.size, rest), np.float32)

    def run(self, src: np.ndarray, dst: np.ndarray) -> None:
        axis = self.axis
        if not axis.taps:
            np.copyto(dst, src, casting="unsafe")
            return
        if axis.factor:  # whole blocks: one reduction over a (dst, factor, row) view
            np.sum(src.reshape(axis.size, axis.factor, -1), axis=1, dtype=np.float32, out=dst.reshape(axis.size, -1))
            dst *= np.float32(1.0 / axis.factor)
            return
        if not self.gather:
            for j, tap in enumerate(axis.taps):
                row = dst[j]
                if tap.stop > tap.start:
                    np.sum(src[tap.start : tap.stop], axis=0, dtype=np.float32, out=row)
                else:
                    row.fill(0.0)
                for index, weight in tap.partial:
                    row += src[index] * np.float32(weight)
                if tap.scale != 1.0:
                    row *= np.float32(tap.scale)
            return
        gathered, weighted = self.gathered, self.weighted
        for k, (indices, weights) in enumerate(zip(self.index, self.weight)):
            np.take(src, indices, axis=0, out=gathered, mode="clip")  # "raise" would buffer the output
            if k == 0:
                np.multiply(gathered, weights, out=dst)
            else:
                np.multiply(gathered, weights, out=weighted)
                np.add(dst, weighted, out=dst)


class _Plan:
    """Crop, resize and buffers for one source geometry (height, width, channels, dtype)."""

    def __init__(
        self, height: int, width: int, channels: int, dtype: np.dtype[Any], camera: CameraSpec, prep: Preprocess | None
    ) -> None:
        out_h, out_w = camera.height, camera.width
        self.rows = slice(0, height)
        self.cols = slice(0, width)
        self.inner = (slice(0, out_h), slice(0, out_w))
        self.full = True
        if prep is not None and prep.crop == "letterbox":
            scale = min(out_w / width, out_h / height)
            inner_w = min(out_w, max(1, round(width * scale)))
            inner_h = min(out_h, max(1, round(height * scale)))
            top, left = (out_h - inner_h) // 2, (out_w - inner_w) // 2
            self.inner = (slice(top, top + inner_h), slice(left, left + inner_w))
            self.full = inner_h == out_h and inner_w == out_w
            src_h, src_w, dst_h, dst_w = height, width, inner_h, inner_w
        else:
            crop_w = min(width, max(1, round(height * out_w / out_h)))
            crop_h = min(height, max(1, round(width * out_h / out_w)))
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
            self.rows, self.cols = slice(top, top + crop_h), slice(left, left + crop_w)
            src_h, src_w, dst_h, dst_w = crop_h, crop_w, out_h, out_w
        self.row_pass = _Pass(_axis(src_h, dst_h), src_w * channels, dtype)
        self.col_pass = _Pass(_axis(src_w, dst_w), dst_h * channels, np.dtype(np.float32))
        self.rows_done = np.zeros((dst_h, src_w * channels), np.float32)  # after the row pass
        self.cols_in = np.zeros((src_w, dst_h * channels), np.float32)  # the same, columns first
        self.cols_done = np.zeros((dst_w, dst_h * channels), np.float32)  # after the column pass
        self.done = self.cols_done.reshape(dst_w, dst_h, channels).transpose(1, 0, 2)  # [dst_h, dst_w, C] view
        self.identity = not self.row_pass.axis.taps and not self.col_pass.axis.taps
        self.luma = (np.zeros((dst_h, dst_w), np.float32), np.zeros((dst_h, dst_w), np.float32))


class ImageDecoder:
    """Turns :class:`~lnn_ros.runtime.records.ImageFrame` into normalised encoder input.

    Args:
        camera: the manifest's camera section (size, encoding, mean/std, preprocess).

    Attributes:
        cost_s: seconds :meth:`decode` took per frame (decode + preprocess + normalise), last 1000.
    """

    def __init__(self, camera: CameraSpec) -> None:
        self.camera = camera
        self.preprocess = camera.preprocess
        channels = camera.channels
        self.image = np.zeros((1, channels, camera.height, camera.width), dtype=np.float32)
        self.out = np.zeros((camera.height, camera.width, channels), dtype=np.uint8)
        std = np.asarray(camera.std, dtype=np.float64)
        mean = np.asarray(camera.mean, dtype=np.float64)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(channels, 1, 1)
        self._offset = (mean / std).astype(np.float32).reshape(channels, 1, 1)
        prep = self.preprocess
        if prep is None:
            self._accepted = frozenset(e for e in camera.accepted_encodings if e in RAW_ENCODINGS)
            self._formats: frozenset[str] = frozenset()
            self._max_pixels = camera.width * camera.height
        else:
            self._accepted = frozenset(prep.encodings)
            self._formats = frozenset(prep.formats)
            self._max_pixels = prep.max_pixels
        self._plan: _Plan | None = None
        self._plan_key: tuple[int, int, int, str] | None = None
        self._float = np.zeros((camera.height, camera.width, channels), dtype=np.float32)
        self.cost_s = RollingWindow(COST_WINDOW)

    # ------------------------------------------------------------------ public
    def decode(self, frame: ImageFrame) -> DecodeResult:
        """Preprocess ``frame`` and write it, normalised, into :attr:`image` (the returned buffer)."""
        start = time.perf_counter_ns()
        status, pixels = self.pixels(frame)
        if pixels is None:
            return DecodeResult(status, None)
        image = self.normalise(pixels)
        self.cost_s.add((time.perf_counter_ns() - start) / NS_PER_S)
        return DecodeResult(ImageStatus.OK, image)

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 [H, W, C] (``camera.encoding``) -> :attr:`image` [1, C, H, W] float32."""
        out = self.image[0]
        np.multiply(pixels.transpose(2, 0, 1), self._scale, out=out)
        np.subtract(out, self._offset, out=out)
        return self.image

    def pixels(self, frame: ImageFrame) -> PixelsResult:
        """Decode, crop, resize and colour-convert ``frame`` into :attr:`out`, uint8 [H, W, C]."""
        encoding = frame.encoding
        if encoding in COMPRESSED_ENCODINGS:
            if encoding not in self._formats:
                return PixelsResult(ImageStatus.WRONG_ENCODING, None)
            return self._compressed(frame)
        if encoding not in self._accepted:
            return PixelsResult(ImageStatus.WRONG_ENCODING, None)
        height, width = frame.height, frame.width
        if height < 1 or width < 1 or height > MAX_SIDE or width > MAX_SIDE or height * width > self._max_pixels:
            return PixelsResult(ImageStatus.WRONG_SIZE, None)
        camera = self.camera
        if self.preprocess is None and (height != camera.height or width != camera.width):
            return PixelsResult(ImageStatus.WRONG_SIZE, None)
        channels, depth = RAW_ENCODINGS[encoding]
        row_bytes = width * channels * depth
        try:
            size = memoryview(frame.data).nbytes
        except TypeError:
            return PixelsResult(ImageStatus.MALFORMED, None)
        if frame.step < row_bytes or size != frame.step * height:
            return PixelsResult(ImageStatus.MALFORMED, None)
        dtype = np.dtype(np.uint8) if depth == 1 else np.dtype(">u2" if frame.is_bigendian else "<u2")
        view = np.ndarray(
            (height, width, channels), dtype=dtype, buffer=frame.data, strides=(frame.step, channels * depth, depth)
        )
        self._convert(view, encoding)
        return PixelsResult(ImageStatus.OK, self.out)

    # ------------------------------------------------------------------ steps
    def _compressed(self, frame: ImageFrame) -> PixelsResult:
        from PIL import Image  # the compressed transport only: raw streams never import Pillow

        try:
            image: Any = Image.open(io.BytesIO(frame.data))
        except Image.DecompressionBombError:  # a header claiming far more pixels than any camera
            return PixelsResult(ImageStatus.WRONG_SIZE, None)
        except Exception:  # an untrusted byte stream: Pillow raises OSError, SyntaxError, ValueError, ...
            return PixelsResult(ImageStatus.MALFORMED, None)
        try:
            if (image.format or "").lower() != frame.encoding:
                return PixelsResult(ImageStatus.MALFORMED, None)
            width, height = image.size
            if height < 1 or width < 1 or height > MAX_SIDE or width > MAX_SIDE or height * width > self._max_pixels:
                return PixelsResult(ImageStatus.WRONG_SIZE, None)
            if frame.encoding == "jpeg":
                scale = self._needed_scale(height, width)
                image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
            if image.mode not in _PIL_MODES:
                image = image.convert("RGBA" if "A" in image.mode else "RGB")
            pixels = np.asarray(image)
        except Exception:  # an untrusted byte stream: Pillow raises OSError, SyntaxError, ValueError, ...
            return PixelsResult(ImageStatus.MALFORMED, None)
        encoding = _PIL_MODES[image.mode]
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if self.preprocess is None and pixels.shape[:2] != (self.camera.height, self.camera.width):
            return PixelsResult(ImageStatus.WRONG_SIZE, None)
        self._convert(pixels, encoding)
        return PixelsResult(ImageStatus.OK, self.out)

    def _needed_scale(self, height: int, width: int) -> float:
        """The smallest scale of a ``height x width`` frame whose crop still covers the encoder's input."""
        camera = self.camera
        fits = (camera.width / width, camera.height / height)
        if self.preprocess is not None and self.preprocess.crop == "letterbox":
            return min(1.0, min(fits))
        return min(1.0, max(fits))

    def _plan_for(self, height: int, width: int, channels: int, dtype: str) -> _Plan:
        key = (height, width, channels, dtype)
        if self._plan is None or self._plan_key != key:
            self._plan = _Plan(height, width, channels, np.dtype(dtype), self.camera, self.preprocess)
            self._plan_key = key
        return self._plan

    def _convert(self, pixels: np.ndarray, encoding: str) -> None:
        """uint8 / uint16 [h, w, c] in ``encoding`` (rows contiguous) -> :attr:`out`.

        Resizing runs on the frame's own channels in memory order (rows of ``w * c`` values, so
        each row is one contiguous run); the channel order is changed on the small result.
        """
        height, width, channels = pixels.shape
        plan = self._plan_for(height, width, channels, pixels.dtype.str)
        target = self.camera.encoding
        mono_src = encoding in ("mono8", "mono16")
        rgb_first = encoding in ("rgb8", "rgba8")
        if mono_src:
            select: slice = slice(0, 1)
        elif (target == "bgr8") == rgb_first:  # reverse the colour channels
            select = slice(2, None, -1)
        else:
            select = slice(0, 3)
        to_mono = target == "mono8" and not mono_src
        out = self.out
        if plan.identity and not to_mono and pixels.dtype == np.uint8:
            np.copyto(out, pixels[:, :, select])  # broadcasts mono -> colour
            return
        cols = plan.cols
        rows2d = pixels[plan.rows].reshape(-1, width * channels)[:, cols.start * channels : cols.stop * channels]
        plan.row_pass.run(rows2d, plan.rows_done)
        dst_h = plan.rows_done.shape[0]
        np.copyto(plan.cols_in.reshape(-1, dst_h, channels), plan.rows_done.reshape(dst_h, -1, channels).transpose(1, 0, 2))
        plan.col_pass.run(plan.cols_in, plan.cols_done)
        values = plan.done[:, :, select]
        if to_mono:  # values are in R, G, B order here (select put them so)
            luma, product = plan.luma
            np.multiply(values[:, :, 0], np.float32(LUMA_RGB[0]), out=luma)
            for channel in (1, 2):
                np.multiply(values[:, :, channel], np.float32(LUMA_RGB[channel]), out=product)
                np.add(luma, product, out=luma)
            values = luma[:, :, None]
        if encoding == "mono16":
            values = np.multiply(values, np.float32(1.0 / 257.0), out=plan.done[:, :, : values.shape[2]])
        if not plan.full:
            out.fill(self.preprocess.pad_value if self.preprocess is not None else 0)
        region = out[plan.inner]
        buffer = self._float[plan.inner]
        np.add(values, np.float32(0.5), out=buffer)  # broadcasts mono -> colour
        np.clip(buffer, 0.0, 255.0, out=buffer)
        np.copyto(region, buffer, casting="unsafe")  # truncation of x + 0.5: round half up
