"""completeness.check_complete on hand-made files: whole ones pass, cut or damaged ones are refused."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from signing import media as m
from signing.completeness import check_complete
from signing.completeness_audio import mp3_frame_length
from signing.errors import IncompleteAssetError
from signing.models import MediaType
from signing.tiny_png import tiny_png

MP3_FRAME = b"\xff\xfb\x90\x64" + bytes(413)  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz: 417 bytes


def passes(media: MediaType, data: bytes) -> None:
    stream = io.BytesIO(data)
    check_complete(media, stream)
    assert stream.tell() == 0


def refused(media: MediaType, data: bytes) -> str:
    with pytest.raises(IncompleteAssetError) as caught:
        check_complete(media, io.BytesIO(data))
    diag = caught.value.diagnostics()
    assert diag["code"] == "incomplete-asset"
    assert diag["details"]["media_type"] == media.mime
    assert diag["message"].startswith(f"The {media.extension.upper()} file is incomplete or damaged: ")
    problem: str = diag["details"]["problem"]
    return problem


def box(kind: bytes, body: bytes = b"") -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def pillow(fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 90, 30)).save(out, format=fmt, **options)
    return out.getvalue()


# --- ISO-BMFF -------------------------------------------------------------------------------------------

MP4 = box(b"ftyp", b"isom\x00\x00\x02\x00isom") + box(b"moov", bytes(20)) + box(b"mdat", bytes(100))


def test_bmff_boxes_that_tile_the_file_pass() -> None:
    passes(m.MP4, MP4)
    passes(m.MP4, MP4[:-108] + b"\x00\x00\x00\x00mdat" + bytes(100))  # size 0: to the end of the file
    passes(m.MP4, MP4[:-108] + struct.pack(">IIQ", 1, 0x6D646174, 116) + bytes(100))  # 64-bit size


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (MP4[:-1], "the 'mdat' box at byte 48 runs past the end"),
        (MP4 + b"\x00\x00\x00", "it ends inside a box header at byte 156"),
        (MP4 + struct.pack(">I", 4) + b"free", "the box at byte 156 has an impossible size"),
        (box(b"ftyp", b"isom\x00\x00\x02\x00isom") + box(b"mdat", bytes(10)), "it has no 'moov' box"),
    ],
    ids=["cut", "trailing-bytes", "tiny-box", "no-moov"],
)
def test_bmff_overrun_or_leftovers_are_refused(data: bytes, problem: str) -> None:
    assert refused(m.MP4, data) == problem


# --- RIFF -----------------------------------------------------------------------------------------------


def riff(*chunks: bytes, declared: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if declared is None else declared) + body


def chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


WAV = riff(chunk(b"fmt ", bytes(16)), chunk(b"data", bytes(7)))


def test_riff_with_its_chunks_passes() -> None:
    passes(m.WAV, WAV)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (WAV[:-4], f"it declares {len(WAV)} bytes but has {len(WAV) - 4}"),
        (riff(chunk(b"fmt ", bytes(16)), b"data" + struct.pack("<I", 99) + bytes(8)), "runs past the end"),
        (riff(chunk(b"fmt ", bytes(16))), "it lacks its 'fmt ' or 'data' chunk"),
    ],
    ids=["riff-size", "chunk-overrun", "no-data"],
)
def test_riff_cut_or_incomplete_is_refused(data: bytes, problem: str) -> None:
    assert problem in refused(m.WAV, data)


# --- PNG, JPEG, GIF, TIFF ------------------------------------------------------------------------------


def test_png_chunks_and_pixels() -> None:
    png = tiny_png()
    passes(m.PNG, png)
    passes(m.PNG, png + b"trailing bytes after IEND")
    assert refused(m.PNG, png[:-12]) == "it ends before its IEND chunk"
    idat = png.index(b"IDAT")
    broken = png[: idat + 6] + bytes([png[idat + 6] ^ 1]) + png[idat + 7 :]
    assert refused(m.PNG, broken) == f"the 'IDAT' chunk at byte {idat - 4} fails its checksum"
    # A chunk walk that is whole but whose image data is not: the pixels must decode.
    empty_idat = struct.pack(">I", 0) + b"IDAT" + struct.pack(">I", zlib.crc32(b"IDAT"))
    start, end = idat - 4, idat + 8 + int.from_bytes(png[idat - 4 : idat], "big")
    assert refused(m.PNG, png[:start] + empty_idat + png[end:]) == "its pixels do not decode completely"


def test_jpeg_needs_its_end_of_image_marker() -> None:
    jpeg = pillow("JPEG", quality=80)
    passes(m.JPEG, jpeg)
    passes(m.JPEG, jpeg + b"appended data after EOI")
    assert refused(m.JPEG, jpeg[:-2]) == "its image data ends before the end-of-image marker"
    assert "runs past the end" in refused(m.JPEG, jpeg[:40])
    progressive = pillow("JPEG", progressive=True)
    passes(m.JPEG, progressive)
    assert refused(m.JPEG, progressive[: len(progressive) * 2 // 3])


def test_gif_needs_its_trailer() -> None:
    gif = pillow("GIF")
    passes(m.GIF, gif)
    assert refused(m.GIF, gif[:-1]) == "it ends before its trailer"
    assert refused(m.GIF, gif[: len(gif) - 8]) == "its image data ends before the trailer"


def test_tiff_values_and_strips_lie_inside_the_file() -> None:
    tiff = pillow("TIFF")
    passes(m.TIFF, tiff)
    assert refused(m.TIFF, tiff[:100])
    assert refused(m.TIFF, tiff[:-10])


# --- audio ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "length"),
    [
        (b"\xff\xfb\x90\x64", 417),  # MPEG-1 Layer III 128 kbit/s 44.1 kHz
        (b"\xff\xfb\x92\x64", 418),  # the same, padded
        (b"\xff\xf3\x48\x64", 144),  # MPEG-2 Layer III 32 kbit/s 16 kHz: 72 * 32000 / 16000
        (b"\xff\xfd\x90\x64", 522),  # MPEG-1 Layer II 160 kbit/s: 144 * 160000 / 44100
        (b"\xff\xff\x90\x64", 78 * 4),  # MPEG-1 Layer I 288 kbit/s: 12 * 288000 / 44100 slots of 4
        (b"\xff\xfb\x00\x64", None),  # free format: no length to walk
        (b"\xff\xfb\xf0\x64", None),  # bad bitrate index
        (b"\xff\xeb\x90\x64", None),  # reserved version
        (b"ID3\x04", None),
    ],
)
def test_mp3_frame_length(header: bytes, length: int | None) -> None:
    assert mp3_frame_length(header) == length


def id3(size: int) -> bytes:
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x04\x00\x00" + syncsafe + bytes(size)


def test_mp3_frames_tile_the_file() -> None:
    passes(m.MP3, MP3_FRAME * 3)
    passes(m.MP3, id3(30) + MP3_FRAME * 3)
    passes(m.MP3, MP3_FRAME * 3 + b"TAG" + bytes(125))  # an ID3v1 tag after the last frame
    assert refused(m.MP3, MP3_FRAME * 3 + MP3_FRAME[:200]) == "its last audio frame (byte 1251) is cut short"
    assert refused(m.MP3, id3(30) + MP3_FRAME[:100]) == "its last audio frame (byte 40) is cut short"
    assert refused(m.MP3, MP3_FRAME + b"junk" * 10) == "it has no audio frame where one must be (byte 417)"
    assert refused(m.MP3, id3(30)) == "it has no audio frames"
    assert refused(m.MP3, id3(30)[:20]) == "its ID3 tag runs past the end"


# --- documents ------------------------------------------------------------------------------------------

PDF_BODY = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
XREF = len(PDF_BODY)
PDF = PDF_BODY + b"xref\n0 2\ntrailer\n<< /Root 1 0 R >>\nstartxref\n" + str(XREF).encode() + b"\n%%EOF\n"


def test_pdf_ends_with_a_pointer_to_its_cross_reference() -> None:
    passes(m.PDF, PDF)
    passes(m.PDF, PDF.replace(b"\n" + str(XREF).encode() + b"\n", b"\n9\n"))  # an object: an xref stream
    assert "%%EOF" in refused(m.PDF, PDF[:-7])
    assert "%%EOF" in refused(m.PDF, PDF + b"more body after the end\n")
    wrong = PDF.replace(b"\n" + str(XREF).encode() + b"\n", b"\n3\n")
    assert refused(m.PDF, wrong) == "its cross-reference pointer points at no cross-reference"


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><rect width="4"/></svg>\n'


def test_svg_parses_to_its_last_tag() -> None:
    passes(m.SVG, SVG)
    assert refused(m.SVG, SVG[: len(SVG) // 2]) == "its XML is not complete"
    assert (
        refused(m.SVG, b'<svg xmlns="http://www.w3.org/2000/svg"></svg><svg/>') == "its XML is not complete"
    )
    assert refused(m.SVG, b"<html><svg/></html>") == "its root element is not <svg>"
