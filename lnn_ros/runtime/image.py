"""Camera frames to the encoder's input: ``[1, C, height, width]`` float32, normalised.

Per channel ``c`` of the manifest's ``camera.encoding``::

    image[0, c] = (pixel_c / 255 - mean[c]) / std[c]   computed as   pixel_c * scale[c] - offset[c]

with ``scale = 1 / (255 std)`` and ``offset = mean / std``. Accepted inputs are the encodings in
``camera.accepted_encodings``; a frame in another channel order is converted on the fly
(``bgr8`` <-> ``rgb8`` by reversing the channel axis, ``mono8`` -> colour by repeating the one
channel, colour -> ``mono8`` by BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` in float, not
rounded to uint8). Row padding (``step > width * channels``) is skipped by a strided view.

Frames are never resized: a frame whose width or height differs from the manifest is
rejected as ``WRONG_SIZE``, because a silent resize with an interpolation the model was not
trained with changes what it sees. Resize upstream (e.g. ``image_proc``'s resize node) to the
size in the manifest.

The pixels are read through views of the frame's buffer and written into one output buffer
allocated at construction (plus one scratch plane for colour -> mono), so decoding allocates no
image-sized memory per frame. The returned array is that buffer: it is overwritten by the
next :meth:`ImageDecoder.decode`.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

import numpy as np

from lnn_ros.bundle import CameraSpec
from lnn_ros.bundle.manifest import IMAGE_ENCODINGS
from lnn_ros.runtime.records import ImageFrame

LUMA_RGB = (0.299, 0.587, 0.114)


class ImageStatus(Enum):
    """What :meth:`ImageDecoder.decode` did with one frame."""

    OK = "ok"
    WRONG_ENCODING = "wrong_encoding"  # encoding not in the manifest's accepted_encodings
    WRONG_SIZE = "wrong_size"  # width/height differ from the manifest
    MALFORMED = "malformed"  # step shorter than a row, or data length != step * height


class DecodeResult(NamedTuple):
    """``image`` is the decoder's buffer [1, C, H, W] when ``status`` is OK, else ``None``."""

    status: ImageStatus
    image: np.ndarray | None


class ImageDecoder:
    """Turns :class:`~lnn_ros.runtime.records.ImageFrame` into normalised encoder input.

    Args:
        camera: the manifest's camera section (size, encoding, accepted encodings, mean/std).
    """

    def __init__(self, camera: CameraSpec) -> None:
        self.camera = camera
        channels = camera.channels
        self.image = np.zeros((1, channels, camera.height, camera.width), dtype=np.float32)
        std = np.asarray(camera.std, dtype=np.float64)
        mean = np.asarray(camera.mean, dtype=np.float64)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(channels, 1, 1)
        self._offset = (mean / std).astype(np.float32).reshape(channels, 1, 1)
        self._plane = np.zeros((camera.height, camera.width), dtype=np.float32)  # colour -> mono only
        self._accepted = frozenset(e for e in camera.accepted_encodings if e in IMAGE_ENCODINGS)

    def decode(self, frame: ImageFrame) -> DecodeResult:
        """Check ``frame`` and write it, normalised, into :attr:`image`."""
        encoding = frame.encoding
        if encoding not in self._accepted:
            return DecodeResult(ImageStatus.WRONG_ENCODING, None)
        camera = self.camera
        height, width = frame.height, frame.width
        if height != camera.height or width != camera.width:
            return DecodeResult(ImageStatus.WRONG_SIZE, None)
        src_channels = IMAGE_ENCODINGS[encoding]
        row_bytes = width * src_channels
        flat = np.frombuffer(frame.data, dtype=np.uint8)
        if frame.step < row_bytes or flat.size != frame.step * height:
            return DecodeResult(ImageStatus.MALFORMED, None)
        pixels = flat.reshape(height, frame.step)[:, :row_bytes].reshape(height, width, src_channels)
        self._fill(pixels, encoding)
        return DecodeResult(ImageStatus.OK, self.image)

    def _fill(self, pixels: np.ndarray, encoding: str) -> None:
        out = self.image[0]
        target = self.camera.encoding
        if target == "mono8" and encoding != "mono8":
            self._luma(pixels, encoding, out[0])
            return
        if encoding == target:
            planes = pixels.transpose(2, 0, 1)
        elif encoding == "mono8":
            planes = np.broadcast_to(pixels[:, :, 0], out.shape)
        else:  # rgb8 <-> bgr8
            planes = pixels[:, :, ::-1].transpose(2, 0, 1)
        np.multiply(planes, self._scale, out=out)
        np.subtract(out, self._offset, out=out)

    def _luma(self, pixels: np.ndarray, encoding: str, out: np.ndarray) -> None:
        weights = LUMA_RGB if encoding == "rgb8" else LUMA_RGB[::-1]
        scale = float(self._scale[0, 0, 0])
        plane = self._plane
        np.multiply(pixels[:, :, 0], np.float32(weights[0] * scale), out=out)
        for channel in (1, 2):
            np.multiply(pixels[:, :, channel], np.float32(weights[channel] * scale), out=plane)
            np.add(out, plane, out=out)
        np.subtract(out, self._offset[0], out=out)
