"""ISCC audio and video codes from the features the tools print (the adapter in app/ runs the tools).

The features are the ones iscc-sdk extracts, so the codes equal the ISCC reference for the same file:
audio, Chromaprint's raw fingerprint (`fpcalc -raw -json -signed -length 0`), a list of signed 32-bit
integers, about eight a second; video, MPEG-7 frame signatures from ffmpeg's `signature` filter at 5
frames a second (`fps=fps=5,signature=format=binary`), one 380-element ternary vector per frame. Output is
parsed defensively (it describes an uploaded file): a wrong shape is a `MediaFingerprintError`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

import iscc_core
import numpy as np

from signing.errors import MediaFingerprintError
from signing.models import MediaType
from signing.softbinding.iscc import ISCC_BITS, IsccKind

# A fingerprint with fewer distinct values is silence or a steady tone (one value, repeated): every such
# file would get one code, so none is made.
MIN_AUDIO_DISTINCT_FEATURES: Final = 8
VIDEO_FPS: Final = 5  # iscc-sdk's default frame rate for the signature

_INT32: Final = range(-(2**31), 2**31)

# Layout of ffmpeg's binary signature (libavfilter/vf_signature.c, `binary_export`), in bits.
_HEADER_SKIP: Final = 129
_SEGMENT_BITS: Final = 4 * 32 + 1 + 5 * 243
_FRAME_BITS: Final = 1 + 32 + 8 + 5 * 8 + 76 * 8  # flag, media time, confidence, words, 76 coded bytes
_FRAME_VECTOR_AT: Final = 1 + 32 + 8 + 5 * 8
VECTOR_LENGTH: Final = 380  # each coded byte holds five ternary values, most significant first
_TERNARY: Final = np.array([[(b // 3 ** (4 - k)) % 3 for k in range(5)] for b in range(256)], dtype=np.uint8)


def iscc_kind_of(media: MediaType) -> IsccKind | None:
    """The ISCC code made from the tools for this media type (images use their pixels, elsewhere)."""
    return {"audio": IsccKind.AUDIO, "video": IsccKind.VIDEO}.get(media.kind)


def chromaprint_fingerprint(output: bytes) -> list[int]:
    """The `fingerprint` array of `fpcalc -raw -json -signed` output."""
    try:
        parsed = json.loads(output)
    except (ValueError, RecursionError):
        raise _unusable("fpcalc", "its output is not JSON") from None
    values = parsed.get("fingerprint") if isinstance(parsed, dict) else None
    if not isinstance(values, list) or not all(type(v) is int and v in _INT32 for v in values):
        raise _unusable("fpcalc", "its output has no list of 32-bit integers")
    return values


def audio_iscc(fingerprint: Sequence[int]) -> str:
    """The canonical 64-bit ISCC audio code of a Chromaprint fingerprint."""
    if len(set(fingerprint)) < MIN_AUDIO_DISTINCT_FEATURES:
        raise MediaFingerprintError(
            "The audio holds too little sound to fingerprint (silence, a steady tone, or under a second).",
            details={"tool": "fpcalc", "distinct_features": len(set(fingerprint))},
        )
    code: str = iscc_core.gen_audio_code_v0(list(fingerprint), bits=ISCC_BITS)["iscc"]
    return code


def frame_signatures(data: bytes) -> list[tuple[int, ...]]:
    """The frame vectors (values 0..2) of an MPEG-7 signature in ffmpeg's binary format."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    frames = _number(bits, _HEADER_SKIP, 32)
    segments = _number(bits, _HEADER_SKIP + 32 + 16 + 1 + 32 + 32, 32)
    start = _HEADER_SKIP + 32 + 16 + 1 + 32 + 32 + 32 + segments * _SEGMENT_BITS + 1
    if frames == 0 or start + frames * _FRAME_BITS > bits.size:
        raise _unusable("ffmpeg", "the signature declares more than it holds, or no frame")
    rows = bits[start : start + frames * _FRAME_BITS].reshape(frames, _FRAME_BITS)
    coded = np.packbits(rows[:, _FRAME_VECTOR_AT:], axis=1)
    vectors = _TERNARY[coded].reshape(frames, VECTOR_LENGTH)
    return [tuple(row) for row in vectors.tolist()]


def video_iscc(frames: Sequence[Sequence[int]]) -> str:
    """The canonical 64-bit ISCC video code of MPEG-7 frame signatures."""
    if not any(len(set(frame)) > 1 for frame in frames):
        raise MediaFingerprintError(
            "The video holds no picture to fingerprint (every frame is flat, or there is none).",
            details={"tool": "ffmpeg", "frames": len(frames)},
        )
    code: str = iscc_core.gen_video_code_v0([tuple(f) for f in frames], bits=ISCC_BITS)["iscc"]
    return code


def _number(bits: np.ndarray, at: int, width: int) -> int:
    if at + width > bits.size:
        raise _unusable("ffmpeg", "the signature is cut short")
    return int("".join("1" if b else "0" for b in bits[at : at + width].tolist()), 2)


def _unusable(tool: str, problem: str) -> MediaFingerprintError:
    return MediaFingerprintError(
        f"The audio/video fingerprint tool printed something unusable: {problem}.",
        details={"tool": tool, "problem": problem},
    )
