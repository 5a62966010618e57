"""Allow-listed media types, identified from the bytes (a client's content type is never trusted).

Hand-written on purpose: the allow-list is a security boundary, and the mapping from an ISO-BMFF brand to the
exact media type the engine expects (image/heic vs video/mp4 vs audio/mp4) is ours to decide.
"""

from __future__ import annotations

import re
from typing import IO

from signing.errors import EmptyAssetError, UnsupportedMediaError
from signing.models import MediaType

SNIFF_BYTES = 4096

JPEG = MediaType("image/jpeg", "jpg", "image")
PNG = MediaType("image/png", "png", "image")
GIF = MediaType("image/gif", "gif", "image")
WEBP = MediaType("image/webp", "webp", "image")
TIFF = MediaType("image/tiff", "tif", "image")
AVIF = MediaType("image/avif", "avif", "image")
HEIC = MediaType("image/heic", "heic", "image")
HEIF = MediaType("image/heif", "heif", "image")
SVG = MediaType("image/svg+xml", "svg", "image")
MP4 = MediaType("video/mp4", "mp4", "video")
MOV = MediaType("video/quicktime", "mov", "video")
M4A = MediaType("audio/mp4", "m4a", "audio")
WAV = MediaType("audio/wav", "wav", "audio")
MP3 = MediaType("audio/mpeg", "mp3", "audio")
FLAC = MediaType("audio/flac", "flac", "audio")
PDF = MediaType("application/pdf", "pdf", "document")

SUPPORTED: tuple[MediaType, ...] = (
    JPEG,
    PNG,
    GIF,
    WEBP,
    TIFF,
    AVIF,
    HEIC,
    HEIF,
    SVG,
    MP4,
    MOV,
    M4A,
    WAV,
    MP3,
    FLAC,
    PDF,
)
BY_MIME: dict[str, MediaType] = {m.mime: m for m in SUPPORTED}

_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
_QUICKTIME_BRANDS = {b"qt  "}
# The root element must be <svg>: only an XML declaration, processing instructions, comments and a doctype
# (without an internal subset) may come before it. HTML with inline SVG is not SVG.
_SVG_ROOT = re.compile(rb"<svg[\s>/]", re.I)
_DOCTYPE = re.compile(rb"<!DOCTYPE[^>\[]*>", re.I)
_PDF_HEADER = re.compile(rb"%PDF-[0-9]\.[0-9]")
ID3_HEADER = 10


def _bmff_type(head: bytes) -> MediaType | None:
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[0:4], "big")
    end = min(size if size >= 16 else 16, len(head))
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    major = head[8:12]
    # Precedence: the major brand decides when it is specific; compatible brands break ties.
    for candidates, media in (
        (_AVIF_BRANDS, AVIF),
        (_HEIC_BRANDS, HEIC),
        (_AUDIO_BRANDS, M4A),
        (_QUICKTIME_BRANDS, MOV),
    ):
        if major in candidates:
            return media
    if brands & _AVIF_BRANDS:
        return AVIF
    if brands & _HEIC_BRANDS:
        return HEIC
    if brands & _HEIF_BRANDS:
        return HEIF
    return MP4


def mpeg_frame_header(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a version and a layer that are not "reserved", a bitrate
    index that is neither free nor bad, a sample-rate index that is not reserved."""
    if len(head) < 4 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0x3, (head[1] >> 1) & 0x3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0x3
    return version != 1 and layer != 0 and bitrate not in (0, 0xF) and rate != 3


def _after_id3(first: bytes) -> MediaType | None:
    """What follows an ID3v2 tag decides the type: FLAC's marker (the engine puts its manifest in a tag
    before it) or the first MPEG audio frame; anything else is not audio of ours."""
    if first.startswith(b"fLaC"):
        return FLAC
    return MP3 if mpeg_frame_header(first) else None


def _identify_id3(head: bytes) -> MediaType | None:
    end = id3_end(head)
    if end is None:
        return None
    if end + 4 <= len(head):
        return _after_id3(head[end : end + 4])
    return MP3  # the tag runs past the head: `sniff` reads what follows it from the stream


def _is_jpeg(head: bytes) -> bool:
    """SOI, then a marker that may follow it (no restart, SOI or EOI) and a segment length of 2 or more."""
    if not head.startswith(b"\xff\xd8\xff") or len(head) < 6:
        return False
    marker = head[3]
    return 0xC0 <= marker < 0xFF and not 0xD0 <= marker <= 0xD9 and int.from_bytes(head[4:6], "big") >= 2


def _is_riff(head: bytes, form: bytes, first_chunks: tuple[bytes, ...] | None) -> bool:
    """A RIFF header of `form`, then a first chunk id of printable ASCII (one of `first_chunks` if given)."""
    if head[:4] != b"RIFF" or head[8:12] != form or len(head) < 20:
        return False
    chunk = head[12:16]
    if first_chunks is not None:
        return chunk in first_chunks
    return all(0x20 <= b < 0x7F for b in chunk)


def _is_tiff(head: bytes) -> bool:
    """The byte-order mark, 42, and a first IFD offset past the 8-byte header."""
    if len(head) < 8:
        return False
    if head[:4] == b"II*\x00":
        return int.from_bytes(head[4:8], "little") >= 8
    return head[:4] == b"MM\x00*" and int.from_bytes(head[4:8], "big") >= 8


def _is_svg(head: bytes) -> bool:
    """Skip the prolog (XML declaration, processing instructions, comments, a doctype) in one linear pass,
    then require the root element <svg>. A regex with nested repetition here backtracked exponentially on
    a few hundred bytes of comments, freezing a worker on an unauthenticated upload."""
    text = head.removeprefix(b"\xef\xbb\xbf")
    pos = 0
    while True:
        while pos < len(text) and text[pos] in b" \t\r\n":
            pos += 1
        if text.startswith(b"<?", pos):
            end = text.find(b"?>", pos + 2)
            if end < 0:
                return False
            pos = end + 2
        elif text.startswith(b"<!--", pos):
            end = text.find(b"-->", pos + 4)
            if end < 0:
                return False
            pos = end + 3
        elif (doctype := _DOCTYPE.match(text, pos)) is not None:
            pos = doctype.end()
        else:
            return _SVG_ROOT.match(text, pos) is not None


# ID3v2 flags each version defines (unsync, extended header/compression, experimental, footer): others
# must be clear.
_ID3_FLAGS = {2: 0xC0, 3: 0xE0, 4: 0xF0}


def id3_end(head: bytes) -> int | None:
    """Where an ID3v2 tag at the start of `head` ends, or None unless its 10-byte header is valid: version
    2-4, a revision that is not 0xFF, only that version's flags, and a 28-bit "syncsafe" size (high bits
    clear)."""
    if len(head) < ID3_HEADER or not head.startswith(b"ID3"):
        return None
    version, revision, flags = head[3], head[4], head[5]
    allowed = _ID3_FLAGS.get(version)
    if allowed is None or revision == 0xFF or flags & ~allowed or any(b & 0x80 for b in head[6:10]):
        return None
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    footer = ID3_HEADER if flags & 0x10 else 0
    return ID3_HEADER + size + footer


def identify(head: bytes) -> MediaType | None:
    """The allow-listed media type whose signature `head` (the first bytes of a file) carries, or None."""
    if _is_jpeg(head):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[8:16] == b"\x00\x00\x00\rIHDR":
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 13:  # header + logical screen descriptor
        return GIF
    if _is_riff(head, b"WEBP", (b"VP8 ", b"VP8L", b"VP8X")):
        return WEBP
    if _is_riff(head, b"WAVE", None):
        return WAV
    if _is_tiff(head):
        return TIFF
    # STREAMINFO must be the first metadata block, and it is 34 bytes long.
    if head.startswith(b"fLaC") and len(head) >= 8 and head[4] & 0x7F == 0 and head[5:8] == b"\x00\x00\x22":
        return FLAC
    if _PDF_HEADER.match(head):
        return PDF
    bmff = _bmff_type(head)
    if bmff is not None:
        return bmff
    if head.startswith(b"ID3"):
        return _identify_id3(head)
    if mpeg_frame_header(head):
        return MP3
    if _is_svg(head):
        return SVG
    return None


def sniff(stream: IO[bytes]) -> MediaType:
    """Identify a seekable stream's media type from its first bytes; leaves the stream at offset 0."""
    stream.seek(0)
    head = stream.read(SNIFF_BYTES)
    if not head:
        raise EmptyAssetError("The file is empty.")
    media = identify(head)
    end = id3_end(head) if media is not None else None
    if end is not None and end + 4 > len(head):  # the tag runs past the head: look behind it
        stream.seek(end)
        media = _after_id3(stream.read(4))
    stream.seek(0)
    if media is None:
        supported = ", ".join(sorted({m.extension.upper() for m in SUPPORTED}))
        raise UnsupportedMediaError(
            "The file's content is not a supported media type.",
            hint=f"Supported formats: {supported}. The type is read from the file's bytes, not its name.",
        )
    return media


def may_embed_manifest(media: MediaType, stream: IO[bytes]) -> bool:
    """False only when the bytes prove there is no embedded manifest (JPEG without APP11 before the scan,
    PNG without a caBX chunk before the image data), so the caller can skip a reader. True otherwise."""
    stream.seek(0)
    try:
        if media is JPEG:
            return _jpeg_has_app11(stream)
        if media is PNG:
            return _png_has_cabx(stream)
        return True
    finally:
        stream.seek(0)


_MAX_SEGMENTS = 4096  # past this many segments or chunks, stop guessing and let the engine read the file


def _jpeg_has_app11(stream: IO[bytes]) -> bool:
    stream.seek(2)
    for _ in range(_MAX_SEGMENTS):
        marker = stream.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return True  # not a clean segment walk: let the engine decide
        kind = marker[1]
        if kind == 0xEB:  # APP11: JUMBF boxes (C2PA)
            return True
        if kind in (0xDA, 0xD9):  # start of scan / end of image: no more metadata segments
            return False
        if kind == 0x01 or 0xD0 <= kind <= 0xD7:
            continue
        length = stream.read(2)
        if len(length) < 2:
            return True
        stream.seek(int.from_bytes(length, "big") - 2, 1)
    return True


def _png_has_cabx(stream: IO[bytes]) -> bool:
    """Walk every chunk header (a seek each): a caBX chunk may sit before or after the image data."""
    stream.seek(8)
    for _ in range(_MAX_SEGMENTS):
        header = stream.read(8)
        if len(header) < 8:
            return True  # truncated: let the engine decide
        kind = header[4:8]
        if kind == b"caBX":
            return True
        if kind == b"IEND":
            return False
        stream.seek(int.from_bytes(header[0:4], "big") + 4, 1)
    return True
