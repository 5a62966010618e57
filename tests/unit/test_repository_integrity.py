"""The decision whether a repository entry may be offered, and the fingerprint match rule."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

import signing
from signing import Codes, EntryFault, PdqHash, RepositoryEntry, StatusCode

ISCC = "ISCC:EEAXZP5RSE4PVFVC"
PDQ = PdqHash(bits=bytes(32), quality=90)
MANIFEST_ID = "urn:c2pa:00000000-0000-4000-8000-000000000001"


def entry(**changes: Any) -> RepositoryEntry:
    base = RepositoryEntry(
        manifest_id=MANIFEST_ID,
        manifest_store=b"store",
        media_type="image/jpeg",
        watermark_id="w-1",
        iscc=ISCC,
        pdq=PDQ,
        key_id="k1",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    return dataclasses.replace(base, **changes)


def signer(trusted: bool) -> signing.SignerInfo:
    return signing.SignerInfo("Hallmark", "Example AI", "Test CA", "Es256", "1", trusted, "test", False)


def report(*failures: str, manifest_id: str | None = MANIFEST_ID, trusted: bool = True) -> Any:
    return signing.VerificationReport(
        outcome=signing.Outcome.INVALID,
        summary="",
        media_type="image/jpeg",
        integrity=signing.Integrity.TAMPERED,
        manifest_id=manifest_id,
        signer=signer(trusted),
        codes=Codes(failure=tuple(StatusCode(code) for code in failures)),
    )


DECLARED = signing.DeclaredBindings(iscc=ISCC, pdq=PDQ, watermark_id="w-1")


def test_an_entry_that_matches_its_verified_manifest_is_offerable() -> None:
    check = signing.check_entry(entry(), report(), DECLARED)
    assert check.faults == ()
    assert check.offerable


def test_a_failed_hard_binding_is_expected_on_a_stripped_file() -> None:
    check = signing.check_entry(entry(), report("assertion.dataHash.mismatch"), DECLARED)
    assert check.offerable


@pytest.mark.parametrize(
    ("the_entry", "the_report", "declared", "fault"),
    [
        (entry(), report("claimSignature.mismatch"), DECLARED, EntryFault.SIGNATURE),
        (entry(), report(manifest_id=None), DECLARED, EntryFault.MANIFEST_ID),
        (entry(), report(trusted=False), DECLARED, EntryFault.UNTRUSTED),
        (entry(manifest_id="urn:c2pa:other"), report(), DECLARED, EntryFault.MANIFEST_ID),
        (entry(iscc="ISCC:EEAQAAAAAAAAAAAA"), report(), DECLARED, EntryFault.ISCC),
        (entry(pdq=PdqHash(bits=bytes(32), quality=91)), report(), DECLARED, EntryFault.PDQ),
        (entry(pdq=None), report(), DECLARED, EntryFault.PDQ),
        (entry(watermark_id="w-2"), report(), DECLARED, EntryFault.WATERMARK),
        (entry(), report(), dataclasses.replace(DECLARED, watermark_id=None), EntryFault.WATERMARK),
    ],
)
def test_any_disagreement_makes_an_entry_not_offerable(
    the_entry: RepositoryEntry, the_report: Any, declared: signing.DeclaredBindings, fault: EntryFault
) -> None:
    check = signing.check_entry(the_entry, the_report, declared)
    assert check.faults == (fault,)
    assert not check.offerable


def test_the_row_digest_covers_every_field() -> None:
    original = entry()
    digest = signing.entry_digest(original)
    assert signing.digest_matches(original, digest)
    changes: list[dict[str, Any]] = [
        {"manifest_id": "urn:c2pa:x"},
        {"manifest_store": b"stora"},
        {"media_type": "image/png"},
        {"watermark_id": None},
        {"iscc": None},
        {"pdq": PdqHash(bits=bytes(31) + b"\x01", quality=90)},
        {"pdq": PdqHash(bits=bytes(32), quality=10)},
        {"key_id": "k2"},
        {"created_at": datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)},
    ]
    for change in changes:
        assert not signing.digest_matches(entry(**change), digest), change


def flip(code: bytes, count: int) -> bytes:
    value = int.from_bytes(code, "big") ^ ((1 << count) - 1)
    return value.to_bytes(len(code), "big")


def test_fingerprint_match_is_inclusive_at_each_threshold() -> None:
    body = signing.iscc_body(ISCC)
    at = signing.iscc_code(flip(body, signing.ISCC_MAX_DISTANCE))
    beyond = signing.iscc_code(flip(body, signing.ISCC_MAX_DISTANCE + 1))
    match = signing.fingerprint_match(entry(pdq=None), at, None)
    assert match is not None
    assert match.iscc_distance == signing.ISCC_MAX_DISTANCE
    assert signing.fingerprint_match(entry(pdq=None), beyond, None) is None
    pdq_at = PdqHash(flip(PDQ.bits, signing.PDQ_MAX_DISTANCE), 90)
    pdq_beyond = PdqHash(flip(PDQ.bits, signing.PDQ_MAX_DISTANCE + 1), 90)
    pdq_match = signing.fingerprint_match(entry(iscc=None), None, pdq_at)
    assert pdq_match is not None
    assert pdq_match.pdq_distance == signing.PDQ_MAX_DISTANCE
    assert signing.fingerprint_match(entry(iscc=None), None, pdq_beyond) is None


def test_a_low_quality_pdq_never_matches() -> None:
    weak = PdqHash(PDQ.bits, signing.PDQ_MIN_QUALITY - 1)
    assert signing.fingerprint_match(entry(iscc=None), None, weak) is None
    assert signing.fingerprint_match(entry(iscc=None, pdq=weak), None, PDQ) is None
    assert signing.fingerprint_match(entry(iscc=None), None, PDQ) is not None  # negative control
