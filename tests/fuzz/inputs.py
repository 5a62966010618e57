"""Small unsigned inputs of the five fuzzed formats, and signing them through a Hallmark HTTP API.

Made in memory (Pillow, the `wave` module, the test PDF writer) except the MP4, which needs ffmpeg (a missing
ffmpeg fails the test with the install hint, see `tests.media_samples`). Small files keep each verify in the
milliseconds, so a thousand mutants fit in the fast tier.
"""

from __future__ import annotations

import io
import math
import struct
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from tests.media_samples import make_mp4, pdf_with_text

SIGN_FORM = {"model_name": "fuzz-diffusion", "model_version": "1.0"}


def _picture() -> Image.Image:
    image = Image.new("RGB", (96, 64))
    image.putdata(
        [((x * 7) % 256, (y * 11) % 256, ((x + y) * 5) % 256) for y in range(64) for x in range(96)]
    )
    return image


def jpeg() -> bytes:
    out = io.BytesIO()
    _picture().save(out, format="JPEG", quality=85)
    return out.getvalue()


def png() -> bytes:
    out = io.BytesIO()
    _picture().save(out, format="PNG")
    return out.getvalue()


def wav() -> bytes:
    """A quarter second of a 440 Hz tone, 8 kHz mono 16-bit."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(i / 8000 * 2 * math.pi * 440))) for i in range(2000)
            )
        )
    return out.getvalue()


def mp4() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        make_mp4(path)
        return path.read_bytes()


def pdf() -> bytes:
    return pdf_with_text(("Hallmark fuzz sample",))


UNSIGNED: dict[str, Callable[[], bytes]] = {"jpeg": jpeg, "png": png, "mp4": mp4, "wav": wav, "pdf": pdf}


def sign_all(post: Callable[..., Any], token: str) -> dict[str, bytes]:
    """Each format signed through POST /v1/sign (`post` is a TestClient's or an httpx client's `post`)."""
    signed = {}
    for fmt, make in UNSIGNED.items():
        response = post(
            "/v1/sign",
            files={"file": (f"input.{fmt}", make())},
            data=SIGN_FORM,
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code != 200:
            raise RuntimeError(f"signing the {fmt} input failed: {response.status_code} {response.text}")
        signed[fmt] = response.content
    return signed
