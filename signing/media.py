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


def _is_mp3(head: bytes) -> bool:
    if head.startswith(b"ID3"):
        return True
    # An MPEG audio frame header: 11 sync bits, a layer that is not "reserved", a valid bitrate index.
    if len(head) >= 4 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        layer = (head[1] >> 1) & 0x3
        bitrate = head[2] >> 4
        return layer != 0 and bitrate not in (0, 0xF)
    return False


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


def id3_end(head: bytes) -> int | None:
    """Where an ID3v2 tag at the start of `head` ends (its size is a 28-bit "syncsafe" integer)."""
    if len(head) < ID3_HEADER or not head.startswith(b"ID3") or any(b & 0x80 for b in head[6:10]):
        return None
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    footer = ID3_HEADER if head[5] & 0x10 else 0
    return ID3_HEADER + size + footer


def identify(head: bytes) -> MediaType | None:
    """The allow-listed media type whose signature `head` (the first bytes of a file) carries, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if head.startswith(b"fLaC"):
        return FLAC
    if head.startswith(b"%PDF-"):
        return PDF
    bmff = _bmff_type(head)
    if bmff is not None:
        return bmff
    if _is_mp3(head):
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
    # FLAC may start with an ID3v2 tag (the engine puts its manifest there): look behind the tag.
    end = id3_end(head) if media is MP3 else None
    if end is not None:
        stream.seek(end)
        if stream.read(4) == b"fLaC":
            media = FLAC
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
