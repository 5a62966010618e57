"""The container pre-scan (signing/structure.py): storms and deep nesting refused, real files pass."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

import signing
from tests.fixtures import INTEROP
from tests.storms import FTYP, box_storm_mp4, chunk_storm_png

LIMITS = signing.StructureLimits(max_boxes=100, max_depth=8, max_chunks=100, max_segments=50)


def refused(data: bytes, limits: signing.StructureLimits = LIMITS) -> str | None:
    stream = io.BytesIO(data)
    try:
        signing.check_structure(stream, limits)
    except signing.AssetTooComplexError as exc:
        assert stream.tell() == 0
        return str(exc.details["structure"])
    assert stream.tell() == 0
    return None


def nested_boxes(depth: int) -> bytes:
    inner = b""
    for _ in range(depth):
        inner = struct.pack(">I4s", 8 + len(inner), b"moov") + inner
    return FTYP + inner


def riff_nesting(depth: int) -> bytes:
    inner = b"WAVE"
    for _ in range(depth):
        inner = b"LIST" + struct.pack("<I", len(inner) + 4) + b"INFO" + inner
    return b"RIFF" + struct.pack("<I", len(inner) + 4) + b"WAVE" + inner


def jpeg_segments(count: int) -> bytes:
    app = b"\xff\xe1" + struct.pack(">H", 4) + b"ab"
    return b"\xff\xd8" + app * count + b"\xff\xd9"


def test_box_storm_is_refused_and_a_few_boxes_pass() -> None:
    assert refused(box_storm_mp4(99)) is None  # with the ftyp box: 100
    assert refused(box_storm_mp4(100)) == "boxes"


def test_nested_boxes_are_refused_past_the_depth() -> None:
    assert refused(nested_boxes(7)) is None  # ftyp at depth 1, moov levels 1..7
    assert refused(nested_boxes(9)) == "levels of nested boxes"


def test_png_chunk_storm_is_refused() -> None:
    assert refused(chunk_storm_png(90)) is None
    assert refused(chunk_storm_png(200)) == "PNG chunks"


def test_riff_nesting_is_refused() -> None:
    assert refused(riff_nesting(6)) is None
    assert refused(riff_nesting(20)) == "levels of nested chunks"


def test_jpeg_segment_storm_is_refused() -> None:
    assert refused(jpeg_segments(40)) is None
    assert refused(jpeg_segments(60)) == "JPEG segments"


@pytest.mark.parametrize(
    "name", sorted(p.name for p in INTEROP.iterdir() if p.suffix != ".tsv" and p.suffix != ".md")
)
def test_every_interop_file_passes_the_default_limits_but_the_two_bombs(name: str) -> None:
    data = (Path(INTEROP) / name).read_bytes()
    expected = {
        "nested_moov_1000.mp4": "levels of nested boxes",
        "riff_bomb_1000.wav": "levels of nested chunks",
    }
    assert refused(data, signing.StructureLimits()) == expected.get(name)
