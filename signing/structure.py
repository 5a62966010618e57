"""A cheap linear pre-scan of container structure, before any decoder sees a file.

The engine's cost grows faster than linearly with the number of ISO BMFF boxes (a few hundred KB of tiny
boxes keep it busy for seconds), and about linearly with PNG chunks. This scan reads only the headers (one
small read per box, chunk or segment, seeking over the payloads), so its cost is linear in the number of
headers and stops at the first limit passed. It refuses absurd structure with `AssetTooComplexError`; it does
not validate anything else (a truncated or malformed file is the decoders' to judge). Formats it does not
know pass unchecked. Pure: reads the stream it is given, opens nothing.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import IO

from signing.errors import AssetTooComplexError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Boxes that hold only boxes (ISO/IEC 14496-12 and the HEIF/QuickTime ones the engine walks); `meta` is a
# full box (4 bytes of version and flags before its children).
_BMFF_CONTAINERS = frozenset(
    {
        b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts", b"udta", b"mvex", b"moof", b"traf",
        b"mfra", b"sinf", b"schi", b"ipro", b"iprp", b"ipco", b"tref", b"grpl", b"strk", b"strd", b"meco",
    }
)  # fmt: skip
_FULL_CONTAINERS = frozenset({b"meta"})
_RIFF_LISTS = frozenset({b"RIFF", b"LIST", b"RF64"})
# JPEG markers without a length field: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})
# In entropy-coded data: 0xFF followed by neither a stuffed 0x00 nor a restart marker starts a segment.
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


@dataclass(frozen=True)
class StructureLimits:
    max_boxes: int = 20_000  # ISO BMFF boxes at every level together
    max_depth: int = 32  # ISO BMFF box / RIFF list nesting
    max_chunks: int = 20_000  # PNG and RIFF chunks
    max_segments: int = 5_000  # JPEG marker segments


def check_structure(stream: IO[bytes], limits: StructureLimits) -> None:
    """Raise `AssetTooComplexError` if the container structure passes a limit; leaves the stream at 0."""
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    head = stream.read(16)
    try:
        if head.startswith(PNG_SIGNATURE):
            _png(stream, size, limits)
        elif head[:4] in (b"RIFF", b"RF64") and len(head) >= 12:
            _riff(stream, 12, size, 1, limits, [0])
        elif head.startswith(b"\xff\xd8"):
            _jpeg(stream, size, limits)
        elif head[4:8] == b"ftyp":
            _bmff(stream, 0, size, 1, limits, [0])
    finally:
        stream.seek(0)


def _refuse(what: str, limit: int, setting: str) -> AssetTooComplexError:
    return AssetTooComplexError(
        f"The file has more {what} than this server accepts ({limit}); it was not processed.",
        hint=f"Real files stay far below this limit; the operator sets it with HALLMARK_{setting}.",
        details={"limit": limit, "structure": what},
    )


def _bmff(
    stream: IO[bytes], start: int, end: int, depth: int, limits: StructureLimits, count: list[int]
) -> None:
    if depth > limits.max_depth:
        raise _refuse("levels of nested boxes", limits.max_depth, "PRESCAN_MAX_DEPTH")
    pos = start
    while pos + 8 <= end:
        stream.seek(pos)
        header = stream.read(16)
        if len(header) < 8:
            return
        box_size, kind = struct.unpack(">I4s", header[:8])
        body = pos + 8
        if box_size == 1 and len(header) == 16:
            box_size = struct.unpack(">Q", header[8:16])[0]
            body = pos + 16
        elif box_size == 0:
            box_size = end - pos
        if box_size < body - pos:
            return  # malformed: the engine reports it
        count[0] += 1
        if count[0] > limits.max_boxes:
            raise _refuse("boxes", limits.max_boxes, "PRESCAN_MAX_BOXES")
        box_end = min(pos + box_size, end)
        if kind in _BMFF_CONTAINERS:
            _bmff(stream, body, box_end, depth + 1, limits, count)
        elif kind in _FULL_CONTAINERS:
            _bmff(stream, body + 4, box_end, depth + 1, limits, count)
        pos += box_size


def _png(stream: IO[bytes], size: int, limits: StructureLimits) -> None:
    pos, chunks = len(PNG_SIGNATURE), 0
    while pos + 8 <= size:
        stream.seek(pos)
        header = stream.read(8)
        if len(header) < 8:
            return
        length, kind = struct.unpack(">I4s", header)
        chunks += 1
        if chunks > limits.max_chunks:
            raise _refuse("PNG chunks", limits.max_chunks, "PRESCAN_MAX_CHUNKS")
        if kind == b"IEND":
            return
        pos += 12 + length


def _riff(
    stream: IO[bytes], start: int, end: int, depth: int, limits: StructureLimits, count: list[int]
) -> None:
    if depth > limits.max_depth:
        raise _refuse("levels of nested chunks", limits.max_depth, "PRESCAN_MAX_DEPTH")
    pos = start
    while pos + 8 <= end:
        stream.seek(pos)
        header = stream.read(12)
        if len(header) < 8:
            return
        kind, length = struct.unpack("<4sI", header[:8])
        count[0] += 1
        if count[0] > limits.max_chunks:
            raise _refuse("RIFF chunks", limits.max_chunks, "PRESCAN_MAX_CHUNKS")
        if kind in _RIFF_LISTS and length >= 4:
            _riff(stream, pos + 12, min(pos + 8 + length, end), depth + 1, limits, count)
        pos += 8 + length + (length & 1)


def _jpeg(stream: IO[bytes], size: int, limits: StructureLimits) -> None:
    """Marker segments up to the end of the file: after a start of scan, the entropy-coded data is searched
    for the next marker (0xFF followed by neither 0x00 nor a restart marker)."""
    pos, segments = 2, 0
    while pos + 4 <= size:
        stream.seek(pos)
        header = stream.read(4)
        if len(header) < 2 or header[0] != 0xFF:
            return
        marker = header[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        segments += 1
        if segments > limits.max_segments:
            raise _refuse("JPEG segments", limits.max_segments, "PRESCAN_MAX_SEGMENTS")
        if marker == 0xD9:
            return
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if len(header) < 4:
            return
        pos += 2 + struct.unpack(">H", header[2:4])[0]
        if marker == 0xDA:
            found = _next_marker(stream, pos, size)
            if found is None:
                return
            pos = found


def _next_marker(stream: IO[bytes], pos: int, size: int) -> int | None:
    block = 1 << 16
    while pos < size:
        stream.seek(pos)
        data = stream.read(block + 1)
        found = _MARKER.search(data)
        if found is not None:
            return pos + found.start()
        if len(data) <= block:
            return None
        pos += block
    return None
