"""Opening a bag of any recorder, parsing message definitions only for the topics that are read.

rosbags' ``AnyReader`` parses the stored definition of every connection when it opens a bag,
so one definition it cannot parse stops the whole bag from opening, ``bag-info`` included:
rosbag2 (Jazzy and later) stores the raw ``.srv`` text as the definition of a service-event
topic (ros2/rosbag2#2365), and a custom message may use syntax rosbags lacks. ``BagSource``
opens the storage with rosbags' per-format readers (``rosbags.rosbag2.Reader``,
``rosbags.rosbag1.Reader``), which only index, and parses a definition when a topic of that
type is decoded (:meth:`BagSource.types_for`). It offers the part of ``AnyReader``'s interface
that lnn_ros uses (``connections``, ``topics``, ``messages``, ``typestore``, times, counts).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lnn_ros.bag.errors import BagError

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.typesys.store import Typestore

_IDL_SEPARATOR = "=" * 80 + "\n"


def parse_definition(connection: Connection) -> dict[str, Any]:
    """The types defined by ``connection``'s stored definition (empty if it stores none).

    Raises:
        Exception: rosbags' parse error, for the caller to name the topic.
    """
    from rosbags.interfaces import MessageDefinitionFormat
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

    msgdef = connection.msgdef
    if msgdef.format == MessageDefinitionFormat.NONE:
        return {}
    if msgdef.format == MessageDefinitionFormat.MSG:
        return dict(get_types_from_msg(msgdef.data, connection.msgtype))
    types: dict[str, Any] = {}
    if msgdef.data.startswith(f"{_IDL_SEPARATOR}IDL: "):  # several IDL files, as rosbag2 concatenates them
        for part in msgdef.data.split(_IDL_SEPARATOR)[1:]:
            types.update(get_types_from_idl(part.split("\n", 1)[1]))
    else:
        types.update(get_types_from_idl(msgdef.data))
    return types


class BagSource:
    """One bag (rosbag2 folder or storage file, or ROS 1 ``.bag``), definitions parsed on demand.

    Raises:
        BagError: (from :meth:`open`) the storage cannot be opened, with rosbags' reason.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is2 = path.suffix != ".bag"
        self._reader: Any = None
        self._typestore: Typestore | None = None

    def open(self) -> BagSource:
        from rosbags.rosbag1 import Reader as Reader1
        from rosbags.rosbag2 import Reader as Reader2

        reader = Reader2(self.path) if self.is2 else Reader1(self.path)
        reader.open()
        self._reader = reader
        return self

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    @property
    def reader(self) -> Any:
        if self._reader is None:
            raise BagError(f"Bag {str(self.path)!r} is not open.")
        return self._reader

    @property
    def connections(self) -> list[Connection]:
        return list(self.reader.connections)

    @property
    def topics(self) -> dict[str, Any]:
        """Topic name -> rosbags ``TopicInfo`` (``msgtype``, ``msgcount``, ``connections``)."""
        return dict(self.reader.topics)

    @property
    def message_count(self) -> int:
        return int(self.reader.message_count)

    @property
    def start_time(self) -> int:
        return int(self.reader.start_time)

    @property
    def end_time(self) -> int:
        return int(self.reader.end_time)

    def messages(
        self, connections: Iterable[Connection] = (), start: int | None = None, stop: int | None = None
    ) -> Iterator[tuple[Connection, int, bytes]]:
        """Raw messages of ``connections`` (all when empty) in log-time order."""
        result: Iterator[tuple[Connection, int, bytes]] = self.reader.messages(
            connections=list(connections), start=start, stop=stop
        )
        return result

    def types_for(self, connections: Sequence[Connection]) -> Typestore:
        """A type store with the stored definitions of ``connections`` (and the types they use).

        Raises:
            BagError: a definition cannot be parsed, naming the topic.
        """
        from rosbags.typesys import Stores, get_typestore

        types: dict[str, Any] = {}
        for connection in connections:
            try:
                types.update(parse_definition(connection))
            except Exception as exc:  # rosbags' TypesysError and parser errors
                text = " ".join(str(exc).split())
                raise BagError(
                    f"Topic {connection.topic!r} in bag {str(self.path)!r}: the stored definition of its type "
                    f"{connection.msgtype!r} cannot be parsed ({type(exc).__name__}: {text[:300]}). The bag is damaged "
                    "or was written with a definition rosbags does not understand."
                ) from None
        store = get_typestore(Stores.EMPTY)
        try:
            store.register(types)
        except Exception as exc:
            raise BagError(
                f"Bag {str(self.path)!r}: the stored definitions of {sorted({c.topic for c in connections})} are "
                f"inconsistent ({type(exc).__name__}: {exc})."
            ) from None
        return store

    @property
    def typestore(self) -> Typestore:
        """Every stored definition, parsed on first use (``AnyReader.typestore``; ``play`` of ROS 1 bags)."""
        if self._typestore is None:
            self._typestore = self.types_for(self.connections)
        return self._typestore
