"""Recovering the credentials of a file whose manifest is gone or no longer matches.

Order of evidence: the watermark first (an exact id, false positives designed <= 1e-6 per check), then the
fingerprints. A watermark hit is offered only when the picture matches the asset the mark was made for
(ISCC/PDQ within their thresholds, or the confirmation print): a mark copied onto another picture is
refused, not offered. When the blind read finds no mark, the picture is tested for the known ids of the
entries its fingerprints point to and of those whose code words lie near what the blind read saw
(informed.py, its own false-positive design). Without a usable watermark, fingerprint neighbours are
reported as "similar to": a weaker statement, since a look-alike can be near. Every entry is re-verified
from its stored manifest store before it is offered (reverify.py); one that no longer verifies, or whose
row was altered, is never offered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import IO, Protocol

import numpy as np
from PIL import Image

from signing._c2pa import Engine
from signing.models import (
    RecoveredCredentials,
    Recovery,
    RecoveryMethod,
    RecoveryStatus,
    VerificationReport,
    WatermarkFinding,
)
from signing.softbinding.confirmation import Confirmation, ConfirmationPrint, confirm
from signing.softbinding.fingerprint import ImageFingerprints, PdqHash, image_fingerprints
from signing.softbinding.marking import format_watermark_id
from signing.softbinding.orientation import to_upright
from signing.softbinding.port import (
    MAX_CANDIDATES,
    Candidates,
    WatermarkDetection,
    WatermarkEngine,
    WatermarkKey,
)
from signing.softbinding.repository import (
    FingerprintMatch,
    ManifestRepository,
    RepositoryEntry,
    fingerprint_match,
)
from signing.softbinding.reverify import stored_entry_report

_MODES = frozenset({"L", "RGB", "RGBA"})

RECOVERED = (
    "This file carries no intact Content Credentials, but its invisible watermark names credentials this "
    "service signed, and the picture matches the asset they were made for. The file was altered or "
    "stripped since it was signed: the credentials below describe the original, not what changed since."
)
SIMILAR = (
    "No watermark from this service was found, but the picture is similar to {count} asset(s) this service "
    "signed. This is a weaker match than a watermark: a look-alike picture can be similar. The file was "
    "altered or stripped since signing, or it is a different picture."
)
NOT_FOUND = (
    "Neither a watermark nor a similar asset signed by this service was found. That does not show the file "
    "was not AI-generated: only that this service's repository knows nothing about it."
)
MISMATCH = (
    "A watermark from this service was found, but the picture does not match the asset it was made for (it "
    "may have been copied onto another picture), so nothing is offered."
)


def not_searched(reason: str) -> Recovery:
    return Recovery(
        RecoveryStatus.NOT_SEARCHED,
        f"No recovery was attempted ({reason}).",
        reason=reason,
    )


class QueryPicture(Protocol):
    """What recovery asks of the query's pixels once the repository has named candidates. Answered where the
    pixels were decoded: in this process, or in the isolated worker that keeps them."""

    def confirm(self, stored: ConfirmationPrint) -> Confirmation:
        """Does the picture show the signed asset of this confirmation print (crops, rescales)?"""
        ...

    def detect_known(self, candidates: Candidates) -> WatermarkDetection:
        """Does the picture carry one of these watermark ids (the fingerprint neighbours' marks)?"""
        ...


@dataclass(frozen=True)
class LocalPicture:
    """A `QueryPicture` on an upright picture in this process."""

    upright: Image.Image
    watermark: WatermarkEngine
    keys: tuple[WatermarkKey, ...]

    def confirm(self, stored: ConfirmationPrint) -> Confirmation:
        return confirm(stored, self.upright)

    def detect_known(self, candidates: Candidates) -> WatermarkDetection:
        return self.watermark.detect_known(_pixels(self.upright), self.keys, candidates)


def _pixels(upright: Image.Image) -> np.typing.NDArray[np.uint8]:
    return np.asarray(upright if upright.mode in _MODES else upright.convert("RGB"))


@dataclass(frozen=True)
class ImageEvidence:
    """What the pixels of a file say, before the repository is asked: the watermark found (if keys were given)
    and the fingerprints. The untrusted part of recovery (decode, detection, hashing); it can be computed in
    another process and handed to `recover_from_evidence`."""

    finding: WatermarkFinding | None
    watermark_id: str | None
    prints: ImageFingerprints
    read: bytes | None = None  # the blind read's code word when it found no mark (WatermarkDetection.word)


def image_evidence(
    upright: Image.Image, *, watermark: WatermarkEngine, keys: tuple[WatermarkKey, ...]
) -> ImageEvidence:
    """Evidence from an upright (EXIF-transposed) decoded image."""
    detection = watermark.detect(_pixels(upright), keys) if keys else None
    finding = _finding(detection, watermark.algorithm) if detection is not None else None
    payload = detection.payload_id if detection is not None else None
    watermark_id = format_watermark_id(payload) if payload is not None else None
    read = detection.word if detection is not None and payload is None else None
    return ImageEvidence(finding, watermark_id, image_fingerprints(upright), read)


def recover_image(
    image: Image.Image,
    *,
    mime: str,
    asset: IO[bytes],
    engine: Engine,
    watermark: WatermarkEngine,
    keys: tuple[WatermarkKey, ...],
    repository: ManifestRepository,
    limit: int = 3,
) -> Recovery:
    """Look `image` (decoded from `asset`, of type `mime`) up in the repository; see the module doc."""
    upright = to_upright(image)
    evidence = image_evidence(upright, watermark=watermark, keys=keys)
    return recover_from_evidence(
        evidence,
        mime=mime,
        asset=asset,
        engine=engine,
        repository=repository,
        picture=LocalPicture(upright, watermark, keys),
        limit=limit,
    )


def recover_from_evidence(
    evidence: ImageEvidence,
    *,
    mime: str,
    asset: IO[bytes],
    engine: Engine,
    repository: ManifestRepository,
    picture: QueryPicture,
    limit: int = 3,
) -> Recovery:
    """The repository's answer for `evidence`. `picture` answers the questions that need the query's pixels:
    confirming a watermark hit whose fingerprints are not near (e.g. after a crop), and, when the blind read
    found no mark, testing for the marks of the entries the fingerprints point to (matches, then PDQ within
    PDQ_CANDIDATE_DISTANCE) and of those whose code words lie near the blind read. `asset` is what stored
    entries are re-verified against: their hard binding is not judged, so an empty stream gives the same
    answer and keeps the file being recovered away from the engine."""
    finding, prints = evidence.finding, evidence.prints
    confirmed = Confirmer(prints, picture, engine, mime, asset)
    if evidence.watermark_id is not None:
        entry = repository.by_watermark(evidence.watermark_id)
        if entry is not None and (answer := confirmed(entry, finding)) is not None:
            return answer
    neighbours = repository.nearest(iscc=prints.iscc, pdq=prints.pdq, limit=limit)
    if finding is not None and not finding.detected:
        # the pictures the fingerprints point to: matches first, then nearer than strangers come by PDQ
        matched = {match.entry.manifest_id for match in neighbours}
        pointed = [match.entry for match in neighbours]
        pointed += [e for e in repository.near_pictures(prints.pdq, limit) if e.manifest_id not in matched]
        known = _known_mark(pointed, picture, finding.algorithm)
        if known is not None and known[0].manifest_id in matched:  # the fingerprints confirm it already
            entry, found = known
            offered = _offer(entry, engine, mime, asset, prints.iscc, prints.pdq)
            if offered is not None:
                return _recovered(RecoveryMethod.BOTH, found, offered)
        elif known is not None and (answer := confirmed(*known)) is not None:
            return answer
        tested = {entry.manifest_id for entry in pointed}
        known = _read_near(evidence, tested, repository, picture, finding.algorithm)
        if known is not None and (answer := confirmed(*known)) is not None:
            return answer
    return _similar(
        neighbours,
        prints.iscc,
        prints.pdq,
        mime=mime,
        asset=asset,
        engine=engine,
        finding=finding,
    )


@dataclass(frozen=True)
class Confirmer:
    """The answer for a watermark hit on `entry`: refused if the picture does not match the asset the mark
    was made for, recovered if it does and the entry may be offered, None if it may not."""

    prints: ImageFingerprints
    picture: QueryPicture
    engine: Engine
    mime: str
    asset: IO[bytes]

    def __call__(self, entry: RepositoryEntry, finding: WatermarkFinding | None) -> Recovery | None:
        method, score = _cross_check(entry, self.prints, self.picture)
        if method is None:
            return Recovery(
                RecoveryStatus.NOT_FOUND, MISMATCH, watermark=finding, reason="watermark-mismatch"
            )
        prints = self.prints
        offered = _offer(entry, self.engine, self.mime, self.asset, prints.iscc, prints.pdq)
        if offered is None:
            return None
        return _recovered(method, finding, replace(offered, confirmation_score=score))


def _recovered(
    method: RecoveryMethod, finding: WatermarkFinding | None, offered: RecoveredCredentials
) -> Recovery:
    return Recovery(
        RecoveryStatus.RECOVERED,
        RECOVERED,
        method=method,
        confidence="high",
        watermark=finding,
        matches=(offered,),
    )


def _read_near(
    evidence: ImageEvidence,
    tested: set[str],
    repository: ManifestRepository,
    picture: QueryPicture,
    algorithm: str,
) -> tuple[RepositoryEntry, WatermarkFinding] | None:
    """The known-id test for the ids whose code words lie nearest the blind read: a read the BCH code could
    not correct (a weak mark, e.g. after a crop, where the fingerprints have moved too). The read depends on
    the key, so the test's bound counts every marked entry (`Candidates.population`); a hit still needs the
    picture to match the asset, like a blind one."""
    if evidence.read is None:
        return None
    near = [
        e for e in repository.near_watermarks(evidence.read, MAX_CANDIDATES) if e.manifest_id not in tested
    ]
    if not near:
        return None
    return _known_mark(near, picture, algorithm, population=repository.watermark_count())


def _known_mark(
    entries: list[RepositoryEntry], picture: QueryPicture, algorithm: str, population: int = 0
) -> tuple[RepositoryEntry, WatermarkFinding] | None:
    """The entry whose watermark id the picture carries, by a known-id test (informed.py), if any. Only
    entries with a mark and a confirmation print (which holds the signed size) are candidates, at most
    MAX_CANDIDATES; `population` as in `Candidates`."""
    marked: dict[int, tuple[RepositoryEntry, tuple[int, int]]] = {}
    for entry in entries:
        if entry.watermark_id is None or entry.confirmation is None or len(marked) == MAX_CANDIDATES:
            continue
        try:
            stored = ConfirmationPrint.from_bytes(entry.confirmation)
            payload_id = int(entry.watermark_id, 16)
        except ValueError:
            continue
        marked.setdefault(payload_id, (entry, (stored.width, stored.height)))
    if not marked:
        return None
    ids = tuple(marked)
    detection = picture.detect_known(Candidates(ids, tuple(marked[i][1] for i in ids), population))
    if detection.payload_id is None or detection.payload_id not in marked:
        return None
    return marked[detection.payload_id][0], _finding(detection, algorithm, test="known-id")


def recover_media(
    iscc: str, *, mime: str, asset: IO[bytes], engine: Engine, repository: ManifestRepository, limit: int = 3
) -> Recovery:
    """Audio and video carry no watermark: their ISCC code's neighbours are reported as "similar to"."""
    neighbours = repository.nearest(iscc=iscc, pdq=None, limit=limit)
    return _similar(neighbours, iscc, None, mime=mime, asset=asset, engine=engine, finding=None)


def _similar(
    neighbours: list[FingerprintMatch],
    iscc: str | None,
    pdq: PdqHash | None,
    *,
    mime: str,
    asset: IO[bytes],
    engine: Engine,
    finding: WatermarkFinding | None,
) -> Recovery:
    similar = [
        offered
        for match in neighbours
        if (offered := _offer(match.entry, engine, mime, asset, iscc, pdq)) is not None
    ]
    if similar:
        return Recovery(
            RecoveryStatus.SIMILAR,
            SIMILAR.format(count=len(similar)),
            method=RecoveryMethod.FINGERPRINT,
            confidence="low",
            watermark=finding,
            matches=tuple(similar),
        )
    return Recovery(RecoveryStatus.NOT_FOUND, NOT_FOUND, watermark=finding)


def _cross_check(
    entry: RepositoryEntry, prints: ImageFingerprints, picture: QueryPicture
) -> tuple[RecoveryMethod | None, float | None]:
    """Does the picture match the asset the watermark was made for? ISCC/PDQ within their thresholds, else
    (crops and rescales move those) the stored confirmation print, matched over translations and scales."""
    if fingerprint_match(entry, prints.iscc, prints.pdq) is not None:
        return RecoveryMethod.BOTH, None
    if entry.confirmation is None:
        return None, None
    try:
        stored = ConfirmationPrint.from_bytes(entry.confirmation)
    except ValueError:
        return None, None
    checked = picture.confirm(stored)
    return (RecoveryMethod.WATERMARK if checked.confirmed else None), round(checked.score, 3)


def _offer(
    entry: RepositoryEntry, engine: Engine, mime: str, asset: IO[bytes], iscc: str | None, pdq: PdqHash | None
) -> RecoveredCredentials | None:
    """The entry as the original's credentials, if its stored manifest still verifies and declares it."""
    asset.seek(0)
    check, report = stored_entry_report(engine, entry, mime, asset)
    if not check.offerable:
        return None
    match = fingerprint_match(entry, iscc, pdq)
    return _credentials(
        entry, report, match.iscc_distance if match else None, match.pdq_distance if match else None
    )


def _credentials(
    entry: RepositoryEntry, report: VerificationReport, iscc_distance: int | None, pdq_distance: int | None
) -> RecoveredCredentials:
    return RecoveredCredentials(
        manifest_id=entry.manifest_id,
        outcome=report.outcome,
        signed_at=entry.created_at,
        title=report.title,
        signer=report.signer,
        timestamp=report.timestamp,
        ai=report.ai,
        iscc_distance=iscc_distance,
        pdq_distance=pdq_distance,
    )


def _finding(detection: WatermarkDetection, algorithm: str, test: str = "blind") -> WatermarkFinding:
    return WatermarkFinding(
        detected=detection.detected,
        algorithm=algorithm,
        watermark_id=format_watermark_id(detection.payload_id) if detection.payload_id is not None else None,
        statistic=round(detection.statistic, 3),
        threshold=round(detection.threshold, 3),
        false_positive_bound=detection.false_positive_bound,
        test=test,
    )


def recover_asset(
    asset: IO[bytes],
    *,
    mime: str,
    max_pixels: int,
    engine: Engine,
    watermark: WatermarkEngine,
    keys: tuple[WatermarkKey, ...],
    repository: ManifestRepository,
) -> Recovery:
    """`recover_image` for a whole file: decodes it (refusing, not failing, on what it cannot search)."""
    image = _decoded(asset, mime, max_pixels)
    if isinstance(image, Recovery):
        return image
    return recover_image(
        image, mime=mime, asset=asset, engine=engine, watermark=watermark, keys=keys, repository=repository
    )


def asset_evidence(
    asset: IO[bytes],
    *,
    mime: str,
    max_pixels: int,
    watermark: WatermarkEngine,
    keys: tuple[WatermarkKey, ...],
) -> ImageEvidence | Recovery:
    """The untrusted half of `recover_asset`: the file's evidence, or why it cannot be searched."""
    upright = upright_image(asset, mime=mime, max_pixels=max_pixels)
    if isinstance(upright, Recovery):
        return upright
    return image_evidence(upright, watermark=watermark, keys=keys)


def upright_image(asset: IO[bytes], *, mime: str, max_pixels: int) -> Image.Image | Recovery:
    """The file's picture decoded and turned upright (what evidence and confirmation look at), or why it
    cannot be searched. An isolated worker keeps it between a verify and its confirmation."""
    image = _decoded(asset, mime, max_pixels)
    return image if isinstance(image, Recovery) else to_upright(image)


def confirm_asset(stored: ConfirmationPrint, asset: IO[bytes], *, max_pixels: int) -> Confirmation:
    """`confirm` against the picture in a whole file (decoded again; a file that does not decode, or is
    too large, confirms nothing)."""
    upright = upright_image(asset, mime="image/", max_pixels=max_pixels)
    if isinstance(upright, Recovery):
        return Confirmation(score=-1.0, confirmed=False, scale=0.0, mirrored=False)
    return confirm(stored, upright)


def detect_known_asset(
    candidates: Candidates,
    asset: IO[bytes],
    *,
    max_pixels: int,
    watermark: WatermarkEngine,
    keys: tuple[WatermarkKey, ...],
) -> WatermarkDetection:
    """`QueryPicture.detect_known` on the picture in a whole file (decoded again; a file that does not
    decode, or is too large, carries nothing)."""
    upright = upright_image(asset, mime="image/", max_pixels=max_pixels)
    if isinstance(upright, Recovery):
        return WatermarkDetection(None, None, 0.0, math.inf, 1.0)
    return LocalPicture(upright, watermark, keys).detect_known(candidates)


def _decoded(asset: IO[bytes], mime: str, max_pixels: int) -> Image.Image | Recovery:
    if not mime.startswith("image/"):
        return not_searched("recovery searches images only")
    asset.seek(0)
    try:
        image = Image.open(asset)
        if image.width * image.height > max_pixels:
            return not_searched(f"the image is larger than {max_pixels} pixels, the recovery limit")
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return not_searched("the image could not be decoded")
    return image
