"""ISCC codes of three kinds (image, audio, video): each round-trips, nothing else is accepted, a code is only
ever compared with a code of its own kind, and the soft-binding assertion carries any of the three. The
feature parsers refuse what a tool could not have printed, and degenerate features make no code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import iscc_core
import pytest

import signing
from signing import (
    SOFT_BINDING,
    IsccKind,
    MediaFingerprintError,
    RepositoryEntry,
    iscc_body,
    iscc_code,
    iscc_distance,
    iscc_unit,
)

BODY = bytes.fromhex("5a2fc6b2c0a9a4e1")
CODES = {kind: iscc_code(BODY, kind) for kind in IsccKind}


def flip(body: bytes, bits: int) -> bytes:
    return (int.from_bytes(body, "big") ^ ((1 << bits) - 1)).to_bytes(len(body), "big")


def test_each_kind_round_trips_with_its_own_prefix() -> None:
    assert {kind: code[:7] for kind, code in CODES.items()} == {
        IsccKind.IMAGE: "ISCC:EE",
        IsccKind.AUDIO: "ISCC:EI",
        IsccKind.VIDEO: "ISCC:EM",
    }
    for kind, code in CODES.items():
        assert iscc_unit(code) == signing.IsccUnit(kind, BODY)
        assert iscc_body(code, kind) == BODY


def test_iscc_body_keeps_to_images_unless_told_otherwise() -> None:
    assert iscc_body(CODES[IsccKind.IMAGE]) == BODY  # negative control
    for kind in (IsccKind.AUDIO, IsccKind.VIDEO):
        with pytest.raises(ValueError, match="ISCC"):
            iscc_body(CODES[kind])


@pytest.mark.parametrize(
    "other",
    [
        "ISCC:" + iscc_core.encode_component(iscc_core.MT.CONTENT, iscc_core.ST_CC.TEXT, 0, 64, BODY),
        "ISCC:" + iscc_core.encode_component(iscc_core.MT.CONTENT, iscc_core.ST_CC.MIXED, 0, 64, BODY),
        "ISCC:" + iscc_core.encode_component(iscc_core.MT.CONTENT, iscc_core.ST_CC.AUDIO, 0, 128, BODY * 2),
        "ISCC:" + iscc_core.encode_component(iscc_core.MT.META, iscc_core.ST.NONE, 0, 64, BODY),
        "ISCC:" + iscc_core.encode_component(iscc_core.MT.DATA, iscc_core.ST.NONE, 0, 64, BODY),
        CODES[IsccKind.AUDIO].lower(),
        CODES[IsccKind.AUDIO][5:],
        "",
    ],
)
def test_only_64_bit_image_audio_or_video_content_codes_are_accepted(other: str) -> None:
    with pytest.raises(ValueError, match="ISCC"):
        iscc_unit(other)
    with pytest.raises(ValueError, match="ISCC"):
        signing.iscc_soft_binding(other)
    assert signing.declared_bindings(manifest(binding(other))).iscc is None


def test_distances_are_only_taken_within_one_kind() -> None:
    near = {kind: iscc_code(flip(BODY, 3), kind) for kind in IsccKind}
    for kind in IsccKind:
        assert iscc_distance(CODES[kind], near[kind]) == 3
        for other in IsccKind:
            if other != kind:
                assert iscc_distance(CODES[kind], CODES[other]) is None
    assert iscc_distance(CODES[IsccKind.AUDIO], "ISCC:NOTACODE") is None


def test_thresholds_are_per_kind() -> None:
    assert signing.iscc_max_distance(CODES[IsccKind.IMAGE]) == signing.ISCC_MAX_DISTANCE == 12
    assert signing.iscc_max_distance(CODES[IsccKind.AUDIO]) == 6
    assert signing.iscc_max_distance(CODES[IsccKind.VIDEO]) == 12


def manifest(*assertions: dict[str, Any]) -> dict[str, Any]:
    return {"assertions": list(assertions)}


def binding(code: str) -> dict[str, Any]:
    return {"label": SOFT_BINDING, "data": {"alg": "io.iscc.v0", "blocks": [{"scope": {}, "value": code}]}}


@pytest.mark.parametrize("kind", [IsccKind.AUDIO, IsccKind.VIDEO])
def test_audio_and_video_codes_are_declared_and_read_back(kind: IsccKind) -> None:
    assertion = signing.iscc_assertion(CODES[kind])
    assert assertion["label"] == SOFT_BINDING
    assert assertion["data"]["blocks"] == [{"scope": {}, "value": CODES[kind]}]
    assert kind.value in assertion["data"]["name"]
    assert signing.declared_bindings(manifest(assertion)).iscc == CODES[kind]


def entry(code: str) -> RepositoryEntry:
    return RepositoryEntry(
        manifest_id="urn:c2pa:x",
        manifest_store=b"store",
        media_type="audio/wav",
        watermark_id=None,
        iscc=code,
        pdq=None,
        key_id="k",
        created_at=datetime(2026, 12, 4, tzinfo=UTC),
    )


def test_a_code_never_matches_an_entry_of_another_kind_with_the_same_body() -> None:
    audio_entry = entry(CODES[IsccKind.AUDIO])
    assert signing.fingerprint_match(audio_entry, CODES[IsccKind.IMAGE], None) is None
    assert signing.fingerprint_match(audio_entry, CODES[IsccKind.VIDEO], None) is None
    match = signing.fingerprint_match(audio_entry, CODES[IsccKind.AUDIO], None)  # negative control
    assert match is not None
    assert match.iscc_distance == 0


def test_the_audio_threshold_decides_audio_matches() -> None:
    audio_entry = entry(CODES[IsccKind.AUDIO])
    at = iscc_code(flip(BODY, 6), IsccKind.AUDIO)
    beyond = iscc_code(flip(BODY, 7), IsccKind.AUDIO)
    match = signing.fingerprint_match(audio_entry, at, None)
    assert match is not None
    assert signing.match_rank(match) == 1.0
    assert signing.fingerprint_match(audio_entry, beyond, None) is None


# --- features -------------------------------------------------------------------------------------------


def test_chromaprint_output_is_parsed_and_checked() -> None:
    assert signing.chromaprint_fingerprint(b'{"duration": 1.5, "fingerprint": [1, -2, 2147483647]}') == [
        1,
        -2,
        2147483647,
    ]
    for bad in (
        b"not json",
        b"[]",
        b'{"duration": 1}',
        b'{"fingerprint": [1.5]}',
        b'{"fingerprint": [true]}',
        b'{"fingerprint": [2147483648]}',
        b'{"fingerprint": "AQAD"}',
    ):
        with pytest.raises(MediaFingerprintError):
            signing.chromaprint_fingerprint(bad)


def test_degenerate_audio_features_make_no_code() -> None:
    steady = [627964279] * 200  # what fpcalc prints for ten seconds of silence
    with pytest.raises(MediaFingerprintError):
        signing.audio_iscc(steady)
    varied = list(range(signing.MIN_AUDIO_DISTINCT_FEATURES))  # negative control
    assert signing.iscc_unit(signing.audio_iscc(varied)).kind is IsccKind.AUDIO


def test_flat_video_frames_make_no_code() -> None:
    with pytest.raises(MediaFingerprintError):
        signing.video_iscc([(1,) * 380] * 25)  # a black video's frames
    with pytest.raises(MediaFingerprintError):
        signing.video_iscc([])
    frame = tuple(i % 3 for i in range(380))  # negative control
    assert signing.iscc_unit(signing.video_iscc([frame])).kind is IsccKind.VIDEO


def signature(frames: list[tuple[int, ...]], *, declared: int | None = None) -> bytes:
    """ffmpeg's binary signature layout, written bit by bit (no segments)."""
    bits = "0" * 129 + format(declared if declared is not None else len(frames), "032b")
    bits += format(25, "016b") + "0" * (1 + 32 + 32) + format(0, "032b") + "0"
    for i, frame in enumerate(frames):
        bits += "0" + format(i, "032b") + format(200, "08b") + "0" * 40
        for k in range(0, 380, 5):
            value = sum(v * 3 ** (4 - j) for j, v in enumerate(frame[k : k + 5]))
            bits += format(value, "08b")
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def test_frame_signatures_are_decoded_from_the_binary_layout() -> None:
    frames = [tuple((i + n) % 3 for i in range(380)) for n in range(3)]
    assert signing.frame_signatures(signature(frames)) == frames


@pytest.mark.parametrize("cut", ["no frames", "more frames declared", "truncated header"])
def test_a_signature_that_does_not_hold_what_it_declares_is_refused(cut: str) -> None:
    frames = [tuple(i % 3 for i in range(380))]
    data = {
        "no frames": signature([]),
        "more frames declared": signature(frames, declared=2),
        "truncated header": signature(frames)[:20],
    }[cut]
    with pytest.raises(MediaFingerprintError):
        signing.frame_signatures(data)
    assert signing.frame_signatures(signature(frames)) == frames  # negative control


def test_the_fast_parse_agrees_with_iscc_core_and_refuses_what_it_does_not_know() -> None:
    """The repository parses every stored code at start through the fast path: it must give exactly what
    iscc-core's general decoder gives, and fall through (not guess) on anything else."""
    import os

    import iscc_core

    from signing.softbinding.iscc import _fast_unit

    for kind in IsccKind:
        for _ in range(200):
            body = os.urandom(8)
            code = iscc_code(body, kind)
            fast = _fast_unit(code)
            assert fast is not None
            assert fast.kind is kind
            assert fast.body == body == bytes(iscc_core.iscc_decode(code)[4])
    assert _fast_unit(iscc_code(bytes(8)).lower()) is None  # not canonical
    assert _fast_unit("ISCC:KACYPXW445FTYNJ3") is None  # a meta code: 10 bytes, another header
    assert _fast_unit("ISCC:EEA") is None
