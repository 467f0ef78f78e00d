"""``manifest.yaml``: what a bundle holds and how the runtime must feed it.

The format is documented in ``docs/bundle.md``. Every field is checked when a manifest is
read: unknown keys are errors (with "did you mean"), numbers must be finite float32 values
and standard deviations at least :data:`MIN_STD`; an error names the field (``outputs[2].max``)
and the bad value.

Graph contract (checked against the ONNX files by :mod:`lnn_ros.bundle.store`):

* ``step``:    ``x`` [B, F], ``hidden`` [B, H], ``dt`` [B, 1] -> ``y`` [B, O], ``hidden_out`` [B, H]
* ``window``:  ``x`` [B, T, F], ``hidden`` [B, H], ``dt`` [B, T, 1] -> ``y`` [B, T, O], ``hidden_out`` [B, H]
* ``encoder``: ``image`` [B, C, height, width] -> ``embedding`` [B, E]   (camera models only)

All tensors are float32, ``dt`` in seconds. Raw features are normalised by the runtime as
``(raw - mean) / std`` before they enter ``x``; camera pixels as ``(pixel / 255 - mean) / std``
per channel, in the channel order of ``camera.encoding``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lnn_ros.bundle.errors import ManifestError as ManifestError  # re-exported: older imports use this module
from lnn_ros.bundle.preprocess import Preprocess

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)  # 1: no camera preprocess (frames must be the encoder's size)
MANIFEST_NAME = "manifest.yaml"

FEATURE_SOURCES = ("vector", "imu", "camera")
IMU_FIELDS = tuple(
    f"{group}.{axis}"
    for group, axes in (
        ("angular_velocity", "xyz"),
        ("linear_acceleration", "xyz"),
        ("orientation", "xyzw"),
    )
    for axis in axes
)
TWIST_FIELDS = tuple(f"{group}.{axis}" for group in ("linear", "angular") for axis in "xyz")
GRAPH_ROLES = ("step", "window", "encoder")
TOP_LEVEL_KEYS = (
    "schema_version", "name", "description", "model", "graphs", "inputs", "outputs", "dt", "opset", "producer", "files",
)
IMAGE_ENCODINGS = {"rgb8": 3, "bgr8": 3, "mono8": 1}
MAX_OPSET = 17
# A standard deviation below this makes 1/std amplify float32 rounding noise into huge inputs
# (``std: 1e-45`` rounds to 0 in float32 and every input becomes Inf): almost surely a bug.
MIN_STD = 1e-6
FLOAT32_MAX = 3.4028234663852886e38
MAX_SIZE = 1 << 20  # upper bound of every size and count in the manifest
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _fail(path: str, message: str) -> ManifestError:
    return ManifestError(f"{MANIFEST_NAME}: field {path!r} {message}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_keys(data: Any, path: str, allowed: Iterable[str]) -> None:
    """Every key of the mapping ``data`` must be one of ``allowed`` (a typo is an error, not a default)."""
    if not isinstance(data, dict):
        raise _fail(path, f"must be a mapping, got {_short(data)}.")
    names = sorted(allowed)
    for key in data:
        if not isinstance(key, str):
            raise _fail(path, f"has the key {key!r}, which is not a name; allowed keys are {names}.")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys are {names}."
            raise _fail(_join(path, key), f"is not a known field; {hint}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _get(data: dict[str, Any], key: str, path: str, default: Any = ...) -> Any:
    if not isinstance(data, dict):
        raise _fail(path, f"must be a mapping, got {_short(data)}.")
    if key in data:
        return data[key]
    if default is ...:
        raise _fail(f"{path}.{key}" if path else key, "is missing.")
    return default


def _number(value: Any, path: str, *, positive: bool = False, minimum: float | None = None) -> float:
    """A finite number that float32 (the graphs' type) can hold; ``minimum`` is inclusive."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, f"must be a finite number, got {_short(value)}.")
    number = float(value)
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise _fail(path, f"must be a finite number (float32), got {_short(value)}.")
    if positive and number <= 0:
        raise _fail(path, f"must be > 0, got {value!r}.")
    if minimum is not None and number < minimum:
        raise _fail(path, f"must be >= {minimum:g}, got {value!r}.")
    return number


def _std(value: Any, path: str) -> float:
    number = _number(value, path, positive=True)
    if number < MIN_STD:
        raise _fail(
            path,
            f"is {value!r}, below {MIN_STD:g}: dividing by it turns float32 rounding noise into huge (or infinite) "
            "inputs. A feature that never varies needs std 1.",
        )
    return number


def _integer(value: Any, path: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_SIZE:
        raise _fail(path, f"must be an integer in [{minimum}, {MAX_SIZE}], got {_short(value)}.")
    return value


def _string(value: Any, path: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, f"must be a non-empty string, got {_short(value)}.")
    if choices is not None and value not in choices:
        raise _fail(path, f"must be one of {list(choices)}, got {_short(value)}.")
    return value


def _bundle_file(value: Any, path: str) -> str:
    """A file name relative to the bundle folder: ``step.onnx`` or ``graphs/step.onnx``, never outside it."""
    name = _string(value, path)
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or re.match(r"[A-Za-z]:", name):
        raise _fail(path, f"is {name!r}: a graph must be named relative to the bundle folder (no absolute path).")
    if any(part in ("", ".", "..") for part in parts) or any(ord(c) < 0x20 for c in name):
        raise _fail(path, f"is {name!r}: a graph must be a file inside the bundle folder (no '..', '.', empty parts or control characters).")
    return name


def _text(value: Any, path: str) -> str:
    """Free text (may be empty)."""
    if not isinstance(value, str):
        raise _fail(path, f"must be text, got {_short(value)}.")
    return value


def _scalar_text(value: Any, path: str) -> str:
    """A version string or hash: text or a plain number (``1.16``), kept as text."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _fail(path, f"must be text, got {_short(value)}.")
    return str(value)


@dataclass(frozen=True)
class ModelSpec:
    """What network is inside: kind, sizes and the cell config that rebuilds it in torch."""

    kind: str
    input_size: int
    state_size: int
    output_size: int
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, path: str = "model") -> ModelSpec:
        _check_keys(data, path, ("kind", "input_size", "state_size", "output_size", "config"))
        config = _get(data, "config", path, {})
        if not isinstance(config, dict):
            raise _fail(f"{path}.config", f"must be a mapping, got {config!r}.")
        return cls(
            kind=_string(_get(data, "kind", path), f"{path}.kind"),
            input_size=_integer(_get(data, "input_size", path), f"{path}.input_size", minimum=1),
            state_size=_integer(_get(data, "state_size", path), f"{path}.state_size", minimum=1),
            output_size=_integer(_get(data, "output_size", path), f"{path}.output_size", minimum=1),
            config=config,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "input_size": self.input_size,
            "state_size": self.state_size,
            "output_size": self.output_size,
            "config": self.config,
        }


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX file of the bundle. ``steps`` is the unrolled length T of a window graph."""

    file: str
    steps: int | None = None

    @classmethod
    def from_dict(cls, data: Any, path: str) -> GraphSpec:
        _check_keys(data, path, ("file", "steps"))
        steps = _get(data, "steps", path, None)
        return cls(
            file=_bundle_file(_get(data, "file", path), f"{path}.file"),
            steps=None if steps is None else _integer(steps, f"{path}.steps", minimum=1),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file}
        if self.steps is not None:
            out["steps"] = self.steps
        return out


@dataclass(frozen=True)
class FeatureSpec:
    """One element of the step graph's ``x``, in order.

    ``source`` is ``vector`` (element ``index`` of a caller-supplied vector), ``imu``
    (``field`` of sensor_msgs/Imu, e.g. ``angular_velocity.x``) or ``camera`` (element
    ``index`` of the encoder's embedding).
    """

    name: str
    source: str
    mean: float = 0.0
    std: float = 1.0
    index: int | None = None
    field: str | None = None
    unit: str = ""

    @classmethod
    def from_dict(cls, data: Any, path: str) -> FeatureSpec:
        _check_keys(data, path, ("name", "source", "field", "index", "unit", "mean", "std"))
        source = _string(_get(data, "source", path), f"{path}.source", FEATURE_SOURCES)
        index = _get(data, "index", path, None)
        field_name = _get(data, "field", path, None)
        if source == "imu":
            field_name = _string(field_name, f"{path}.field", IMU_FIELDS)
            if index is not None:
                raise _fail(f"{path}.index", "is for 'vector' and 'camera' features; an imu feature names its 'field'.")
        else:
            index = _integer(index, f"{path}.index")
            if field_name is not None:
                raise _fail(f"{path}.field", f"is for 'imu' features; a {source} feature names its 'index'.")
        return cls(
            name=_string(_get(data, "name", path), f"{path}.name"),
            source=source,
            mean=_number(_get(data, "mean", path, 0.0), f"{path}.mean"),
            std=_std(_get(data, "std", path, 1.0), f"{path}.std"),
            index=index,
            field=field_name,
            unit=_text(_get(data, "unit", path, ""), f"{path}.unit"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "source": self.source}
        if self.field is not None:
            out["field"] = self.field
        if self.index is not None:
            out["index"] = self.index
        if self.unit:
            out["unit"] = self.unit
        out["mean"] = self.mean
        out["std"] = self.std
        return out


@dataclass(frozen=True)
class CameraSpec:
    """How sensor_msgs/Image frames become the encoder's ``image`` input."""

    width: int
    height: int
    encoding: str
    embedding_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    accepted_encodings: tuple[str, ...] = ("rgb8", "bgr8", "mono8")
    preprocess: Preprocess | None = None  # schema 2: any size / encoding / CompressedImage (bundle.preprocess)

    @property
    def channels(self) -> int:
        return IMAGE_ENCODINGS[self.encoding]

    @classmethod
    def from_dict(cls, data: Any, path: str = "camera") -> CameraSpec:
        _check_keys(
            data, path, ("width", "height", "encoding", "accepted_encodings", "embedding_size", "mean", "std", "preprocess")
        )
        encoding = _string(_get(data, "encoding", path), f"{path}.encoding", tuple(IMAGE_ENCODINGS))
        channels = IMAGE_ENCODINGS[encoding]
        stats: dict[str, tuple[float, ...]] = {}
        for key in ("mean", "std"):
            values = _get(data, key, path)
            if not isinstance(values, list) or len(values) != channels:
                raise _fail(f"{path}.{key}", f"must list {channels} numbers (one per channel of {encoding}), got {_short(values)}.")
            stats[key] = tuple(
                (_std if key == "std" else _number)(v, f"{path}.{key}[{i}]") for i, v in enumerate(values)
            )
        preprocess = _get(data, "preprocess", path, None)
        accepted = _get(data, "accepted_encodings", path, list(IMAGE_ENCODINGS))
        if not isinstance(accepted, list) or not accepted:
            raise _fail(f"{path}.accepted_encodings", f"must be a non-empty list, got {_short(accepted)}.")
        return cls(
            width=_integer(_get(data, "width", path), f"{path}.width", minimum=1),
            height=_integer(_get(data, "height", path), f"{path}.height", minimum=1),
            encoding=encoding,
            embedding_size=_integer(_get(data, "embedding_size", path), f"{path}.embedding_size", minimum=1),
            mean=stats["mean"],
            std=stats["std"],
            accepted_encodings=tuple(
                _string(e, f"{path}.accepted_encodings[{i}]", tuple(IMAGE_ENCODINGS)) for i, e in enumerate(accepted)
            ),
            preprocess=None if preprocess is None else Preprocess.from_dict(preprocess, f"{path}.preprocess"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "encoding": self.encoding,
            "accepted_encodings": list(self.accepted_encodings),
            "embedding_size": self.embedding_size,
            "mean": list(self.mean),
            "std": list(self.std),
            **({} if self.preprocess is None else {"preprocess": self.preprocess.to_dict()}),
        }


@dataclass(frozen=True)
class OutputSpec:
    """One element of ``y``: its name, unit, safe limits and (optionally) its Twist field."""

    name: str
    unit: str
    min: float
    max: float
    twist_field: str | None = None

    @classmethod
    def from_dict(cls, data: Any, path: str) -> OutputSpec:
        _check_keys(data, path, ("name", "unit", "min", "max", "twist_field"))
        twist = _get(data, "twist_field", path, None)
        spec = cls(
            name=_string(_get(data, "name", path), f"{path}.name"),
            unit=_text(_get(data, "unit", path, ""), f"{path}.unit"),
            min=_number(_get(data, "min", path), f"{path}.min"),
            max=_number(_get(data, "max", path), f"{path}.max"),
            twist_field=None if twist is None else _string(twist, f"{path}.twist_field", TWIST_FIELDS),
        )
        if spec.min > spec.max:
            raise _fail(path, f"has min {spec.min!r} above max {spec.max!r}.")
        if spec.min == spec.max:
            raise _fail(path, f"has min equal to max ({spec.max!r}); the limits must leave a range.")
        return spec

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "unit": self.unit, "min": self.min, "max": self.max}
        if self.twist_field is not None:
            out["twist_field"] = self.twist_field
        return out


@dataclass(frozen=True)
class DtLimits:
    """Δt handling, in seconds.

    ``min_s``/``max_s`` is the range the model was trained on: a positive Δt above ``max_s``
    is clamped to ``max_s``. A gap above ``max_gap_s`` resets the state instead.
    """

    min_s: float = 1e-4
    max_s: float = 1.0
    max_gap_s: float = 1.0

    @classmethod
    def from_dict(cls, data: Any, path: str = "dt") -> DtLimits:
        _check_keys(data, path, ("unit", "min_s", "max_s", "max_gap_s"))
        unit = _get(data, "unit", path, "s")
        if unit != "s":
            raise _fail(f"{path}.unit", f"must be 's' (seconds), got {_short(unit)}.")
        limits = cls(
            min_s=_number(_get(data, "min_s", path), f"{path}.min_s", positive=True),
            max_s=_number(_get(data, "max_s", path), f"{path}.max_s", positive=True),
            max_gap_s=_number(_get(data, "max_gap_s", path), f"{path}.max_gap_s", positive=True),
        )
        if not limits.min_s <= limits.max_s <= limits.max_gap_s:
            raise _fail(path, f"must satisfy min_s <= max_s <= max_gap_s, got {limits!r}.")
        return limits

    def to_dict(self) -> dict[str, Any]:
        return {"unit": "s", "min_s": self.min_s, "max_s": self.max_s, "max_gap_s": self.max_gap_s}


@dataclass(frozen=True)
class Manifest:
    """The parsed, validated ``manifest.yaml`` of a bundle."""

    name: str
    model: ModelSpec
    graphs: dict[str, GraphSpec]
    features: tuple[FeatureSpec, ...]
    outputs: tuple[OutputSpec, ...]
    dt: DtLimits
    camera: CameraSpec | None = None
    opset: int = 17
    description: str = ""
    producer: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.validate()

    @property
    def uses_imu(self) -> bool:
        return any(f.source == "imu" for f in self.features)

    @property
    def uses_camera(self) -> bool:
        return self.camera is not None

    @property
    def vector_size(self) -> int:
        """Length of the caller-supplied vector that ``vector`` features index into."""
        indices = [f.index for f in self.features if f.source == "vector" and f.index is not None]
        return max(indices) + 1 if indices else 0

    def validate(self) -> None:
        """Check the cross-field rules; raises :class:`ManifestError` naming the field."""
        if self.schema_version not in READABLE_SCHEMA_VERSIONS:
            raise _fail(
                "schema_version",
                f"is {self.schema_version!r}; this lnn_ros reads {list(READABLE_SCHEMA_VERSIONS)}. Re-export the bundle.",
            )
        if self.schema_version < 2 and self.camera is not None and self.camera.preprocess is not None:
            raise _fail("inputs.camera.preprocess", "needs schema_version 2; schema 1 bundles take encoder-size frames only.")
        if self.opset != MAX_OPSET:
            raise _fail("opset", f"must be {MAX_OPSET} (the onboard targets run opset {MAX_OPSET}), got {self.opset!r}.")
        if "step" not in self.graphs:
            raise _fail("graphs.step", "is missing: every bundle needs a step graph.")
        for role in self.graphs:
            if role not in GRAPH_ROLES:
                raise _fail(f"graphs.{role}", f"is not a known graph role; use one of {list(GRAPH_ROLES)}.")
        window = self.graphs.get("window")
        if window is not None and window.steps is None:
            raise _fail("graphs.window.steps", "is missing: a window graph needs its unrolled length.")
        if len(self.features) != self.model.input_size:
            raise _fail("features", f"lists {len(self.features)} features but model.input_size is {self.model.input_size}.")
        if len(self.outputs) != self.model.output_size:
            raise _fail("outputs", f"lists {len(self.outputs)} outputs but model.output_size is {self.model.output_size}.")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise _fail("features", f"has duplicate names: {sorted({n for n in names if names.count(n) > 1})!r}.")
        camera_indices = sorted(f.index for f in self.features if f.source == "camera" and f.index is not None)
        if self.camera is None:
            if camera_indices:
                raise _fail("camera", "is missing but some features have source 'camera'.")
            if "encoder" in self.graphs:
                raise _fail("camera", "is missing but graphs.encoder is present.")
        else:
            if "encoder" not in self.graphs:
                raise _fail("graphs.encoder", "is missing but the manifest has a camera section.")
            if camera_indices != list(range(self.camera.embedding_size)):
                raise _fail(
                    "features",
                    f"must use every camera embedding index 0..{self.camera.embedding_size - 1} once, got {camera_indices!r}.",
                )
        vector_indices = sorted(f.index for f in self.features if f.source == "vector" and f.index is not None)
        if vector_indices != list(range(len(vector_indices))):
            raise _fail("features", f"vector indices must be 0..N-1 each once, got {vector_indices!r}.")
        twist = [o.twist_field for o in self.outputs if o.twist_field is not None]
        if len(set(twist)) != len(twist):
            raise _fail("outputs", f"map two outputs to the same twist field: {twist!r}.")
        if self.files:  # empty while a manifest is being built; write_manifest fills it
            graph_files = {spec.file for spec in self.graphs.values()}
            for name, digest in self.files.items():
                if name not in graph_files:
                    raise _fail(f"files.{name}", f"names a file no graph uses; the graphs are {sorted(graph_files)}.")
                if not SHA256_HEX.fullmatch(digest):
                    raise _fail(f"files.{name}", f"must be a SHA-256 as 64 lowercase hex digits, got {_short(digest)}.")
            for role, spec in self.graphs.items():
                if spec.file not in self.files:
                    raise _fail("files", f"has no SHA-256 for graph {role!r} file {spec.file!r}.")

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        if not isinstance(data, dict):
            raise ManifestError(f"{MANIFEST_NAME}: must be a YAML mapping, got {type(data).__name__}.")
        _check_keys(data, "", TOP_LEVEL_KEYS)
        schema_version = _integer(_get(data, "schema_version", ""), "schema_version", minimum=1)
        if schema_version not in READABLE_SCHEMA_VERSIONS:  # before anything else: another version has other fields
            raise _fail(
                "schema_version",
                f"is {schema_version!r}; this lnn_ros reads {list(READABLE_SCHEMA_VERSIONS)}. Re-export the bundle.",
            )
        graphs_raw = _get(data, "graphs", "")
        if not isinstance(graphs_raw, dict):
            raise _fail("graphs", f"must be a mapping of role -> {{file: ...}}, got {_short(graphs_raw)}.")
        _check_keys(graphs_raw, "graphs", GRAPH_ROLES)
        inputs = _get(data, "inputs", "")
        _check_keys(inputs, "inputs", ("features", "camera"))
        features_raw = _get(inputs, "features", "inputs")
        if not isinstance(features_raw, list):
            raise _fail("inputs.features", f"must be a list, got {_short(features_raw)}.")
        outputs_raw = _get(data, "outputs", "")
        if not isinstance(outputs_raw, list):
            raise _fail("outputs", f"must be a list, got {_short(outputs_raw)}.")
        camera_raw = _get(inputs, "camera", "inputs", None)
        files = _get(data, "files", "", {})
        producer = _get(data, "producer", "", {})
        for key, mapping in (("files", files), ("producer", producer)):
            if not isinstance(mapping, dict) or not all(isinstance(k, str) for k in mapping):
                raise _fail(key, f"must be a mapping of names to text, got {_short(mapping)}.")
        return cls(
            schema_version=schema_version,
            name=_string(_get(data, "name", ""), "name"),
            description=_text(_get(data, "description", "", ""), "description"),
            model=ModelSpec.from_dict(_get(data, "model", "")),
            graphs={str(role): GraphSpec.from_dict(spec, f"graphs.{role}") for role, spec in graphs_raw.items()},
            features=tuple(FeatureSpec.from_dict(f, f"inputs.features[{i}]") for i, f in enumerate(features_raw)),
            camera=None if camera_raw is None else CameraSpec.from_dict(camera_raw, "inputs.camera"),
            outputs=tuple(OutputSpec.from_dict(o, f"outputs[{i}]") for i, o in enumerate(outputs_raw)),
            dt=DtLimits.from_dict(_get(data, "dt", "")),
            opset=_integer(_get(data, "opset", ""), "opset", minimum=1),
            producer={k: _scalar_text(v, f"producer.{k}") for k, v in producer.items()},
            files={k: _scalar_text(v, f"files.{k}") for k, v in files.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        inputs: dict[str, Any] = {"features": [f.to_dict() for f in self.features]}
        if self.camera is not None:
            inputs["camera"] = self.camera.to_dict()
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "description": self.description,
            "model": self.model.to_dict(),
            "graphs": {role: spec.to_dict() for role, spec in self.graphs.items()},
            "inputs": inputs,
            "outputs": [o.to_dict() for o in self.outputs],
            "dt": self.dt.to_dict(),
            "opset": self.opset,
            "producer": {str(k): str(v) for k, v in self.producer.items()},
            "files": dict(self.files),
        }
