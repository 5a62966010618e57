"""The manifest repository port, its entries, and the decision whether a stored entry may be offered.

An entry is offered as a recovered manifest only if (1) its row digest matches, so no column was edited
in the database behind the service's back, and (2) its manifest store still verifies, signed by a
trusted signer, and declares exactly the manifest id, fingerprints and watermark id the row is indexed
under. (1) is cheap and runs on every read; (2) needs the engine and is the one an attacker with write
access to the database cannot forge, since the signing key never lives there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from signing.models import VerificationReport
from signing.softbinding.binding_assertions import DeclaredBindings
from signing.softbinding.fingerprint import PDQ_MAX_DISTANCE, PdqHash, hamming
from signing.softbinding.iscc import iscc_distance, iscc_max_distance


@dataclass(frozen=True)
class RepositoryEntry:
    manifest_id: str
    manifest_store: bytes  # the signed manifest store, as returned by the engine at signing time
    media_type: str
    watermark_id: str | None
    iscc: str | None  # canonical 64-bit ISCC image, audio or video code
    pdq: PdqHash | None
    key_id: str
    created_at: datetime
    # The crop-tolerant confirmation print's bytes (confirmation.py); its SHA-256 is declared in the manifest.
    confirmation: bytes | None = None


@dataclass(frozen=True)
class FingerprintMatch:
    """An entry within the threshold of at least one fingerprint. Each distance is None when either side
    lacks that fingerprint (for ISCC, also when the two codes are of different kinds: an audio code is
    never compared with an image or video code; for PDQ, when either hash is below the quality floor)."""

    entry: RepositoryEntry
    iscc_distance: int | None
    pdq_distance: int | None


def fingerprint_match(
    entry: RepositoryEntry, iscc: str | None, pdq: PdqHash | None
) -> FingerprintMatch | None:
    """The match of a query against one entry, or None if neither fingerprint is within its threshold
    (the ISCC threshold of the codes' kind)."""
    iscc_d = iscc_distance(iscc, entry.iscc) if iscc and entry.iscc else None
    pdq_d = None
    if pdq and entry.pdq and pdq.indexable and entry.pdq.indexable:
        pdq_d = hamming(pdq.bits, entry.pdq.bits)
    iscc_near = iscc_d is not None and iscc is not None and iscc_d <= iscc_max_distance(iscc)
    if iscc_near or (pdq_d is not None and pdq_d <= PDQ_MAX_DISTANCE):
        return FingerprintMatch(entry, iscc_d, pdq_d)
    return None


def match_rank(match: FingerprintMatch) -> float:
    """Nearest first: the smaller of the two distances as a fraction of its threshold."""
    ranks = []
    if match.iscc_distance is not None and match.entry.iscc is not None:
        ranks.append(match.iscc_distance / iscc_max_distance(match.entry.iscc))
    if match.pdq_distance is not None:
        ranks.append(match.pdq_distance / PDQ_MAX_DISTANCE)
    return min(ranks, default=float("inf"))


class ManifestRepository(Protocol):
    def put(self, entry: RepositoryEntry) -> None:
        """Store durably (raise `LedgerError` if that fails); the entry is findable at once."""
        ...

    def get(self, manifest_id: str) -> RepositoryEntry | None: ...

    def by_watermark(self, watermark_id: str) -> RepositoryEntry | None: ...

    def nearest(self, *, iscc: str | None, pdq: PdqHash | None, limit: int = 5) -> list[FingerprintMatch]:
        """Entries whose ISCC (of the query's kind: image, audio or video) or PDQ lies within the
        thresholds in iscc.py and fingerprint.py, nearest first; a PDQ hash below the quality floor, on
        either side, never matches."""
        ...

    def near_pictures(self, pdq: PdqHash | None, limit: int) -> list[RepositoryEntry]:
        """Up to `limit` entries whose PDQ lies within PDQ_CANDIDATE_DISTANCE of `pdq`, nearest first (a
        PDQ hash below the quality floor, on either side, finds nothing): wider than a match, for choosing
        whose marks to test for, not for a match."""
        ...

    def near_watermarks(self, word: bytes | None, limit: int) -> list[RepositoryEntry]:
        """Up to `limit` entries whose watermark id's code word (payload.codeword) lies within
        WORD_RADIUS bits of `word` (a blind read, payload.pack_word), nearest first; none for None."""
        ...

    def watermark_count(self) -> int:
        """How many entries carry a watermark id (what a search by code word chooses among), as of the last
        lookup."""
        ...


# PDQ distances that pick the entries whose marks a picture is tested for (a wider net than a match, which
# PDQ_MAX_DISTANCE decides): a 2 degree turn moves PDQ by 24-94 bits, unrelated photos stay 106 or more
# apart (bench/fingerprint_distances.py), and two random 256-bit hashes lie within 64 bits with probability
# about 1e-15.
PDQ_CANDIDATE_DISTANCE = 64

# A blind read with a quarter of its 125 bits wrong is still within reach. A stranger's code word lies
# 62.5 bits from a read on average (sd 5.6): within 32 bits with probability 2.2e-8, so among a million
# marked entries an unmarked picture meets one (and costs a known-id test) about once in 50 checks; at 40
# bits it would be 35 strangers every time.
WORD_RADIUS = 32

DIGEST_VERSION = 1


def entry_digest(entry: RepositoryEntry) -> str:
    """SHA-256 over a canonical encoding of every field; stored beside the row."""
    created = entry.created_at.astimezone(UTC).isoformat(timespec="microseconds")
    fields = {
        "v": DIGEST_VERSION,
        "manifest_id": entry.manifest_id,
        "manifest_store_sha256": hashlib.sha256(entry.manifest_store).hexdigest(),
        "media_type": entry.media_type,
        "watermark_id": entry.watermark_id,
        "iscc": entry.iscc,
        "pdq": entry.pdq.bits.hex() if entry.pdq else None,
        "pdq_quality": entry.pdq.quality if entry.pdq else None,
        "key_id": entry.key_id,
        "created_at": created,
    }
    if entry.confirmation is not None:  # absent from rows written before prints existed: their digest stands
        fields["confirmation_sha256"] = hashlib.sha256(entry.confirmation).hexdigest()
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class EntryFault(StrEnum):
    SIGNATURE = "signature"  # the stored manifest store does not verify
    UNTRUSTED = "untrusted"  # it verifies, but not to a trusted signer
    MANIFEST_ID = "manifest_id"  # the row's key is not the store's active manifest
    ISCC = "iscc"
    PDQ = "pdq"
    WATERMARK = "watermark"
    CONFIRMATION = "confirmation"


@dataclass(frozen=True)
class EntryCheck:
    faults: tuple[EntryFault, ...]

    @property
    def offerable(self) -> bool:
        return not self.faults


# The stored store is read against the file being recovered, which was altered or stripped since signing:
# its hard binding is expected to fail and says nothing about the stored entry.
HARD_BINDING_MISMATCHES = frozenset(
    {"assertion.dataHash.mismatch", "assertion.bmffHash.mismatch", "assertion.boxesHash.mismatch"}
)


def digest_matches(entry: RepositoryEntry, stored_digest: str) -> bool:
    """Check (1): the adapter never returns a row that fails it."""
    return hmac.compare_digest(stored_digest, entry_digest(entry))


def check_entry(entry: RepositoryEntry, report: VerificationReport, declared: DeclaredBindings) -> EntryCheck:
    """Check (2): whether `entry` may be offered. `report` and `declared` come from reading the entry's own
    manifest store with the engine (see reverify.py)."""
    faults: list[EntryFault] = []
    if any(c.code not in HARD_BINDING_MISMATCHES for c in report.codes.failure):
        faults.append(EntryFault.SIGNATURE)
    if report.signer is None or not report.signer.trusted:
        faults.append(EntryFault.UNTRUSTED)
    if report.manifest_id is None or report.manifest_id != entry.manifest_id:
        faults.append(EntryFault.MANIFEST_ID)
    if declared.iscc != entry.iscc:
        faults.append(EntryFault.ISCC)
    if declared.pdq != entry.pdq:
        faults.append(EntryFault.PDQ)
    if declared.watermark_id != entry.watermark_id:
        faults.append(EntryFault.WATERMARK)
    stored = hashlib.sha256(entry.confirmation).hexdigest() if entry.confirmation is not None else None
    if declared.confirmation_sha256 != stored:
        faults.append(EntryFault.CONFIRMATION)
    return EntryCheck(tuple(faults))
