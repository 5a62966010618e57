"""Soft binding resolution (the C2PA Soft Binding Resolution API's queries): from a soft binding value, or
from an asset, to the ids of manifests this service signed.

Only entries that re-verify are offered: a repository row altered in the database is never returned by the
adapter (its digest), and an entry whose stored manifest store no longer verifies, or no longer declares
what the row is indexed under, is dropped here (`offerable_alone`, or the recovery's own check when there
is an asset to check against). Each match carries a similarity score (0-100, the API's `similarityScore`).
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import IO, Final

import iscc_core
from PIL import Image

from signing._c2pa import Engine
from signing.errors import (
    AssetError,
    AssetTooLargeError,
    InvalidQueryError,
    MalformedAssetError,
    UnsupportedAlgorithmError,
    UnsupportedMediaError,
)
from signing.media import sniff
from signing.models import Recovery, RecoveryStatus
from signing.softbinding.fingerprint import ISCC_MAX_DISTANCE, PDQ_BITS
from signing.softbinding.iscc import ISCC_ALG, ISCC_BITS, iscc_body, iscc_code
from signing.softbinding.marking import format_watermark_id
from signing.softbinding.orientation import to_upright
from signing.softbinding.payload import ID_BITS
from signing.softbinding.port import WatermarkEngine, WatermarkKey
from signing.softbinding.recovery import (
    ImageEvidence,
    LocalPicture,
    QueryPicture,
    image_evidence,
    recover_from_evidence,
)
from signing.softbinding.repository import ManifestRepository, RepositoryEntry
from signing.softbinding.reverify import check_stored_entry
from signing.softbinding.spread_spectrum import ALGORITHM as WATERMARK_ALGORITHM

FINGERPRINT_ALGORITHMS: Final = (ISCC_ALG,)
WATERMARK_ALGORITHMS: Final = (WATERMARK_ALGORITHM,)
_ID_BYTES: Final = ID_BITS // 8


@dataclass(frozen=True)
class SoftBindingMatch:
    manifest_id: str
    similarity_score: int  # 0 (weakest) to 100 (strongest)


def similarity(iscc_distance: int | None, pdq_distance: int | None) -> int:
    """100 minus the share of differing bits of the nearer fingerprint, in per cent (0 without one)."""
    shares = [d / ISCC_BITS for d in (iscc_distance,) if d is not None]
    shares += [d / PDQ_BITS for d in (pdq_distance,) if d is not None]
    return round(100 * (1 - min(shares))) if shares else 0


def supported(alg: str) -> str:
    """`alg` if this service resolves it, else `UnsupportedAlgorithmError`."""
    if alg not in FINGERPRINT_ALGORITHMS + WATERMARK_ALGORITHMS:
        raise UnsupportedAlgorithmError(
            f"This service does not resolve soft bindings of the algorithm {alg!r}.",
            hint="GET /services/supportedAlgorithms lists the algorithms it resolves.",
            details={"alg": alg},
        )
    return alg


def watermark_id_value(value: str) -> str:
    """The watermark id in a query `value`: base64 of its 6 bytes (big-endian), or of its 12 hex digits."""
    raw = _base64(value)
    if len(raw) == _ID_BYTES:
        return format_watermark_id(int.from_bytes(raw, "big"))
    text = raw.decode("ascii", "replace").lower()
    if len(text) == 2 * _ID_BYTES and all(c in "0123456789abcdef" for c in text):
        return text
    raise InvalidQueryError(
        f"The value is not a watermark id ({_ID_BYTES} bytes, or {2 * _ID_BYTES} hex digits, in base64)."
    )


def iscc_value(value: str) -> str:
    """The 64-bit ISCC image code in a query `value`: base64 of an ISCC as text (`ISCC:EEA...`, as the
    `c2pa.soft-binding` assertion of this service declares it) or of binary ISCC units (IEP-0020's ISCC-SEQ).
    Longer image codes are cut to their first 64 bits, which is the 64-bit code of the same image."""
    raw = _base64(value)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    try:
        if text.startswith("ISCC:"):
            units = [iscc_core.decode_base32(unit) for unit in iscc_core.iscc_decompose(text)]
        else:
            units = _binary_units(raw)
        body = next(body for body in map(_image_body, units) if body is not None)
        code = iscc_code(body)
        iscc_body(code)
    except (ValueError, LookupError, StopIteration, binascii.Error):
        raise InvalidQueryError(
            "The value holds no ISCC image code (ISCC text or units, in base64)."
        ) from None
    return code


def _binary_units(data: bytes) -> list[bytes]:
    units = []
    while data:
        maintype, _subtype, _version, length, tail = iscc_core.decode_header(data)
        size = iscc_core.decode_length(maintype, length) // 8
        if len(tail) < size:
            raise ValueError("truncated ISCC unit")
        units.append(data[: len(data) - len(tail) + size])
        data = tail[size:]
    return units


def _image_body(unit: bytes) -> bytes | None:
    maintype, subtype, version, length, tail = iscc_core.decode_header(unit)
    image = (iscc_core.MT.CONTENT, iscc_core.ST_CC.IMAGE, iscc_core.VS.V0)
    if (maintype, subtype, version) != image or iscc_core.decode_length(maintype, length) < ISCC_BITS:
        return None
    return bytes(tail[: ISCC_BITS // 8])


def _base64(value: str) -> bytes:
    try:
        text = value.strip()
        padded = text + "=" * (-len(text) % 4)
        alphabet = b"-_" if "-" in text or "_" in text else None
        return base64.b64decode(padded, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidQueryError("The value is not base64.") from None


def offerable_alone(engine: Engine, entry: RepositoryEntry) -> bool:
    """Whether the entry's stored manifest store verifies by itself (no asset to check it against: its
    hard binding is not judged, everything else is, as in recovery)."""
    try:
        return check_stored_entry(engine, entry, entry.media_type, io.BytesIO()).offerable
    except AssetError:
        return False


def resolve_binding(
    alg: str, value: str, *, engine: Engine, repository: ManifestRepository, limit: int
) -> list[SoftBindingMatch]:
    """byBinding: a watermark id is looked up exactly, an ISCC by nearest neighbour within its threshold."""
    if supported(alg) in WATERMARK_ALGORITHMS:
        entry = repository.by_watermark(watermark_id_value(value))
        found = [(entry, 100)] if entry is not None else []
    else:
        matches = repository.nearest(iscc=iscc_value(value), pdq=None, limit=limit)
        found = [(m.entry, similarity(m.iscc_distance, None)) for m in matches]
    return [
        SoftBindingMatch(entry.manifest_id, score)
        for entry, score in found[:limit]
        if offerable_alone(engine, entry)
    ]


def resolve_content(
    asset: IO[bytes],
    *,
    alg: str | None,
    max_pixels: int,
    engine: Engine,
    watermark: WatermarkEngine,
    keys: tuple[WatermarkKey, ...],
    repository: ManifestRepository,
    limit: int,
) -> list[SoftBindingMatch]:
    """byContent: the recovery's search (watermark confirmed by the fingerprints, else the fingerprints'
    neighbours), as matches. `alg` keeps only the matches that algorithm supports. The type is read from the
    bytes; an empty or undecodable image is an invalid query (the API's 400), a non-image unsupported."""
    mime, image = content_image(asset, alg=alg, max_pixels=max_pixels)
    upright = to_upright(image)
    return resolve_evidence(
        mime,
        image_evidence(upright, watermark=watermark, keys=keys),
        alg=alg,
        asset=asset,
        engine=engine,
        repository=repository,
        picture=LocalPicture(upright, watermark, keys),
        limit=limit,
    )


def content_image(asset: IO[bytes], *, alg: str | None, max_pixels: int) -> tuple[str, Image.Image]:
    """byContent's checks of the query and the asset (type from the bytes, pixels), and the decoded image."""
    if alg is not None:
        supported(alg)
    try:
        mime = sniff(asset).mime
    except MalformedAssetError as exc:
        raise InvalidQueryError(exc.message) from None
    return mime, _decoded(asset, mime, max_pixels)


def content_evidence(
    asset: IO[bytes],
    *,
    alg: str | None,
    max_pixels: int,
    watermark: WatermarkEngine,
    keys: tuple[WatermarkKey, ...],
) -> tuple[str, ImageEvidence]:
    """The untrusted half of `resolve_content`: the query's checks, the type and the pixels' evidence."""
    mime, image = content_image(asset, alg=alg, max_pixels=max_pixels)
    return mime, image_evidence(to_upright(image), watermark=watermark, keys=keys)


def resolve_evidence(
    mime: str,
    evidence: ImageEvidence,
    *,
    alg: str | None,
    asset: IO[bytes],
    engine: Engine,
    repository: ManifestRepository,
    picture: QueryPicture,
    limit: int,
) -> list[SoftBindingMatch]:
    """byContent's answer from the evidence of the asset's pixels (see `recover_from_evidence`)."""
    recovery = recover_from_evidence(
        evidence,
        mime=mime,
        asset=asset,
        engine=engine,
        repository=repository,
        picture=picture,
        limit=limit,
    )
    return _matches(recovery, alg)[:limit]


def _matches(recovery: Recovery, alg: str | None) -> list[SoftBindingMatch]:
    watermarked = recovery.status is RecoveryStatus.RECOVERED
    if alg in WATERMARK_ALGORITHMS and not watermarked:
        return []
    return [
        SoftBindingMatch(m.manifest_id, 100 if watermarked else similarity(m.iscc_distance, m.pdq_distance))
        for m in recovery.matches
        if alg not in FINGERPRINT_ALGORITHMS
        or (m.iscc_distance is not None and m.iscc_distance <= ISCC_MAX_DISTANCE)
    ]


def _decoded(asset: IO[bytes], mime: str, max_pixels: int) -> Image.Image:
    if not mime.startswith("image/"):
        raise UnsupportedMediaError(
            f"This service computes soft bindings of images only, not of {mime}.", details={"mime": mime}
        )
    asset.seek(0)
    try:
        image = Image.open(asset)
        if image.width * image.height > max_pixels:
            raise AssetTooLargeError(
                f"The image has more than {max_pixels} pixels, the limit for soft-binding queries.",
                hint="The operator sets it with HALLMARK_SOFT_BINDING_MAX_PIXELS.",
            )
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise InvalidQueryError("The image could not be decoded.") from None
    return image
