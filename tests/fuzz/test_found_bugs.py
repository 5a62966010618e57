"""Regressions for what the mutation corpus found, each through HTTP with the real app and engine (the unit
tests beside the fixes: tests/unit/test_orientation.py, tests/unit/test_fingerprintable.py)."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from tests.fuzz.inputs import SIGN_FORM

NOT_TIFF = b"\xd3\x1e\xafv\xdbU\x90\xfb" * 4


def png(exif: bytes | None) -> bytes:
    out = io.BytesIO()
    noise = random.Random(8).randbytes(256 * 256 * 3)  # texture the watermark can hide in
    picture = Image.frombytes("RGB", (256, 256), noise)
    picture.save(out, format="PNG", **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def test_a_png_with_a_malformed_exif_chunk_is_verified_and_signed(
    client: TestClient, auth: dict[str, str]
) -> None:
    """Was a 500 (Pillow's exif_transpose raised SyntaxError in recovery and in the watermark)."""
    assert b"eXIf" in png(NOT_TIFF)
    files = (png(NOT_TIFF), png(None))  # the hostile file, and the same picture without EXIF
    for data in files:
        verified = client.post("/v1/verify", files={"file": ("x.png", data)})
        assert verified.status_code == 200, verified.text
        assert verified.json()["outcome"] == "none"
        assert verified.json()["recovery"]["status"] == "not_found"  # searched: the picture was decoded
    for data in files:
        signed = client.post("/v1/sign", files={"file": ("x.png", data)}, data=SIGN_FORM, headers=auth)
        assert signed.status_code == 200, signed.text
        assert signed.headers["Hallmark-Watermark"].startswith("embedded; id=")


def wav_declaring(rate: int, interop_dir: Path) -> bytes:
    data = bytearray((interop_dir / "sample1.wav").read_bytes())
    at = data.find(b"fmt ")
    struct.pack_into("<I", data, at + 12, rate)
    return bytes(data)


def test_a_wav_declaring_two_gigahertz_is_not_handed_to_fpcalc(client: TestClient, interop_dir: Path) -> None:
    """Was 20-45 s of fpcalc per 17 KB request (its resampler's work grows with the declared rate)."""
    hostile = client.post("/v1/verify", files={"file": ("x.wav", wav_declaring(2_046_824_256, interop_dir))})
    assert hostile.status_code == 200, hostile.text
    recovery = hostile.json()["recovery"]
    assert recovery["status"] == "not_searched"
    assert "media-implausible" in recovery["reason"]  # refused before fpcalc ran
    # The negative control: the real file at its real rate is fingerprinted and looked up.
    real = client.post("/v1/verify", files={"file": ("x.wav", wav_declaring(8000, interop_dir))})
    assert real.status_code == 200, real.text
    assert real.json()["recovery"]["status"] == "not_found"


def test_signing_such_a_wav_goes_on_without_its_code(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    data = wav_declaring(2_046_824_256, interop_dir)
    signed = client.post("/v1/sign", files={"file": ("x.wav", data)}, data=SIGN_FORM, headers=auth)
    assert signed.status_code == 200, signed.text
    assert signed.headers["Hallmark-ISCC"] == "none; reason=media-implausible"
