"""ISCC Content-Codes (ISO 24138) as Hallmark stores and compares them: 64 bits, of subtype image, audio
or video, in canonical form. Nothing else is accepted, so a code can be compared as a string and its body
only with a body of the same kind (an audio code never matches an image or a video code).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import iscc_core

ISCC_ALG: Final = "io.iscc.v0"
ISCC_BITS: Final = 64


class IsccKind(StrEnum):
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"

    @property
    def max_distance(self) -> int:
        """The match threshold for codes of this kind."""
        return ISCC_MAX_DISTANCES[self]


_SUBTYPE: Final = {
    IsccKind.IMAGE: iscc_core.ST_CC.IMAGE,
    IsccKind.AUDIO: iscc_core.ST_CC.AUDIO,
    IsccKind.VIDEO: iscc_core.ST_CC.VIDEO,
}
_KIND_OF_SUBTYPE: Final = {int(subtype): kind for kind, subtype in _SUBTYPE.items()}

# Match thresholds (inclusive Hamming distance over the 64-bit body), each measured:
# image: bench/fingerprint_distances.py (re-encodes, resizes, brightness <= 2; unrelated photos >= 20).
# audio: bench/media_codes.py (re-encodes down to MP3 32 kbit/s <= 5, AAC 24 kbit/s mono up to 7; other
#   recordings >= 35, but another passage of the same song can be 7 apart: the code is coarse).
# video: bench/media_codes.py (re-encodes at lower bitrate, half size, another codec <= 4; unrelated
#   clips >= 20).
ISCC_MAX_DISTANCES: Final = {IsccKind.IMAGE: 12, IsccKind.AUDIO: 6, IsccKind.VIDEO: 12}


@dataclass(frozen=True)
class IsccUnit:
    kind: IsccKind
    body: bytes  # the 8-byte similarity digest the Hamming distance is taken over


def iscc_unit(code: str) -> IsccUnit:
    """Kind and body of a canonical 64-bit ISCC image, audio or video code; ValueError for anything else."""
    fast = _fast_unit(code)
    if fast is not None:
        return fast
    try:
        maintype, subtype, version, _length, body = iscc_core.iscc_decode(code)
    except (ValueError, LookupError):
        raise ValueError("not an ISCC code") from None
    kind = _KIND_OF_SUBTYPE.get(int(subtype))
    if (
        maintype != iscc_core.MT.CONTENT
        or kind is None
        or version != iscc_core.VS.V0
        or len(body) * 8 != ISCC_BITS
        or code != iscc_code(body, kind)
    ):
        raise ValueError("not a canonical 64-bit ISCC image, audio or video code")
    return IsccUnit(kind, bytes(body))


def _fast_unit(code: str) -> IsccUnit | None:
    """The common case without iscc-core's general decoder (~140 us a code; the repository parses every
    stored code at start): "ISCC:" + 16 base32 letters are exactly 10 bytes, 2 header + 8 body, and that
    spelling is the only one of those bytes, so it is canonical. Anything else takes the general path."""
    if len(code) != 21 or not code.startswith("ISCC:"):
        return None
    try:
        raw = base64.b32decode(code[5:])
    except (ValueError, binascii.Error):
        return None
    kind = _KIND_OF_HEADER.get(raw[:2])
    return IsccUnit(kind, raw[2:]) if kind is not None else None


def iscc_body(code: str, kind: IsccKind = IsccKind.IMAGE) -> bytes:
    """The body of a canonical 64-bit ISCC code of `kind` (ValueError for any other code or kind)."""
    unit = iscc_unit(code)
    if unit.kind != kind:
        raise ValueError(f"an ISCC {unit.kind} code where an ISCC {kind} code was expected")
    return unit.body


def iscc_code(body: bytes, kind: IsccKind = IsccKind.IMAGE) -> str:
    """The canonical code of an 8-byte digest of `kind` (inverse of `iscc_unit`)."""
    unit: str = iscc_core.encode_component(
        iscc_core.MT.CONTENT, _SUBTYPE[kind], iscc_core.VS.V0, ISCC_BITS, body
    )
    return "ISCC:" + unit


def iscc_distance(a: str, b: str) -> int | None:
    """Hamming distance between two codes of one kind; None if they differ in kind or either is invalid."""
    try:
        first, second = iscc_unit(a), iscc_unit(b)
    except ValueError:
        return None
    if first.kind != second.kind:
        return None
    return (int.from_bytes(first.body, "big") ^ int.from_bytes(second.body, "big")).bit_count()


def iscc_max_distance(code: str) -> int:
    """The match threshold for a valid code's kind."""
    return iscc_unit(code).kind.max_distance


# The 2 header bytes of a 64-bit content code of each kind, for `_fast_unit`.
_KIND_OF_HEADER: Final = {base64.b32decode(iscc_code(bytes(8), kind)[5:])[:2]: kind for kind in IsccKind}
