"""Direct CDR codecs for the hot message types (Imu, Image, TwistStamped), little endian only.

rosbags' generic (de)serialiser costs ~10 µs per message; these read and write the fixed
layouts with ``struct`` and ``numpy.frombuffer`` in ~2 µs, which is what lets replay run far
faster than real time. The layout is XCDR1 as rmw_fastrtps writes it: a 4-byte encapsulation
header (``00 01 00 00`` = CDR little endian), then the fields, each aligned to its size
counted from the end of that header::

    Header:        int32 sec, uint32 nanosec, string frame_id (uint32 length incl. NUL, bytes, NUL)
    Imu:           Header, 37 float64 (orientation 4, cov 9, angular_velocity 3, cov 9,
                   linear_acceleration 3, cov 9)
    Image:         Header, uint32 height, uint32 width, string encoding, uint8 is_bigendian,
                   uint32 step, sequence<uint8> data (uint32 length, bytes)
    TwistStamped:  Header, 6 float64 (linear xyz, angular xyz)

Decoders return ``None`` for anything else (big endian, other encapsulations), and callers
fall back to rosbags; they raise ``ValueError`` / ``struct.error`` on truncated data. The
tests check every codec byte for byte against rosbags and rclpy.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from lnn_ros.runtime.records import Command, ImageFrame, ImuSample
from lnn_ros.units import NS_PER_S

CDR_LE = b"\x00\x01\x00\x00"
_HEADER = struct.Struct("<iII")  # sec, nanosec, frame_id length
_U32 = struct.Struct("<I")
_TWIST = struct.Struct("<6d")
_PAD = b"\x00" * 8


def _header(raw: bytes | memoryview) -> tuple[int, int] | None:
    """(stamp_ns, offset after the header, relative to the CDR origin) or None if not CDR LE."""
    if bytes(raw[:2]) != CDR_LE[:2]:
        return None
    sec, nanosec, length = _HEADER.unpack_from(raw, 4)
    end = 12 + length
    if end + 4 > len(raw):
        raise ValueError(f"CDR header frame_id of {length} bytes runs past the {len(raw)}-byte message.")
    return sec * NS_PER_S + nanosec, end


def _align(offset: int, size: int) -> int:
    return (offset + size - 1) & ~(size - 1)


def _stamped_doubles(raw: bytes | memoryview, count: int) -> tuple[int, np.ndarray] | None:
    """(stamp_ns, the ``count`` float64 values that follow the header) or None if not CDR LE."""
    head = _header(raw)
    if head is None:
        return None
    stamp, offset = head
    return stamp, np.frombuffer(raw, dtype="<f8", count=count, offset=4 + _align(offset, 8))


def decode_imu(raw: bytes | memoryview) -> ImuSample | None:
    """CDR ``sensor_msgs/Imu`` -> :class:`ImuSample` (None if not little-endian CDR)."""
    body = _stamped_doubles(raw, 37)
    if body is None:
        return None
    stamp, values = body
    return ImuSample(stamp, values[13:16].astype(np.float64), values[25:28].astype(np.float64), values[0:4].astype(np.float64))


def decode_stamped_block(raws: Sequence[bytes], count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The header stamps [N] int64 and the ``count`` float64 values after the header [N, count] of
    many messages at once (as :func:`_stamped_doubles` reads one), or None unless all are
    little-endian CDR of one length with one frame id length (one numpy record view over their
    joined bytes)."""
    first = raws[0]
    if len(first) < 16 or bytes(first[:2]) != CDR_LE[:2]:
        return None
    length = _U32.unpack_from(first, 12)[0]
    head = 12 + length
    size = 4 + _align(head, 8) + count * 8
    if len(first) != size or any(len(raw) != size for raw in raws):
        return None
    layout = np.dtype([("encapsulation", "u1", (2,)), ("options", "V2"), ("sec", "<i4"), ("nanosec", "<u4"),
                       ("length", "<u4"), ("rest", f"V{_align(head, 8) - 12}"), ("values", "<f8", (count,))])
    rows = np.frombuffer(b"".join(raws), dtype=layout)
    if (rows["encapsulation"] != np.frombuffer(CDR_LE[:2], dtype=np.uint8)).any() or (rows["length"] != length).any():
        return None
    return rows["sec"].astype(np.int64) * NS_PER_S + rows["nanosec"], rows["values"]


def decode_imu_block(raws: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`decode_imu` of many messages at once: (stamps [N] int64, values [N,10] float64 with the
    angular velocity, linear acceleration and orientation), or None (see :func:`decode_stamped_block`)."""
    block = decode_stamped_block(raws, 37)
    if block is None:
        return None
    stamps, values = block
    return stamps, np.concatenate([values[:, 13:16], values[:, 25:28], values[:, 0:4]], axis=1)


def decode_twists_block(raws: Sequence[bytes]) -> list[Command] | None:
    """:func:`decode_twist_stamped` of many messages at once, or None (see :func:`decode_stamped_block`)."""
    block = decode_stamped_block(raws, 6)
    if block is None:
        return None
    stamps, values = block
    return [Command(stamp, tuple(twist)) for stamp, twist in zip(stamps.tolist(), values.tolist())]  # type: ignore[arg-type]


def _image_layout(raw: bytes | memoryview) -> tuple[int, int, int, str, bool, int, int, int] | None:
    """(stamp, height, width, encoding, is_bigendian, step, data size, data offset) of a CDR LE Image, else None."""
    head = _header(raw)
    if head is None:
        return None
    stamp, offset = head
    offset = _align(offset, 4)
    height, width, length = struct.unpack_from("<III", raw, 4 + offset)
    offset += 12
    encoding = bytes(raw[4 + offset : 4 + offset + length - 1]).decode("ascii")
    is_bigendian = bool(raw[4 + offset + length])
    offset += length + 1  # string bytes incl. NUL, then uint8 is_bigendian
    offset = _align(offset, 4)
    step, size = struct.unpack_from("<II", raw, 4 + offset)
    start = 4 + offset + 8
    if start + size > len(raw):
        raise ValueError(f"Image data of {size} bytes runs past the {len(raw)}-byte message.")
    return stamp, height, width, encoding, is_bigendian, step, size, start


def decode_image(raw: bytes | memoryview) -> ImageFrame | None:
    """CDR ``sensor_msgs/Image`` -> :class:`ImageFrame` sharing ``raw``'s buffer (None if not CDR LE)."""
    layout = _image_layout(raw)
    if layout is None:
        return None
    stamp, height, width, encoding, is_bigendian, step, size, start = layout
    return ImageFrame(stamp, height, width, encoding, step, memoryview(raw)[start : start + size], is_bigendian)


def decode_images_block(raws: Sequence[bytes]) -> list[ImageFrame] | None:
    """:func:`decode_image` of many messages at once, or None unless all are little-endian CDR with
    the same bytes from the end of the stamp to the pixel data (frame id, size, encoding, step)."""
    try:
        layout = _image_layout(raws[0])
    except (ValueError, struct.error, UnicodeDecodeError):
        return None
    if layout is None:
        return None
    _, height, width, encoding, is_bigendian, step, size, start = layout
    first = raws[0]
    length, head = len(first), bytes(first[12:start])
    if any(len(raw) != length or raw[:2] != CDR_LE[:2] or raw[12:start] != head for raw in raws):
        return None
    times = np.frombuffer(b"".join(raw[4:12] for raw in raws), dtype=[("sec", "<i4"), ("nanosec", "<u4")])
    stamps = (times["sec"].astype(np.int64) * NS_PER_S + times["nanosec"]).tolist()
    return [
        ImageFrame(stamp, height, width, encoding, step, memoryview(raw)[start : start + size], is_bigendian)
        for stamp, raw in zip(stamps, raws)
    ]


def decode_twist_stamped(raw: bytes | memoryview) -> Command | None:
    """CDR ``geometry_msgs/TwistStamped`` -> :class:`Command` (None if not CDR LE)."""
    body = _stamped_doubles(raw, 6)
    if body is None:
        return None
    stamp, values = body
    return Command(stamp, tuple(values.tolist()))


def _header_bytes(stamp_ns: int, frame_id: str) -> bytes:
    """Encapsulation header + ``std_msgs/Header``, padded to the next 8-byte boundary."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    name = frame_id.encode() + b"\x00"
    body = _HEADER.pack(sec, nanosec, len(name)) + name
    return CDR_LE + body + _PAD[: _align(len(body), 8) - len(body)]


def encode_twist_stamped(stamp_ns: int, twist: Sequence[float], frame_id: str) -> bytes:
    """``geometry_msgs/TwistStamped`` as CDR little endian, the bytes rclpy publishes."""
    return _header_bytes(stamp_ns, frame_id) + _TWIST.pack(*twist)


def encode_twists_stamped(stamps_ns: np.ndarray, twists: np.ndarray, frame_id: str) -> np.ndarray:
    """:func:`encode_twist_stamped` of N messages at once: stamps [N] int64, twists [N,6] -> bytes [N, D] uint8.

    Every message has the same size D (one frame id), so the rows are a numpy record array.
    """
    name = frame_id.encode() + b"\x00"
    head = 12 + len(name)
    pad = _align(head, 8) - head
    layout = np.dtype([("encapsulation", "V4"), ("sec", "<i4"), ("nanosec", "<u4"), ("length", "<u4"),
                       ("name", f"V{len(name)}"), ("pad", f"V{pad}"), ("twist", "<f8", (6,))])
    rows = np.zeros(len(stamps_ns), dtype=layout)
    rows["encapsulation"] = np.void(CDR_LE)
    sec, nanosec = np.divmod(np.asarray(stamps_ns, dtype=np.int64), NS_PER_S)
    rows["sec"] = sec
    rows["nanosec"] = nanosec
    rows["length"] = len(name)
    rows["name"] = np.void(name)
    rows["twist"] = twists
    return rows.view(np.uint8).reshape(len(stamps_ns), layout.itemsize)


def encode_diagnostic_array(
    stamp_ns: int, level: int, name: str, message: str, hardware_id: str, values: Sequence[tuple[str, str]]
) -> bytes:
    """``diagnostic_msgs/DiagnosticArray`` with one status (frame id ''), CDR little endian: the bytes rclpy publishes."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    parts = [CDR_LE, _HEADER.pack(sec, nanosec, 1), b"\x00\x00\x00\x00", _U32.pack(1), bytes((level,))]
    size = 21  # bytes after the encapsulation header so far: header 13, padding 3, count 4, level 1
    for text in (name, message, hardware_id, None, *(t for pair in values for t in pair)):
        if text is None:  # the key/value sequence: its length, aligned to 4
            pad = -size % 4
            parts += [_PAD[:pad], _U32.pack(len(values))]
            size += pad + 4
            continue
        data = text.encode()
        pad = -size % 4
        parts += [_PAD[:pad], _U32.pack(len(data) + 1), data, b"\x00"]
        size += pad + 5 + len(data)
    return b"".join(parts)
