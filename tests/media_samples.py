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

FFMPEG_HINT = "ffmpeg is not installed: run `make test-deps` (installs Debian's ffmpeg)."
HEIF_HINT = (
    "pillow-heif is not installed: run `make install` "
    "(or `.venv/bin/pip install pillow-heif==1.8.1`) to generate and decode HEIC samples."
)
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


def make_heic(path: Path) -> None:
    register_heif()
    Image.new("RGB", (64, 48), (40, 160, 90)).save(path, format="HEIF", quality=50)


def make_pdf(path: Path) -> None:
    Image.new("RGB", (32, 24), (200, 40, 40)).save(path, format="PDF")


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


def decode_avif(path: Path) -> str | None:
    """None when this Pillow build has no AVIF codec (nothing to check with)."""
    if not features.check("avif"):
        return None
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


def decode_pdf(path: Path) -> None:
    """No PDF parser is a dependency (pypdf is not installed): check the file's framing only."""
    data = path.read_bytes()
    assert data.startswith(b"%PDF-"), "output does not start with %PDF-"
    assert data.rstrip().endswith(b"%%EOF"), "output does not end with %%EOF"


# --- the catalogue ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    id: str  # test id
    mime: str  # the media type Hallmark must identify
    interop: str | None = None  # file name in the interop corpus
    make: Callable[[Path], None] | None = None  # generator, when not from the corpus
    suffix: str = ""
    decode: Callable[[Path], str | None] | None = None
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
        self._decoded: dict[str, str | None] = {}

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

    def decoded(self, sample: Sample | str) -> str | None:
        """The digest of the unsigned sample's decoded content (see `Sample.decode`), computed once."""
        s = BY_ID[sample] if isinstance(sample, str) else sample
        if s.id not in self._decoded:
            self._decoded[s.id] = s.decode(self.path(s)) if s.decode else None
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
