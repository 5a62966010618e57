"""The assertions that declare an asset's soft bindings inside its signed manifest, and reading them back.

`c2pa.soft-binding` carries the ISCC image, audio or video code (`io.iscc.v0` is on the C2PA soft-binding
algorithm list).
PDQ is not on that list, so it goes in a Hallmark assertion. Declaring both in the signed manifest is
what lets the repository prove that its fingerprint columns were not altered (see repository.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from signing.softbinding.fingerprint import PDQ_BITS, ImageFingerprints, PdqHash
from signing.softbinding.iscc import ISCC_ALG, IsccKind, iscc_unit

SOFT_BINDING: Final = "c2pa.soft-binding"
FINGERPRINT_ASSERTION: Final = "org.hallmark.fingerprints"
CONFIRMATION_FIELD: Final = "confirmationSha256"
# The watermark engine's own assertion (algorithm, version, payload id); keep in step with it.
WATERMARK_ASSERTION: Final = "org.hallmark.watermark"
WATERMARK_ID_FIELD: Final = "payloadId"

_WHAT_IS_CODED: Final = {
    IsccKind.IMAGE: "ISCC image code (ISO 24138) of the signed pixels",
    IsccKind.AUDIO: "ISCC audio code (ISO 24138) of the signed audio",
    IsccKind.VIDEO: "ISCC video code (ISO 24138) of the signed video's pictures",
}


def iscc_soft_binding(iscc: str) -> dict[str, Any]:
    """`c2pa.soft-binding` data (C2PA 2.x soft-binding-map): the algorithm and one block whose empty scope
    means the whole asset. The value is the canonical ISCC string: the engine reads `value` as text.
    Refuses (ValueError) anything but a 64-bit ISCC image, audio or video code."""
    kind = iscc_unit(iscc).kind
    return {"alg": ISCC_ALG, "blocks": [{"scope": {}, "value": iscc}], "name": _WHAT_IS_CODED[kind]}


def iscc_assertion(iscc: str) -> dict[str, Any]:
    """The `c2pa.soft-binding` entry for a manifest definition's `assertions` list: all an audio or video
    file gets (PDQ is for pictures)."""
    return {"label": SOFT_BINDING, "data": iscc_soft_binding(iscc)}


def fingerprint_assertion(pdq: PdqHash) -> dict[str, Any]:
    return {"pdq": pdq.bits.hex(), "pdqQuality": pdq.quality}


def soft_binding_assertions(fingerprints: ImageFingerprints) -> list[dict[str, Any]]:
    """Entries for a manifest definition's `assertions` list."""
    return [
        iscc_assertion(fingerprints.iscc),
        {"label": FINGERPRINT_ASSERTION, "data": fingerprint_assertion(fingerprints.pdq)},
    ]


@dataclass(frozen=True)
class DeclaredBindings:
    """What a signed manifest says about its asset's soft bindings (None: not declared, or malformed)."""

    iscc: str | None
    pdq: PdqHash | None
    watermark_id: str | None
    confirmation_sha256: str | None = None  # of the confirmation print the repository keeps


def declared_bindings(manifest: Mapping[str, Any]) -> DeclaredBindings:
    """From one manifest as the engine's reader reports it. Assertion data is attacker-controlled: a wrong
    shape reads as "not declared", never as an error. Two declarations of one kind cancel each other."""
    assertions = manifest.get("assertions")
    items = [a for a in assertions if isinstance(a, dict)] if isinstance(assertions, list) else []
    return DeclaredBindings(
        iscc=_only([_iscc(a.get("data")) for a in items if a.get("label") == SOFT_BINDING]),
        pdq=_only([_pdq(a.get("data")) for a in items if a.get("label") == FINGERPRINT_ASSERTION]),
        watermark_id=_only(
            [
                _text(_field(a.get("data"), WATERMARK_ID_FIELD))
                for a in items
                if a.get("label") == WATERMARK_ASSERTION
            ]
        ),
        confirmation_sha256=_only(
            [
                _text(_field(a.get("data"), CONFIRMATION_FIELD))
                for a in items
                if a.get("label") == FINGERPRINT_ASSERTION
            ]
        ),
    )


def _iscc(data: Any) -> str | None:
    if not isinstance(data, dict) or data.get("alg") != ISCC_ALG:
        return None
    blocks = data.get("blocks")
    if not isinstance(blocks, list) or len(blocks) != 1 or not isinstance(blocks[0], dict):
        return None
    value = blocks[0].get("value")
    if not isinstance(value, str):
        return None
    try:
        iscc_unit(value)
    except ValueError:
        return None
    return value


def _pdq(data: Any) -> PdqHash | None:
    bits, quality = _field(data, "pdq"), _field(data, "pdqQuality")
    if not isinstance(bits, str) or len(bits) != PDQ_BITS // 4 or type(quality) is not int:
        return None
    try:
        return PdqHash(bits=bytes.fromhex(bits), quality=quality)
    except ValueError:
        return None


def _field(data: Any, name: str) -> Any:
    return data.get(name) if isinstance(data, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_T = TypeVar("_T")


def _only(values: list[_T | None]) -> _T | None:
    return values[0] if len(values) == 1 else None
