"""Unsigned media samples for signing round trips, and the standard decoders that check the outputs.

Samples come from the interop corpus (real files from other implementations' test fixtures) or are
generated on the fly into a temporary directory: nothing binary is committed. Generators that need a
system tool or an optional package raise `MissingToolError` with the command that installs it, so a
test fails with a clear message instead of silently skipping.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image, features
from pypdf import PdfReader

FFMPEG_HINT = "ffmpeg is not installed: run `make test-deps` (installs Debian's ffmpeg)."
HEIF_HINT = (
    "pillow-heif is not installed: run `make install` "
    "(or `.venv/bin/pip install pillow-heif==1.8.1`) to generate and decode HEIC samples."
)
AVIF_HINT = "the pinned Pillow wheel includes libavif"
TIMEOUT_S = 60


T = TypeVar("T")


class MissingToolError(RuntimeError):
    """A tool or package needed to make or decode a sample is missing; the message says how to install it."""


def fail_if_missing_tool(call: Callable[[], T]) -> T:
    """Run `call`; a missing tool fails the test with the install hint (a failure, never a skip)."""
    try:
        return call()
    except MissingToolError as exc:
        hint = str(exc)
    pytest.fail(hint, pytrace=False)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- tools ------------------------------------------------------------------------------------------


def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise MissingToolError(FFMPEG_HINT)
    return path


def _run_ffmpeg(*args: str) -> None:
    cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr}")


def register_heif() -> None:
    """Register pillow-heif's HEIF/HEIC opener and saver with Pillow."""
    try:
        import pillow_heif  # optional until it is a pinned dev dependency
    except ImportError:
        raise MissingToolError(HEIF_HINT) from None
    pillow_heif.register_heif_opener()


# --- generators (one second, tiny frames: a few KB each) ---------------------------------------------

_VIDEO = ("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1")
_AUDIO = ("-f", "lavfi", "-i", "sine=frequency=440:duration=1:sample_rate=22050")
_H264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
_AAC = ("-c:a", "aac", "-b:a", "32k")


def make_mp4(path: Path) -> None:
    _run_ffmpeg(*_VIDEO, *_AUDIO, *_H264, *_AAC, "-shortest", "-f", "mp4", str(path))


def make_mov(path: Path) -> None:
    _run_ffmpeg(*_VIDEO, *_AUDIO, *_H264, *_AAC, "-shortest", "-f", "mov", str(path))


def make_m4a(path: Path) -> None:
    # The "ipod" muxer writes the M4A major brand.
    _run_ffmpeg(*_AUDIO, *_AAC, "-f", "ipod", str(path))


def make_flac(path: Path) -> None:
    _run_ffmpeg(*_AUDIO, "-c:a", "flac", "-f", "flac", str(path))


def transcode(source: Path, path: Path, *options: str) -> None:
    """`ffmpeg -i source <options> path`: a clip, a re-encode, a rescale."""
    _run_ffmpeg("-i", str(source), *options, str(path))


def generate(path: Path, source: str, *options: str) -> None:
    """Media from one of ffmpeg's lavfi sources (e.g. `anullsrc`, `color=c=black`)."""
    _run_ffmpeg("-f", "lavfi", "-i", source, *options, str(path))


def make_photo_video(
    path: Path, photo: Path, *, seconds: int, size: str, codec: tuple[str, ...] = _H264
) -> None:
    """A slow zoom into a still photo: natural, moving pictures without a video file in the repository."""
    width, height = size.split("x")
    zoom = f"scale={width}:{height},zoompan=z='min(zoom+0.0015,1.5)':d={25 * seconds}:s={size}:fps=25"
    _run_ffmpeg("-loop", "1", "-i", str(photo), "-vf", zoom, "-t", str(seconds), *codec, str(path))


def make_heic(path: Path) -> None:
    register_heif()
    Image.new("RGB", (64, 48), (40, 160, 90)).save(path, format="HEIF", quality=50)


PDF_PAGES = ("Hallmark test sample, page one", "Hallmark test sample, page two")


def pdf_with_text(pages: tuple[str, ...]) -> bytes:
    """A minimal PDF, one line of Helvetica text per page, with a correct cross-reference table."""
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    font = 3 + 2 * n
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode()]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def make_pdf(path: Path) -> None:
    path.write_bytes(pdf_with_text(PDF_PAGES))


SVG_TEXT = """<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48" viewBox="0 0 64 48">
  <title>Hallmark test sample</title>
  <rect width="64" height="48" fill="#2a9d8f"/>
  <circle cx="32" cy="24" r="12" fill="#e9c46a"/>
</svg>
"""


def make_svg(path: Path) -> None:
    path.write_text(SVG_TEXT, encoding="utf-8")


# --- decoders: each returns a digest of the decoded content, or raises AssertionError ----------------


def decode_raster(path: Path) -> str:
    """Decode with Pillow; the digest covers mode, size and pixels of the first frame."""
    with Image.open(path) as image:
        image.load()
        return sha256_bytes(f"{image.mode}{image.size}".encode() + image.tobytes())


def decode_heic(path: Path) -> str:
    register_heif()
    return decode_raster(path)


def decode_avif(path: Path) -> str:
    if not features.check("avif"):
        raise MissingToolError(f"this Pillow build has no AVIF codec: run `make install` ({AVIF_HINT})")
    return decode_raster(path)


def decode_ffmpeg(path: Path) -> str:
    """Decode every stream with ffmpeg: exit code 0, nothing on stderr; the digest is ffmpeg's MD5 of it."""
    cmd = [
        ffmpeg(),
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-map",
        "0",
        "-f",
        "md5",
        "-",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, f"ffmpeg could not decode {path.name} ({done.returncode}): {done.stderr}"
    assert done.stderr == "", f"ffmpeg complained while decoding {path.name}: {done.stderr}"
    return done.stdout.strip()


def decode_svg(path: Path) -> str:
    root = ET.fromstring(path.read_bytes())
    assert root.tag in ("svg", "{http://www.w3.org/2000/svg}svg"), f"root element is {root.tag!r}"
    # The drawing itself: every element except the <metadata> the engine adds for the manifest.
    drawing = [(el.tag, sorted(el.attrib.items())) for el in root.iter() if not el.tag.endswith("metadata")]
    return sha256_bytes(repr([d for d in drawing if "c2pa" not in d[0]]).encode())


def decode_pdf(path: Path) -> str:
    """Parse with pypdf (strict: a malformed cross-reference or object fails); the digest covers the page
    count and each page's box and extracted text."""
    reader = PdfReader(path, strict=True)
    pages = [(tuple(float(v) for v in page.mediabox), page.extract_text()) for page in reader.pages]
    assert pages, f"{path.name} has no pages"
    return sha256_bytes(repr(pages).encode())


# --- the catalogue ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    id: str  # test id
    mime: str  # the media type Hallmark must identify
    interop: str | None = None  # file name in the interop corpus
    make: Callable[[Path], None] | None = None  # generator, when not from the corpus
    suffix: str = ""
    decode: Callable[[Path], str] | None = None
    needs_ffmpeg: bool = False


SAMPLES: tuple[Sample, ...] = (
    Sample("jpeg", "image/jpeg", interop="no_manifest.jpg", decode=decode_raster),
    Sample("png", "image/png", interop="sample1.png", decode=decode_raster),
    Sample("png-libpng", "image/png", interop="libpng-test.png", decode=decode_raster),
    Sample("webp", "image/webp", interop="sample1.webp", decode=decode_raster),
    Sample("gif", "image/gif", interop="sample1.gif", decode=decode_raster),
    Sample("tiff", "image/tiff", interop="test.tiff", decode=decode_raster),
    Sample("avif", "image/avif", interop="sample1.avif", decode=decode_avif),
    Sample("heic", "image/heic", make=make_heic, suffix=".heic", decode=decode_heic),
    Sample("mp4", "video/mp4", make=make_mp4, suffix=".mp4", decode=decode_ffmpeg, needs_ffmpeg=True),
    Sample("mov", "video/quicktime", make=make_mov, suffix=".mov", decode=decode_ffmpeg, needs_ffmpeg=True),
    Sample("m4a", "audio/mp4", make=make_m4a, suffix=".m4a", decode=decode_ffmpeg, needs_ffmpeg=True),
    Sample("wav", "audio/wav", interop="sample1.wav", decode=decode_ffmpeg, needs_ffmpeg=True),
    Sample("mp3", "audio/mpeg", interop="sample1.mp3", decode=decode_ffmpeg, needs_ffmpeg=True),
    Sample("flac", "audio/flac", make=make_flac, suffix=".flac", decode=decode_ffmpeg, needs_ffmpeg=True),
    Sample("svg", "image/svg+xml", make=make_svg, suffix=".svg", decode=decode_svg),
    Sample("pdf", "application/pdf", make=make_pdf, suffix=".pdf", decode=decode_pdf),
)
BY_ID: dict[str, Sample] = {s.id: s for s in SAMPLES}


class SampleStore:
    """Materializes samples on first use into one directory and remembers them (one per test session)."""

    def __init__(self, interop_dir: Path, work_dir: Path):
        self.interop_dir = interop_dir
        self.work_dir = work_dir
        self._paths: dict[str, Path] = {}
        self._decoded: dict[str, str] = {}

    def path(self, sample: Sample | str) -> Path:
        s = BY_ID[sample] if isinstance(sample, str) else sample
        if s.id not in self._paths:
            if s.interop is not None:
                path = self.interop_dir / s.interop
                if not path.is_file():
                    raise FileNotFoundError(f"interop sample {path} is missing")
            else:
                assert s.make is not None
                path = self.work_dir / f"{s.id}{s.suffix}"
                s.make(path)
            self._paths[s.id] = path
        return self._paths[s.id]

    def data(self, sample: Sample | str) -> bytes:
        return self.path(sample).read_bytes()

    def decoded(self, sample: Sample | str) -> str:
        """The digest of the unsigned sample's decoded content (see `Sample.decode`), computed once."""
        s = BY_ID[sample] if isinstance(sample, str) else sample
        assert s.decode is not None, f"sample {s.id} has no standard decoder"
        if s.id not in self._decoded:
            self._decoded[s.id] = s.decode(self.path(s))
        return self._decoded[s.id]


def flip_jpeg_scan_byte(data: bytes) -> bytes:
    """Flip one bit of a byte in the middle of a JPEG's entropy-coded image data (the first scan).

    Walks the marker segments (so APP11 manifest segments and tables are skipped), then picks a byte that
    is neither a marker nor a stuffed byte and flips its low bit, which keeps the file structurally valid.
    """
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    pos = 2
    while pos + 4 <= len(data):
        assert data[pos] == 0xFF, f"marker expected at offset {pos}"
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data follows its header
            start = pos + 2 + length
            end = data.index(b"\xff\xd9", start)
            middle = (start + end) // 2
            for i in range(middle, end):
                if data[i] not in (0x00, 0xFE, 0xFF) and data[i - 1] != 0xFF:
                    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
            break
        pos += 2 + length
    raise AssertionError("no entropy-coded image data found")
