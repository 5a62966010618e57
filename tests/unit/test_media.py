"""media.identify / media.sniff: the allow-list, decided from real header bytes."""

from __future__ import annotations

import io
import random
import struct

import pytest

from signing.errors import EmptyAssetError, UnsupportedMediaError
from signing.media import SUPPORTED, identify, sniff


def riff(form: bytes, chunk: bytes) -> bytes:
    body = form + chunk + struct.pack("<I", 16) + b"\x00" * 16
    return b"RIFF" + struct.pack("<I", len(body)) + body


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    size = 16 + 4 * len(compatible)
    box = struct.pack(">I", size) + b"ftyp" + major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return box + struct.pack(">I", 8) + b"free" + struct.pack(">I", 1024) + b"mdat" + b"\x00" * 64


PNG_SIG = b"\x89PNG\r\n\x1a\n"
SVG_BODY = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
)

POSITIVE = {
    "jpeg-jfif": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", "image/jpeg"),
    "jpeg-exif": (b"\xff\xd8\xff\xe1\x00\x16Exif\x00\x00MM\x00*", "image/jpeg"),
    "png": (PNG_SIG + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00", "image/png"),
    "gif87a": (b"GIF87a\x01\x00\x01\x00\x80\x00\x00", "image/gif"),
    "gif89a": (b"GIF89a\x01\x00\x01\x00\x80\x00\x00", "image/gif"),
    "webp": (riff(b"WEBP", b"VP8 "), "image/webp"),
    "wav": (riff(b"WAVE", b"fmt "), "audio/wav"),
    "tiff-le": (b"II*\x00\x08\x00\x00\x00\x00\x00", "image/tiff"),
    "tiff-be": (b"MM\x00*\x00\x00\x00\x08\x00\x00", "image/tiff"),
    "flac": (b"fLaC\x00\x00\x00\x22" + b"\x00" * 34, "audio/flac"),
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "application/pdf"),
    "mp3-id3": (b"ID3\x04\x00\x00\x00\x00\x00\x23TSSE", "audio/mpeg"),
    # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz: FF FB 90 64
    "mp3-frame": (b"\xff\xfb\x90\x64" + b"\x00" * 60, "audio/mpeg"),
    # MPEG-2 Layer III, 64 kbit/s: FF F3 80 C4
    "mp3-frame-mpeg2": (b"\xff\xf3\x80\xc4" + b"\x00" * 60, "audio/mpeg"),
    "avif": (ftyp(b"avif", b"avif", b"mif1", b"miaf"), "image/avif"),
    "heic": (ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
    "mif1-heif": (ftyp(b"mif1", b"mif1"), "image/heif"),
    "mif1-major-heic-compatible": (ftyp(b"mif1", b"mif1", b"heic"), "image/heic"),
    "m4a": (ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), "audio/mp4"),
    "quicktime": (ftyp(b"qt  ", b"qt  "), "video/quicktime"),
    "isom": (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
    "mp42": (ftyp(b"mp42", b"mp42", b"isom"), "video/mp4"),
    "svg-bare": (SVG_BODY, "image/svg+xml"),
    "svg-leading-space": (b"\n\n  " + SVG_BODY, "image/svg+xml"),
    "svg-prolog": (b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + SVG_BODY, "image/svg+xml"),
    "svg-prolog-comment-doctype": (
        b'<?xml version="1.0"?>\n<!-- Generator: Example 1.0 -> exported -->\n'
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n' + SVG_BODY,
        "image/svg+xml",
    ),
    "svg-bom": (b"\xef\xbb\xbf" + SVG_BODY, "image/svg+xml"),
    "svg-bom-prolog": (b'\xef\xbb\xbf<?xml version="1.0"?>\r\n' + SVG_BODY, "image/svg+xml"),
    "svg-empty-element": (b"<svg/>", "image/svg+xml"),
}


@pytest.mark.parametrize(("head", "mime"), POSITIVE.values(), ids=POSITIVE.keys())
def test_identify_allow_listed(head: bytes, mime: str) -> None:
    media = identify(head)
    assert media is not None
    assert media.mime == mime


def test_every_allow_listed_type_is_covered() -> None:
    assert {m.mime for m in SUPPORTED} == {mime for _, mime in POSITIVE.values()}


def test_brands_outside_the_ftyp_box_are_ignored() -> None:
    # The box says 20 bytes (major isom + one compatible brand); 'avif' follows in the next box's bytes.
    head = struct.pack(">I", 20) + b"ftypisom\x00\x00\x02\x00isom" + b"avifheic" + b"\x00" * 32
    media = identify(head)
    assert media is not None
    assert media.mime == "video/mp4"


NEGATIVE = {
    "plain-text": b"Hello, world.\nThis is a plain text file with no markup.\n",
    "html": b"<!DOCTYPE html>\n<html><head><title>x</title></head><body><p>hi</p></body></html>\n",
    "json": b'{"type": "image", "markup": "<svg width=\\"1\\"></svg>", "n": 1}',
    "xml-not-svg": b'<?xml version="1.0"?>\n<rss version="2.0"><channel><title>t</title></channel></rss>',
    "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 20 + b"mimetypeapplication/zip",
    "elf": b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00",
    "truncated-png": b"\x89PNG\r\n",
    "riff-avi": riff(b"AVI ", b"LIST"),
    "short-ftyp": b"\x00\x00\x00\x18ftypisom",
    "mp3-bad-bitrate": b"\xff\xfb\xf0\x64" + b"\x00" * 60,
    "mp3-free-bitrate": b"\xff\xfb\x00\x64" + b"\x00" * 60,
    "mp3-reserved-layer": b"\xff\xf9\x90\x64" + b"\x00" * 60,
    "pdf-lowercase": b"%pdf-1.7\n",
    "gif-other-version": b"GIF90a\x01\x00\x01\x00",
    "svg-word-in-text": b"This text talks about <svg> elements without being one.",
}


@pytest.mark.parametrize("head", NEGATIVE.values(), ids=NEGATIVE.keys())
def test_identify_rejects(head: bytes) -> None:
    assert identify(head) is None


@pytest.mark.parametrize("seed", [1, 7, 42, 2026])
def test_random_bytes_rejected(seed: int) -> None:
    head = random.Random(seed).randbytes(4096)
    assert identify(head) is None


def test_html_with_inline_svg_is_not_svg() -> None:
    page = b"<!DOCTYPE html>\n<html><body><script>alert(1)</script>\n" + SVG_BODY + b"\n</body></html>"
    assert identify(page) is None


def test_sniff_reads_from_start_and_rewinds() -> None:
    stream = io.BytesIO(POSITIVE["png"][0] + b"\x00" * 5000)
    stream.seek(17)
    assert sniff(stream).mime == "image/png"
    assert stream.tell() == 0


def test_sniff_empty_stream() -> None:
    with pytest.raises(EmptyAssetError) as caught:
        sniff(io.BytesIO(b""))
    assert caught.value.diagnostics()["code"] == "empty-asset"


def test_sniff_unsupported_lists_formats_and_rewinds() -> None:
    stream = io.BytesIO(NEGATIVE["zip"])
    stream.seek(5)
    with pytest.raises(UnsupportedMediaError) as caught:
        sniff(stream)
    assert stream.tell() == 0
    hint = caught.value.hint or ""
    for ext in (
        "JPG",
        "PNG",
        "GIF",
        "WEBP",
        "TIF",
        "AVIF",
        "HEIC",
        "HEIF",
        "SVG",
        "MP4",
        "MOV",
        "M4A",
        "WAV",
        "MP3",
        "FLAC",
        "PDF",
    ):
        assert ext in hint
    assert "ZIP" not in hint


def test_svg_sniffing_is_linear_on_hostile_comment_runs() -> None:
    """A few hundred bytes of comments once made the prolog regex backtrack for minutes."""
    import time

    from signing.media import SNIFF_BYTES

    for hostile in (b"<!---->" * 600 + b"x", b"<!--" + b"-->" * 1300, b"<?x?>" * 800 + b"<html>"):
        started = time.perf_counter()
        assert identify(hostile[:SNIFF_BYTES]) is None
        # A generous bound: the backtracking took minutes, the linear scan takes microseconds.
        assert time.perf_counter() - started < 2.0
    assert identify(b"<!---->" * 500 + b"<svg xmlns='http://www.w3.org/2000/svg'/>") is not None


def test_png_manifest_chunk_after_the_image_data_is_found_anywhere() -> None:
    """A caBX chunk after IDAT and far from the end must still count: never strip incoming credentials."""
    import zlib

    from signing.media import PNG, may_embed_manifest

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    filler = chunk(b"tEXt", b"k\x00" + b"v" * 200_000)
    end = chunk(b"IEND", b"")
    with_manifest = head + idat + chunk(b"caBX", b"jumb") + filler + end
    without = head + idat + filler + end
    assert may_embed_manifest(PNG, io.BytesIO(with_manifest)) is True
    assert may_embed_manifest(PNG, io.BytesIO(without)) is False
