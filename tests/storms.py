"""Hostile files built in the tests: many tiny ISO BMFF boxes, many tiny PNG chunks, a large flat picture."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

FTYP = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 0, b"isom", b"mp42")


def box_storm_mp4(boxes: int) -> bytes:
    """An MP4 `ftyp` followed by `boxes` empty `free` boxes (8 bytes each)."""
    return FTYP + struct.pack(">I4s", 8, b"free") * boxes


def moov_storm_mp4(boxes: int) -> bytes:
    """An MP4 `ftyp` and one `moov` holding `boxes` empty `free` boxes: complete enough for sign's checks
    (the top-level boxes tile the file, a `moov` is there), so the engine's read gets to parse the storm
    (~2 s for 16,000 boxes on one core here, growing faster than linearly)."""
    inner = struct.pack(">I4s", 8, b"free") * boxes
    return FTYP + struct.pack(">I4s", 8 + len(inner), b"moov") + inner


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def chunk_storm_png(chunks: int) -> bytes:
    """A 1x1 grey PNG with `chunks` tiny tEXt chunks before its image data."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    text = _chunk(b"tEXt", b"a\x00b") * chunks
    return (
        b"\x89PNG\r\n\x1a\n"
        + header
        + text
        + _chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + _chunk(b"IEND", b"")
    )


def flat_png(side: int) -> bytes:
    """A side x side RGB picture of one colour: a few KB of PNG that decodes to 3 * side**2 bytes."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (90, 120, 150)).save(out, "PNG")
    return out.getvalue()
