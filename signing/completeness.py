"""Is an upload complete? A structural walk of every supported format, and a full decode of raster images.

The engine signs a truncated file without complaint (the first 5 KB of a JPEG, half an MP4): the result is
a credential over a broken asset. Before signing, every format is walked to its end: container boxes,
chunks and frames must end where the file ends (or at the format's own end marker) and never overrun it;
raster images are decoded to the last pixel with Pillow (pillow-heif for HEIC/HEIF). Nothing here writes or
fetches anything: the stream is only read.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable
from typing import IO, Literal

import pillow_heif
from PIL import Image, ImageSequence

from signing import media as m
from signing.completeness_audio import check_flac, check_mp3
from signing.errors import AssetTooLargeError, IncompleteAssetError
from signing.models import MediaType

_CHUNK = 1 << 20
# Past this many top-level boxes or chunks a file is refused rather than walked (legitimate files have
# a handful; a fragmented MP4 a few thousand).
MAX_UNITS = 200_000
# Decoding costs memory in proportion to the pixels, not the bytes: a PNG of a few hundred KB can hold
# 12000x12000 pixels (573 MB decoded). The operator's limit (HALLMARK_MAX_IMAGE_PIXELS) defaults to this.
DEFAULT_MAX_PIXELS = 100_000_000
_BMFF_REQUIRED = {"video": b"moov", "audio": b"moov", "image": b"meta"}
_TIFF_EXTENTS = ((273, 279), (324, 325))  # (StripOffsets, StripByteCounts), (TileOffsets, TileByteCounts)


def check_complete(media: MediaType, stream: IO[bytes], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Raise `IncompleteAssetError` (422) unless `stream` holds a complete file of `media`'s format, and
    `AssetTooLargeError` (413) for an image of more than `max_pixels` pixels, before decoding it.

    `stream` is seekable; it is left at offset 0.
    """
    try:
        if media.mime in _RASTER:
            _check_pixels(media, stream, max_pixels)
        _CHECKS[media.mime](media, stream)
    finally:
        stream.seek(0)


def incomplete(media: MediaType, problem: str) -> IncompleteAssetError:
    return IncompleteAssetError.because(media.extension.upper(), media.mime, problem)


def _size(stream: IO[bytes]) -> int:
    return stream.seek(0, 2)


def _name(kind: bytes) -> str:
    """A box or chunk type from the file, printable whatever its bytes."""
    return repr(kind.decode("latin-1").encode("ascii", "backslashreplace").decode("ascii"))


def _read_at(stream: IO[bytes], offset: int, n: int) -> bytes:
    stream.seek(offset)
    return stream.read(n)


# --- containers -----------------------------------------------------------------------------------------


def _bmff(media: MediaType, stream: IO[bytes]) -> None:
    """ISO-BMFF (MP4, MOV, M4A, AVIF, HEIC): the top-level boxes tile the file exactly."""
    size = _size(stream)
    pos, seen = 0, set()
    for _ in range(MAX_UNITS):
        if pos == size:
            break
        header = _read_at(stream, pos, 16)
        if len(header) < 8:
            raise incomplete(media, f"it ends inside a box header at byte {pos}")
        length, kind = int.from_bytes(header[:4], "big"), header[4:8]
        if length == 1:
            if len(header) < 16:
                raise incomplete(media, f"it ends inside a box header at byte {pos}")
            length = int.from_bytes(header[8:16], "big")
        elif length == 0:  # "to the end of the file": only the last box may say so
            length = size - pos
        if length < 8:
            raise incomplete(media, f"the box at byte {pos} has an impossible size")
        if pos + length > size:
            raise incomplete(media, f"the {_name(kind)} box at byte {pos} runs past the end")
        seen.add(kind)
        pos += length
    else:
        raise incomplete(media, f"it has more than {MAX_UNITS} top-level boxes")
    required = _BMFF_REQUIRED[media.kind]
    if required not in seen:
        raise incomplete(media, f"it has no {required.decode()!r} box")
    if media.kind == "image":
        _decode_raster(media, stream)


def _riff(media: MediaType, stream: IO[bytes]) -> None:
    """RIFF (WAV, WebP): the declared size fits the file and the chunks tile it. Bytes after the RIFF (an
    ID3 tag some tools append to a WAV) are not part of it and are left alone."""
    size = _size(stream)
    header = _read_at(stream, 0, 12)
    end = 8 + int.from_bytes(header[4:8], "little")
    if end > size:
        raise incomplete(media, f"it declares {end} bytes but has {size}")
    pos, seen = 12, set()
    for _ in range(MAX_UNITS):
        if pos >= end:
            break
        chunk = _read_at(stream, pos, 8)
        if len(chunk) < 8 or pos + 8 > end:
            raise incomplete(media, f"it ends inside a chunk header at byte {pos}")
        length = int.from_bytes(chunk[4:8], "little")
        if pos + 8 + length > end:
            raise incomplete(media, f"the {_name(chunk[:4])} chunk at byte {pos} runs past the end")
        seen.add(chunk[:4])
        pos += 8 + length + (length & 1)  # chunks are padded to an even length
    else:
        raise incomplete(media, f"it has more than {MAX_UNITS} chunks")
    if media is m.WAV and not {b"fmt ", b"data"} <= seen:
        raise incomplete(media, "it lacks its 'fmt ' or 'data' chunk")
    if media is m.WEBP:
        _decode_raster(media, stream)


def _png(media: MediaType, stream: IO[bytes]) -> None:
    """Every chunk is whole with a matching CRC, up to IEND."""
    pos = 8
    for _ in range(MAX_UNITS):
        header = _read_at(stream, pos, 8)
        if len(header) < 8:
            raise incomplete(media, "it ends before its IEND chunk")
        length, kind = int.from_bytes(header[:4], "big"), header[4:8]
        crc = zlib.crc32(kind)
        remaining = length
        while remaining:
            data = stream.read(min(remaining, _CHUNK))
            if not data:
                raise incomplete(media, f"the {_name(kind)} chunk at byte {pos} runs past the end")
            crc = zlib.crc32(data, crc)
            remaining -= len(data)
        stored = stream.read(4)
        if len(stored) < 4:
            raise incomplete(media, f"the {_name(kind)} chunk at byte {pos} runs past the end")
        if int.from_bytes(stored, "big") != crc:
            raise incomplete(media, f"the {_name(kind)} chunk at byte {pos} fails its checksum")
        if kind == b"IEND":
            break
        pos += 12 + length
    else:
        raise incomplete(media, f"it has more than {MAX_UNITS} chunks")
    _decode_raster(media, stream)


# --- images with end markers ----------------------------------------------------------------------------

_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: markers without a length


def _jpeg(media: MediaType, stream: IO[bytes]) -> None:
    """The markers reach EOI: segments by their lengths, entropy-coded data up to the next marker."""
    stream.seek(0)
    data = stream.read()
    pos, in_scan = 2, False
    while True:
        if in_scan:
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= len(data):
                raise incomplete(media, "its image data ends before the end-of-image marker")
            if data[pos + 1] == 0x00 or data[pos + 1] in _STANDALONE or data[pos + 1] == 0xFF:
                pos += 1 if data[pos + 1] == 0xFF else 2
                continue
        if pos + 2 > len(data) or data[pos] != 0xFF:
            raise incomplete(media, f"it has no marker where one must be (byte {pos})")
        marker = data[pos + 1]
        if marker == 0xD9:
            break
        if marker in _STANDALONE or marker == 0xFF:
            pos += 1 if marker == 0xFF else 2
            continue
        if pos + 4 > len(data):
            raise incomplete(media, "it ends inside a segment header")
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end > len(data):
            raise incomplete(media, f"the segment at byte {pos} runs past the end")
        pos, in_scan = end, marker == 0xDA
    del data
    _decode_raster(media, stream)


def _gif(media: MediaType, stream: IO[bytes]) -> None:
    """Header, colour tables, then image and extension blocks made of sub-blocks, up to the trailer."""
    stream.seek(0)
    data = stream.read()
    if len(data) < 13:
        raise incomplete(media, "it ends inside its header")
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    for _ in range(MAX_UNITS):
        if pos >= len(data):
            raise incomplete(media, "it ends before its trailer")
        block = data[pos]
        if block == 0x3B:
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif block == 0x2C:  # image: descriptor, local colour table, LZW code size, then sub-blocks
            if pos + 10 > len(data):
                raise incomplete(media, "it ends inside an image descriptor")
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        else:
            raise incomplete(media, f"it has an unknown block at byte {pos}")
        while True:
            if pos >= len(data):
                raise incomplete(media, "its image data ends before the trailer")
            if data[pos] == 0:
                pos += 1
                break
            pos += 1 + data[pos]
    else:
        raise incomplete(media, f"it has more than {MAX_UNITS} blocks")
    del data
    _decode_raster(media, stream)


# Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, ... IFD8).
_TIFF_TYPE_SIZES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
    16: 8,
    17: 8,
    18: 8,
}
_MAX_IFDS = 10_000


def _tiff(media: MediaType, stream: IO[bytes]) -> None:
    """Every directory (IFD) and every value it points to lie inside the file; every page decodes, and
    every strip or tile lies inside the file."""
    size = _size(stream)
    order: Literal["little", "big"] = "little" if _read_at(stream, 0, 2) == b"II" else "big"
    offset, seen = int.from_bytes(_read_at(stream, 4, 4), order), set[int]()
    while offset and len(seen) < _MAX_IFDS:
        if offset in seen:
            raise incomplete(media, "its directories form a loop")
        seen.add(offset)
        count_bytes = _read_at(stream, offset, 2)
        count = int.from_bytes(count_bytes, order)
        table = _read_at(stream, offset + 2, 12 * count + 4)
        if len(count_bytes) < 2 or len(table) < 12 * count + 4:
            raise incomplete(media, f"its directory at byte {offset} runs past the end")
        for i in range(0, 12 * count, 12):
            kind = int.from_bytes(table[i + 2 : i + 4], order)
            length = _TIFF_TYPE_SIZES.get(kind, 0) * int.from_bytes(table[i + 4 : i + 8], order)
            if length > 4 and int.from_bytes(table[i + 8 : i + 12], order) + length > size:
                raise incomplete(media, f"a value of its directory at byte {offset} runs past the end")
        offset = int.from_bytes(table[12 * count :], order)

    def extents_inside(image: Image.Image) -> None:
        tags = getattr(image, "tag_v2", {})
        for offsets_tag, counts_tag in _TIFF_EXTENTS:
            offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
            if offsets is None:
                continue
            pairs = zip(_ints(offsets), _ints(counts), strict=False)
            if counts is None or any(offset + count > size for offset, count in pairs):
                raise incomplete(media, "its image data runs past the end")

    _decode_raster(media, stream, per_frame=extents_inside)


def _ints(value: object) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    return tuple(v for v in value if isinstance(v, int)) if isinstance(value, tuple | list) else ()


def _check_pixels(media: MediaType, stream: IO[bytes], max_pixels: int) -> None:
    """Only the header is read here; a header that does not parse is left to the walk and the decode,
    which say what is wrong with the file."""
    _register_heif()
    stream.seek(0)
    try:
        with Image.open(stream) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        raise _too_many_pixels(media, None, max_pixels) from None
    except Exception:
        return
    if width * height > max_pixels:
        raise _too_many_pixels(media, (width, height), max_pixels)


def _too_many_pixels(media: MediaType, size: tuple[int, int] | None, max_pixels: int) -> AssetTooLargeError:
    shown = f" is {size[0]}x{size[1]} pixels and" if size else ""
    return AssetTooLargeError(
        f"The {media.extension.upper()} image{shown} has more pixels than this service decodes "
        f"({max_pixels:,}).",
        hint="Send a smaller image, or ask the operator to raise HALLMARK_MAX_IMAGE_PIXELS.",
        details={"max_pixels": max_pixels, **({"width": size[0], "height": size[1]} if size else {})},
    )


def _decode_raster(
    media: MediaType, stream: IO[bytes], per_frame: Callable[[Image.Image], None] | None = None
) -> None:
    """Decode every frame to its last pixel; any decoder failure means the file is not a whole image."""
    _register_heif()
    stream.seek(0)
    try:
        with Image.open(stream) as image:
            if image.format == "JPEG":
                # DCT scaling to 1/8: every coefficient is still entropy-decoded (what finds a broken
                # scan), at about half the cost of the full-size inverse transform.
                image.draft(None, (1, 1))
            for frame in ImageSequence.Iterator(image):
                if per_frame is not None:
                    per_frame(frame)
                frame.load()
    except IncompleteAssetError:
        raise
    except Image.DecompressionBombError:
        raise AssetTooLargeError(
            f"The {media.extension.upper()} image has too many pixels to decode safely."
        ) from None
    except Exception:  # any decoder failure on hostile bytes: Pillow's plugins raise many kinds
        raise incomplete(media, "its pixels do not decode completely") from None


@functools.cache
def _register_heif() -> None:
    """Once per process: Pillow's plugin registry is process-wide."""
    pillow_heif.register_heif_opener()


# --- documents ------------------------------------------------------------------------------------------

_TAIL = 1024  # readers look for %%EOF within the last 1024 bytes
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF")
_OBJECT = re.compile(rb"\d+\s+\d+\s+obj\b")


def _pdf(media: MediaType, stream: IO[bytes]) -> None:
    """The file ends with `startxref <offset> %%EOF`, and the offset points at a cross-reference."""
    size = _size(stream)
    tail = _read_at(stream, max(0, size - _TAIL), _TAIL)
    found = list(_STARTXREF.finditer(tail))
    if not found or tail[found[-1].end() :].strip(b" \t\r\n\x00") != b"":
        raise incomplete(media, "it does not end with its cross-reference pointer and %%EOF marker")
    offset = int(found[-1].group(1))
    target = _read_at(stream, offset, 64) if offset < size else b""
    if not (target.startswith(b"xref") or _OBJECT.match(target)):
        raise incomplete(media, "its cross-reference pointer points at no cross-reference")


def _svg(media: MediaType, stream: IO[bytes]) -> None:
    """The XML parses to its last closing tag. No entity can expand: `media.sniff` admits an SVG only
    without an internal DTD subset, and expat never fetches an external one."""
    parser = ET.XMLParser()  # noqa: S314 - see above
    stream.seek(0)
    try:
        while chunk := stream.read(_CHUNK):
            parser.feed(chunk)
        root = parser.close()
    except ET.ParseError:
        raise incomplete(media, "its XML is not complete") from None
    if root.tag not in ("svg", "{http://www.w3.org/2000/svg}svg"):
        raise incomplete(media, "its root element is not <svg>")


_RASTER = frozenset(
    {m.JPEG.mime, m.PNG.mime, m.GIF.mime, m.WEBP.mime, m.TIFF.mime, m.AVIF.mime, m.HEIC.mime, m.HEIF.mime}
)
_CHECKS: dict[str, Callable[[MediaType, IO[bytes]], None]] = {
    m.JPEG.mime: _jpeg,
    m.PNG.mime: _png,
    m.GIF.mime: _gif,
    m.WEBP.mime: _riff,
    m.TIFF.mime: _tiff,
    m.AVIF.mime: _bmff,
    m.HEIC.mime: _bmff,
    m.HEIF.mime: _bmff,
    m.SVG.mime: _svg,
    m.MP4.mime: _bmff,
    m.MOV.mime: _bmff,
    m.M4A.mime: _bmff,
    m.WAV.mime: _riff,
    m.MP3.mime: check_mp3,
    m.FLAC.mime: check_flac,
    m.PDF.mime: _pdf,
}
