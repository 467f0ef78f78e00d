"""Reading ``manifest.yaml`` as untrusted input.

The manifest is plain data, so everything YAML offers beyond plain data is refused before a
single value is built: anchors and aliases (an alias bomb expands to gigabytes), tags
(``!!python/...``, ``!!binary``, ``!!set``), merge keys (``<<``) and duplicate keys (PyYAML
silently keeps the last one). The text must be UTF-8, at most :data:`MAX_BYTES` long and
nest at most :data:`MAX_DEPTH` collections deep (deeper input would exhaust Python's stack).
Every problem is one :class:`~lnn_ros.bundle.errors.ManifestError` naming the line.

Composition runs in Python, where those checks live (PyYAML's C loader composes in C, where
aliases and depth cannot be refused before they expand). Scanning and parsing use libyaml's C
parser when PyYAML has it (about 4x faster than the pure-Python one, which is the fallback).
"""

from __future__ import annotations

from typing import Any, cast

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent, Event, NodeEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import Resolver

from lnn_ros.bundle.errors import ManifestError

MAX_BYTES = 1 << 20  # a manifest is a few kB; a 256-unit NCP wiring in model.config makes ~400 kB
MAX_DEPTH = 32  # the schema nests 4 levels; a cell config a few more
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOMS = {
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def _line(event_or_node: Event | Node) -> int:
    mark = event_or_node.start_mark
    return 0 if mark is None else int(mark.line) + 1


class _Refused(Exception):
    """Raised inside the loader; turned into a ManifestError with the file's name."""


def _base_loader() -> type[Any]:
    """libyaml's event parser with PyYAML's Python composer, constructor and resolver; else ``SafeLoader``."""
    try:
        from yaml._yaml import CParser
    except ImportError:  # PyYAML built without libyaml
        return yaml.SafeLoader

    class _CParserPythonComposer(CParser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self.anchors: dict[Any, Node] = {}

        # CParser composes in C; these put PyYAML's Python composer (and our checks) back in charge.
        get_single_node = Composer.get_single_node
        check_node = Composer.check_node
        get_node = Composer.get_node
        compose_document = Composer.compose_document
        compose_node = Composer.compose_node
        compose_scalar_node = Composer.compose_scalar_node
        compose_sequence_node = Composer.compose_sequence_node
        compose_mapping_node = Composer.compose_mapping_node

    return _CParserPythonComposer


class _StrictChecks:
    """Mixed in before a safe loader: refuses anchors, aliases, tags, merge keys, duplicate keys
    and deep nesting while nodes are composed, before any value is built."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Event = cast(Any, self).peek_event()  # the parser's, mixed in below
        if isinstance(event, AliasEvent):
            raise _Refused(
                f"line {_line(event)}: uses the alias '*{event.anchor}'; anchors and aliases are not allowed "
                "(write the value out)."
            )
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise _Refused(
                f"line {_line(event)}: defines the anchor '&{event.anchor}'; anchors and aliases are not allowed "
                "(write the value out)."
            )
        if isinstance(event, (ScalarEvent, CollectionStartEvent)) and event.tag is not None:
            raise _Refused(f"line {_line(event)}: uses the tag {event.tag!r}; tags are not allowed (plain values only).")
        if not isinstance(event, CollectionStartEvent):
            scalar: Node | None = cast(Any, super()).compose_node(parent, index)
            return scalar
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"line {_line(event)}: nests deeper than {MAX_DEPTH} levels; a manifest needs far fewer.")
        try:
            collection: Node | None = cast(Any, super()).compose_node(parent, index)
            return collection
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):  # the same check SafeConstructor makes, with our message
            raise _Refused(f"line {_line(node)}: expected a mapping.")
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                raise _Refused(f"line {_line(key_node)}: uses a merge key '<<'; it is not allowed (write the keys out).")
            if not isinstance(key_node, ScalarNode):
                raise _Refused(f"line {_line(key_node)}: has a key that is a list or mapping; keys must be names.")
            key = cast(Any, self).construct_object(key_node, deep=True)
            if key in seen:
                raise _Refused(
                    f"line {_line(key_node)}: repeats the key {key!r} of line {seen[key]} in the same mapping "
                    "(YAML would silently keep the last value); remove one."
                )
            seen[key] = _line(key_node)
        mapping: dict[Any, Any] = cast(Any, super()).construct_mapping(node, deep=deep)
        return mapping


class _StrictLoader(_StrictChecks, _base_loader()):  # type: ignore[misc]
    """The loader used: libyaml's parser when available."""


class PurePythonStrictLoader(_StrictChecks, yaml.SafeLoader):
    """The loader used without libyaml (tested directly, since CI has libyaml)."""


def decode_text(data: bytes, name: str) -> str:
    """``data`` as text, or a ManifestError saying why it is not UTF-8."""
    for bom, encoding in _BOMS.items():
        if data.startswith(bom):
            raise ManifestError(f"{name}: is {encoding} text (it starts with a {encoding} byte-order mark); save it as UTF-8.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ManifestError(
            f"{name}: is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}) "
            f"is not valid UTF-8 ({exc.reason}); save the file as UTF-8."
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise ManifestError(
            f"{name}: holds a NUL byte at offset {nul}; it is not UTF-8 text (UTF-16 without a byte-order mark?). "
            "Save it as UTF-8."
        )
    return text[1:] if text.startswith("\ufeff") else text


def load_strict_yaml(data: bytes, name: str, loader_class: type[Any] | None = None) -> Any:
    """Parse ``data`` (the bytes of one YAML document) with the rules of the module docstring.

    Raises:
        ManifestError: naming ``name``, the line and the rule broken.
    """
    if len(data) > MAX_BYTES:
        raise ManifestError(
            f"{name}: is {len(data)} bytes; a manifest may be at most {MAX_BYTES} bytes (it is a few kB when exported)."
        )
    text = decode_text(data, name)
    try:
        loader = cast(Any, loader_class or _StrictLoader)(text)
    except yaml.YAMLError as exc:  # the reader refuses non-printable characters here
        raise ManifestError(f"{name}: is not valid YAML ({' '.join(str(exc).split())}).") from None
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise ManifestError(f"{name}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{name}: is not valid YAML ({' '.join(str(exc).split())}).") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a plain value YAML resolves but cannot build (2001-13-45)
        raise ManifestError(f"{name}: has a value that cannot be read ({type(exc).__name__}: {exc}).") from None
    finally:
        if hasattr(loader, "dispose"):
            loader.dispose()
