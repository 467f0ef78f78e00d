"""rosbags' raw message iterator for mcap storage, with a faster parse of each chunk.

rosbags reads an mcap chunk record by record through ``BytesIO`` reads (about 3.5 µs per
message). :func:`raw_messages` yields exactly what ``rosbags.rosbag2.Reader.messages`` yields, in
the same order and with the same errors at the same points: it follows rosbags' own structure
(storages one after another, chunks merged with ``heapq.merge`` on the same ``Msg`` tuples,
messages sorted by log time within a chunk) and only replaces the loop over a chunk's records
by ``struct.unpack_from`` on the decompressed bytes. A chunk whose records are anything but
well formed is handed to rosbags' own chunk reader, which raises its error as it always does.
Anything it does not recognise (another storage, compressed messages, an unindexed file,
another rosbags layout) returns None: the caller uses rosbags.
"""

from __future__ import annotations

import heapq
import itertools
import operator
import struct
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rosbags.interfaces import Connection

_HEAD = struct.Struct("<BQ")  # opcode, record length
_FULL = struct.Struct("<BQHIQQ")  # a message record's opcode, length, channel id, sequence, log time, publish time
_MESSAGE_OP = 0x05


def raw_messages(reader: Any, connections: Collection[Connection]) -> Iterator[tuple[Connection, int, bytes]] | None:
    """``reader.messages(connections)`` of an open ``rosbags.rosbag2.Reader``, faster; None if not applicable."""
    try:
        from rosbags.rosbag2 import reader as reader_module
        from rosbags.rosbag2 import storage_mcap
    except ImportError:
        return None
    needed = ("McapReader", "msgsrc", "Msg", "decompress", "read_exact", "deserialize_uint32")
    if not all(hasattr(storage_mcap, name) for name in needed) or not hasattr(reader_module, "DirectoryReader"):
        return None
    storage = getattr(reader, "storage", None)
    chosen = list(connections) or list(getattr(storage, "connections", []))
    if isinstance(storage, storage_mcap.McapReader):
        if not _indexed(storage):
            return None
        return _storage_messages(storage, chosen, None)
    if not isinstance(storage, reader_module.DirectoryReader):
        return None
    storages = getattr(storage, "storages", None)
    metadata = getattr(storage, "metadata", None)
    if not storages or metadata is None or getattr(metadata, "compression_mode", "") == "message":
        return None
    if not all(isinstance(s, storage_mcap.McapReader) and _indexed(s) for s in storages):
        return None
    return _directory_messages(storages, chosen)


def raw_message_lists(
    reader: Any, connections: Collection[Connection]
) -> Iterator[list[tuple[Connection, int, bytes]]] | None:
    """:func:`raw_messages` a chunk at a time, when that is the same: every storage's chunks follow
    one another in time without overlap, so rosbags' merge yields them chunk after chunk and reads
    each chunk only once the one before is used up. None if not applicable (or not so)."""
    if raw_messages(reader, connections) is None:
        return None
    from rosbags.rosbag2 import reader as reader_module

    storage = reader.storage
    directory = isinstance(storage, reader_module.DirectoryReader)
    chosen = list(connections) or list(storage.connections)
    plans = []
    for part in storage.storages if directory else [storage]:
        connmap = _connmap(part, chosen) if directory else None
        storage_conns = [x for x in part.connections if x.id in connmap] if connmap is not None else chosen
        if not storage_conns:
            continue
        channel_map = {conn.id: conn for conn in storage_conns}
        chunks = sorted((c for c in part.chunks if any(c.channel_count.get(cid, 0) for cid in channel_map)),
                        key=lambda c: c.message_start_time)
        if any(a.message_end_time >= b.message_start_time for a, b in itertools.pairwise(chunks)):
            return None
        plans.append((part, channel_map, connmap, chunks))
    return _lists(plans)


def _lists(plans: list[tuple[Any, dict[int, Connection], dict[int, Connection] | None, list[Any]]]
           ) -> Iterator[list[tuple[Connection, int, bytes]]]:
    for storage, channel_map, connmap, chunks in plans:
        for chunk in chunks:
            start, stop = chunk.message_start_time, chunk.message_end_time + 1
            # the reader's connections straight away (rosbags maps a directory's storage connections)
            readers = channel_map if connmap is None else {cid: connmap[cid] for cid in channel_map}
            found: list[Any] | None
            try:
                found = _parse_chunk(chunk, readers, start, stop, storage.bio, merged=False)
            except Exception:  # anything odd: rosbags reads the chunk again and raises as it would
                found = None
            if found is None:
                from rosbags.rosbag2 import storage_mcap

                messages: Iterator[Any] = itertools.islice(storage_mcap.msgsrc(chunk, channel_map, start, stop, storage.bio), 1, None)
                mapped = channel_map if connmap is None else connmap
                yield [(mapped[connection.id], timestamp, data) for timestamp, _, connection, data in messages]
            else:
                found.sort(key=_SECOND)  # stable: as rosbags sorts by log time
                yield found


def _connmap(storage: Any, connections: list[Connection]) -> dict[int, Connection]:
    """``DirectoryReader.messages``' map from a storage's connections to the reader's."""
    return {
        x.id: conn
        for x in storage.connections
        if (
            conn := next(
                (
                    y
                    for y in connections
                    if y.topic == x.topic
                    and y.msgtype == x.msgtype
                    and y.ext == x.ext
                    and (not x.digest or not y.digest or y.digest == x.digest)
                ),
                None,
            )
        )
        is not None
    }


def _indexed(storage: Any) -> bool:
    return bool(getattr(storage, "chunks", None)) and getattr(storage, "bio", None) is not None


def _directory_messages(storages: list[Any], connections: list[Connection]) -> Iterator[tuple[Connection, int, bytes]]:
    """``DirectoryReader.messages``: each storage in turn, its connections mapped to the reader's."""
    for storage in storages:
        connmap = _connmap(storage, connections)
        storage_conns = [x for x in storage.connections if x.id in connmap]
        if not storage_conns:
            continue
        yield from _storage_messages(storage, storage_conns, connmap)


def _storage_messages(
    storage: Any, connections: list[Connection], connmap: dict[int, Connection] | None
) -> Iterator[tuple[Connection, int, bytes]]:
    """``McapReader.messages`` of an indexed file (no start or stop)."""
    channel_map = {conn.id: conn for conn in connections}
    chunks = [
        _chunk_messages(chunk, channel_map, chunk.message_start_time, chunk.message_end_time + 1, storage.bio)
        for chunk in storage.chunks
        if any(chunk.channel_count.get(cid, 0) for cid in channel_map)
    ]
    for timestamp, offset, connection, data in heapq.merge(*chunks):
        if not offset:
            continue
        yield (connection if connmap is None else connmap[connection.id]), timestamp, data


_log_time = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)


def _chunk_messages(chunk: Any, channel_map: dict[int, Connection], start: int, stop: int, bio: Any) -> Iterator[Any]:
    """rosbags' ``msgsrc``: the chunk's start time first (not read yet), then its messages sorted by log time."""
    from rosbags.rosbag2 import storage_mcap

    yield (chunk.message_start_time, 0, None, None)  # rosbags' Msg, a tuple: merged the same
    try:
        messages = _parse_chunk(chunk, channel_map, start, stop, bio)
    except Exception:  # anything odd: rosbags reads the chunk again and raises as it would
        messages = None
    if messages is None:
        yield from itertools.islice(storage_mcap.msgsrc(chunk, channel_map, start, stop, bio), 1, None)
        return
    yield from sorted(messages, key=_log_time)


def _parse_chunk(
    chunk: Any, channel_map: dict[int, Connection], start: int, stop: int, bio: Any, merged: bool = True
) -> list[Any] | None:
    """The chunk's messages as rosbags' ``msgsrc`` collects them (``merged``: its ``(log time, chunk
    offset, connection, data)`` tuples; else ``(connection, log time, data)``), unsorted, or None if
    a record is not well formed."""
    from rosbags.rosbag2 import storage_mcap

    bio.seek(chunk.chunk_start_offset + 9 + 24)
    crc = storage_mcap.deserialize_uint32(storage_mcap.read_exact(bio, 4))[0]
    bio.seek(chunk.chunk_start_offset + 9 + 40 + len(chunk.compression))
    compressed = storage_mcap.read_exact(bio, chunk.compressed_size)
    data = storage_mcap.decompress(compressed, chunk.compression, chunk.uncompressed_size, crc)
    offset = chunk.chunk_start_offset
    size = chunk.uncompressed_size
    if len(data) != size:
        return None
    head, full, connection_of = _HEAD.unpack_from, _FULL.unpack_from, channel_map.get
    messages: list[Any] = []
    position = 0
    while position < size:
        if position + 31 <= size:  # room for a message record's header (any record: opcode and length first)
            op, length, channel_id, _, log_time, _ = full(data, position)
        elif position + 9 <= size:
            op, length = head(data, position)
            channel_id = log_time = 0
        else:
            return None
        end = position + 9 + length
        if end > size:
            return None
        if op == _MESSAGE_OP:
            if length < 22:
                return None
            connection = connection_of(channel_id)
            if connection is not None and start <= log_time < stop:
                if merged:
                    messages.append((log_time, offset, connection, data[position + 31 : end]))
                else:
                    messages.append((connection, log_time, data[position + 31 : end]))
        position = end
    return messages
