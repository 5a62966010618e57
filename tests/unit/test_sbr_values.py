"""Soft-binding query values (base64 in each algorithm's format) and the active-manifest-only store."""

from __future__ import annotations

import base64
import struct

import iscc_core
import pytest

from signing import InvalidQueryError, MalformedAssetError, active_manifest_only, iscc_code
from signing.softbinding.resolution import iscc_value, similarity, supported, watermark_id_value

BODY = bytes.fromhex("0123456789abcdef")
CODE = iscc_code(BODY)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_watermark_id_as_bytes_or_hex_text() -> None:
    assert watermark_id_value(b64(bytes.fromhex("00a1b2c3d4e5"))) == "00a1b2c3d4e5"
    assert watermark_id_value(b64(b"00A1B2C3D4E5")) == "00a1b2c3d4e5"
    for bad in (b64(b"\x00" * 5), b64(b"00a1b2c3d4eg"), "***"):
        with pytest.raises(InvalidQueryError):
            watermark_id_value(bad)


def test_iscc_as_text_as_unit_and_as_longer_code() -> None:
    assert iscc_value(b64(CODE.encode())) == CODE
    assert iscc_value(b64(iscc_core.decode_base32(CODE.removeprefix("ISCC:")))) == CODE
    long_code = "ISCC:" + iscc_core.encode_component(
        iscc_core.MT.CONTENT, iscc_core.ST_CC.IMAGE, iscc_core.VS.V0, 256, BODY + bytes(24)
    )
    assert iscc_value(b64(long_code.encode())) == CODE  # cut to its first 64 bits
    meta = iscc_core.gen_meta_code_v0("a title")["iscc"]
    seq = b"".join(iscc_core.decode_base32(c.removeprefix("ISCC:")) for c in (meta, CODE))
    assert iscc_value(b64(seq)) == CODE  # an ISCC-SEQ: the image unit is picked out
    for bad in (b64(meta.encode()), b64(b"ISCC:NOPE"), b64(b"\x00\x01")):
        with pytest.raises(InvalidQueryError):
            iscc_value(bad)


def test_unsupported_algorithm_is_refused() -> None:
    assert supported("io.iscc.v0") == "io.iscc.v0"
    with pytest.raises(InvalidQueryError):
        supported("io.iscc.v1")


def test_similarity_is_the_nearer_fingerprint_in_per_cent() -> None:
    assert similarity(0, None) == 100
    assert similarity(16, None) == 75
    assert similarity(16, 0) == 100
    assert similarity(None, None) == 0


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_active_manifest_only_keeps_the_description_and_the_last_manifest() -> None:
    description = box(b"jumd", b"c2pa-description")
    first, last = box(b"jumb", b"parent manifest"), box(b"jumb", b"active manifest")
    single = box(b"jumb", description + last)
    assert active_manifest_only(single) == single
    assert active_manifest_only(box(b"jumb", description + first + last)) == single
    for bad in (
        b"",
        box(b"free", b""),
        box(b"jumb", description),
        box(b"jumb", description)[:-1] + b"\xff" * 9,
    ):
        with pytest.raises(MalformedAssetError):
            active_manifest_only(bad)
