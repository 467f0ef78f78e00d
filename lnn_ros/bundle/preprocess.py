"""How a bundle turns any incoming camera frame into its encoder's input: ``inputs.camera.preprocess``.

Schema 2 of ``manifest.yaml`` may give the camera section a ``preprocess`` mapping::

    inputs:
      camera:
        width: 64              # the encoder's input size and channel order (schema 1 fields)
        height: 48
        encoding: rgb8
        mean: [...]            # normalisation: (pixel / 255 - mean) / std, per channel
        std: [...]
        preprocess:
          encodings: [rgb8, bgr8, mono8, rgba8, bgra8, mono16]   # sensor_msgs/Image encodings taken
          formats: [jpeg, png]  # sensor_msgs/CompressedImage formats taken ([] = none)
          crop: centre          # centre: crop to the encoder's aspect ratio; letterbox: fit inside, pad
          resize: area          # area averaging when shrinking an axis, bilinear when enlarging it
          pad_value: 0          # letterbox bands, in pixel units 0..255
          max_pixels: 16777216  # frames with more pixels are refused (counted wrong_size)

The steps, in order (one implementation: :class:`lnn_ros.runtime.image.ImageDecoder`):
decode (CompressedImage) -> crop -> resize -> colour conversion to ``camera.encoding`` ->
round to uint8 -> normalise. A camera section without ``preprocess`` (every schema-1 bundle)
takes only frames of exactly the encoder's size in ``camera.accepted_encodings``.

Bundle layer: no numpy, no image library; this module only parses and checks the declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lnn_ros.bundle.errors import ManifestError

RAW_ENCODINGS: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "mono8": (1, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono16": (1, 2),
}
"""``sensor_msgs/Image`` encodings the preprocessing reads: name -> (channels, bytes per channel)."""

COMPRESSED_FORMATS = ("jpeg", "png")
CROPS = ("centre", "letterbox")
RESIZES = ("area",)
DEFAULT_MAX_PIXELS = 4096 * 4096
KEYS = ("encodings", "formats", "crop", "resize", "pad_value", "max_pixels")


class PreprocessError(ManifestError):
    """``inputs.camera.preprocess`` is malformed."""


def _fail(path: str, message: str) -> PreprocessError:
    return PreprocessError(f"manifest.yaml: field {path!r} {message}")


def _choices(values: Any, path: str, allowed: tuple[str, ...], *, allow_empty: bool) -> tuple[str, ...]:
    if not isinstance(values, list) or (not values and not allow_empty):
        raise _fail(path, f"must be a {'' if allow_empty else 'non-empty '}list of {list(allowed)}, got {values!r}.")
    for i, value in enumerate(values):
        if value not in allowed:
            raise _fail(f"{path}[{i}]", f"must be one of {list(allowed)}, got {value!r}.")
    if len(set(values)) != len(values):
        raise _fail(path, f"lists a value twice: {values!r}.")
    return tuple(values)


@dataclass(frozen=True)
class Preprocess:
    """The declared preprocessing of a camera bundle (see the module docstring for each key)."""

    encodings: tuple[str, ...] = tuple(RAW_ENCODINGS)
    formats: tuple[str, ...] = COMPRESSED_FORMATS
    crop: str = "centre"
    resize: str = "area"
    pad_value: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def from_dict(cls, data: Any, path: str = "inputs.camera.preprocess") -> Preprocess:
        """Parse and check the mapping; unknown keys are refused.

        Raises:
            PreprocessError: naming the field and the bad value.
        """
        if not isinstance(data, dict):
            raise _fail(path, f"must be a mapping, got {data!r}.")
        unknown = sorted(str(k) for k in data if k not in KEYS)
        if unknown:
            raise _fail(path, f"has unknown keys {unknown}; the keys are {list(KEYS)}.")
        crop = data.get("crop", "centre")
        if crop not in CROPS:
            raise _fail(f"{path}.crop", f"must be one of {list(CROPS)}, got {crop!r}.")
        resize = data.get("resize", "area")
        if resize not in RESIZES:
            raise _fail(f"{path}.resize", f"must be one of {list(RESIZES)}, got {resize!r}.")
        pad = data.get("pad_value", 0)
        if isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad <= 255:
            raise _fail(f"{path}.pad_value", f"must be an integer 0..255, got {pad!r}.")
        max_pixels = data.get("max_pixels", DEFAULT_MAX_PIXELS)
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or not 1 <= max_pixels <= 1 << 28:
            raise _fail(f"{path}.max_pixels", f"must be an integer 1..{1 << 28}, got {max_pixels!r}.")
        return cls(
            encodings=_choices(data.get("encodings", list(RAW_ENCODINGS)), f"{path}.encodings", tuple(RAW_ENCODINGS), allow_empty=False),
            formats=_choices(data.get("formats", list(COMPRESSED_FORMATS)), f"{path}.formats", COMPRESSED_FORMATS, allow_empty=True),
            crop=crop,
            resize=resize,
            pad_value=pad,
            max_pixels=max_pixels,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "encodings": list(self.encodings),
            "formats": list(self.formats),
            "crop": self.crop,
            "resize": self.resize,
            "pad_value": self.pad_value,
            "max_pixels": self.max_pixels,
        }

    def describe(self) -> str:
        """One line for ``lnn-ros info``."""
        formats = ", ".join(self.formats) if self.formats else "none"
        return (
            f"any size; Image {', '.join(self.encodings)}; CompressedImage {formats}; {self.crop} crop; "
            f"area averaging down / bilinear up; at most {self.max_pixels} pixels"
        )
