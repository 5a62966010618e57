"""Formats are sniffed by structure, not a prefix alone: each magic number followed by nonsense is refused,
the same magic followed by what the format requires is accepted (the control beside every refusal)."""

from __future__ import annotations

import io
import struct

import pytest

from signing.errors import UnsupportedMediaError
from signing.media import identify, sniff

FRAME = b"\xff\xfb\x90\x64"  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz


def id3(body: bytes, *, version: int = 4, flags: int = 0, size: int | None = None) -> bytes:
    n = len(body) if size is None else size
    syncsafe = bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])
    return b"ID3" + bytes([version, 0, flags]) + syncsafe + body


TAG = id3(b"TSSE\x00\x00\x00\x05\x00\x00\x00Lavf" + b"\x00" * 20)

HOSTILE = {
    "id3-then-text": b"ID3" + b"this is not an mp3 at all, just words" * 4,
    "id3-then-html": TAG + b"<html><script>alert(1)</script></html>",
    "id3-then-zeros": TAG + b"\x00" * 64,
    "id3-version-9": id3(b"\x00" * 16, version=9) + FRAME + b"\x00" * 64,
    "id3-version-1": id3(b"\x00" * 16, version=1) + FRAME + b"\x00" * 64,
    "id3-undefined-flag": id3(b"\x00" * 16, flags=0x01) + FRAME + b"\x00" * 64,
    "id3-size-high-bit": b"ID3\x04\x00\x00\x80\x00\x00\x10" + b"\x00" * 16 + FRAME + b"\x00" * 64,
    "id3-then-reserved-sample-rate": TAG + b"\xff\xfb\x9c\x64" + b"\x00" * 64,
    "id3-then-reserved-version": TAG + b"\xff\xeb\x90\x64" + b"\x00" * 64,
    "frame-reserved-sample-rate": b"\xff\xfb\x9c\x64" + b"\x00" * 64,
    "jpeg-soi-then-text": b"\xff\xd8\xff" + b"not a marker segment" * 4,
    "jpeg-soi-then-eoi": b"\xff\xd8\xff\xd9" + b"\x00" * 64,
    "png-without-ihdr": b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x00IEND\xaeB`\x82" + b"\x00" * 32,
    "gif-header-only": b"GIF89a",
    "webp-without-vp8": b"RIFF\x20\x00\x00\x00WEBPJUNK" + b"\x00" * 32,
    "wav-binary-chunk-id": b"RIFF\x20\x00\x00\x00WAVE\x00\x01\x02\x03" + b"\x00" * 32,
    "tiff-ifd-inside-header": b"II*\x00\x04\x00\x00\x00" + b"\x00" * 32,
    "flac-without-streaminfo": b"fLaC\x04\x00\x00\x10" + b"\x00" * 64,
    "pdf-without-version": b"%PDF-x.y\n" + b"\x00" * 32,
}
ACCEPTED = {
    "id3-then-frame": (TAG + FRAME + b"\x00" * 64, "audio/mpeg"),
    "id3v3-then-frame": (id3(b"\x00" * 16, version=3, flags=0x80) + FRAME + b"\x00" * 64, "audio/mpeg"),
    "id3-then-flac": (TAG + b"fLaC\x00\x00\x00\x22" + b"\x00" * 34, "audio/flac"),
    "jpeg-soi-app0": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32, "image/jpeg"),
    "webp-vp8l": (b"RIFF\x20\x00\x00\x00WEBPVP8L" + b"\x00" * 32, "image/webp"),
    "wav-junk-first": (b"RIFF\x20\x00\x00\x00WAVEJUNK" + b"\x00" * 32, "audio/wav"),
    "tiff-ifd-at-8": (b"II*\x00\x08\x00\x00\x00" + b"\x00" * 32, "image/tiff"),
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_magic_prefix_with_nonsense_behind_it_is_refused(data: bytes) -> None:
    assert identify(data) is None
    with pytest.raises(UnsupportedMediaError):
        sniff(io.BytesIO(data))


@pytest.mark.parametrize(("data", "mime"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_the_same_prefix_with_its_structure_is_accepted(data: bytes, mime: str) -> None:
    media = identify(data)
    assert media is not None
    assert media.mime == mime
    assert sniff(io.BytesIO(data)).mime == mime


def test_a_tag_longer_than_the_sniffed_head_is_followed_in_the_stream() -> None:
    long_tag = id3(b"\x00" * 20_000)
    assert sniff(io.BytesIO(long_tag + FRAME + b"\x00" * 64)).mime == "audio/mpeg"
    assert sniff(io.BytesIO(long_tag + b"fLaC\x00\x00\x00\x22" + b"\x00" * 34)).mime == "audio/flac"
    with pytest.raises(UnsupportedMediaError):
        sniff(io.BytesIO(long_tag + b"PK\x03\x04" + b"\x00" * 64))


def test_the_tag_size_counts_a_footer_when_the_flag_says_so() -> None:
    body = b"\x00" * 16
    footer = b"3DI" + b"\x04\x00\x10" + struct.pack(">I", len(body))
    data = id3(body, flags=0x10) + footer + FRAME + b"\x00" * 64
    assert sniff(io.BytesIO(data)).mime == "audio/mpeg"
