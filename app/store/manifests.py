"""`SqlManifestRepository`: the manifest repository behind the core's `ManifestRepository` port.

Rows live in the `manifests` table; the fingerprint indexes live in memory, loaded from the table at start
and brought up to date before every lookup from rows other worker processes added (rows newer than the last
`seq` read, plus numbers skipped recently, which on PostgreSQL may still commit: one indexed query). ISCC
codes are indexed by kind (image, audio, video; one faiss index each, holding only the 64-bit bodies), so a
query only ever meets codes of its own kind. Watermark ids are also indexed by their 125-bit code word (16
bytes a row), for the search near a blind read that the error correction could not decode. A row whose
digest does not match is never returned.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from app.store.fingerprint_index import BinaryRadiusIndex
from app.store.tables import manifests
from signing import (
    ISCC_BITS,
    PDQ_BITS,
    PDQ_CANDIDATE_DISTANCE,
    PDQ_MAX_DISTANCE,
    PDQ_MIN_QUALITY,
    WATERMARK_WORD_BYTES,
    WATERMARK_WORD_RADIUS,
    FingerprintMatch,
    IsccKind,
    IsccUnit,
    PdqHash,
    RepositoryEntry,
    StorageError,
    digest_matches,
    entry_digest,
    fingerprint_match,
    hamming,
    iscc_unit,
    match_rank,
    watermark_codeword,
)

_INDEXED = (
    manifests.c.seq,
    manifests.c.iscc,
    manifests.c.pdq,
    manifests.c.pdq_quality,
    manifests.c.watermark_id,
)
GAP_SECONDS = 600.0  # far longer than any sign's transaction
MAX_GAPS = 1000


class SqlManifestRepository:
    def __init__(self, engine: sa.Engine):
        self._engine = engine
        self._lock = threading.Lock()
        self._iscc = {kind: BinaryRadiusIndex(ISCC_BITS, kind.max_distance) for kind in IsccKind}
        self._pdq = BinaryRadiusIndex(PDQ_BITS, PDQ_MAX_DISTANCE)
        self._words = BinaryRadiusIndex(8 * WATERMARK_WORD_BYTES, WATERMARK_WORD_RADIUS)
        self._last_seq = 0
        self._gaps: dict[int, float] = {}  # seq -> when first missed
        self._catch_up()

    def put(self, entry: RepositoryEntry) -> None:
        row = manifest_row(entry)
        try:
            with self._engine.begin() as conn:
                conn.execute(manifests.insert(), row)
        except SQLAlchemyError as exc:
            raise StorageError(
                "The signed manifest could not be stored in the manifest repository.",
                hint="Check the database (disk space, permissions, migrations) and retry.",
                details={"database_error": type(exc).__name__},
            ) from None
        self._catch_up()

    def get(self, manifest_id: str) -> RepositoryEntry | None:
        return self._one(manifests.c.manifest_id == manifest_id)

    def by_watermark(self, watermark_id: str) -> RepositoryEntry | None:
        return self._one(manifests.c.watermark_id == watermark_id)

    def nearest(self, *, iscc: str | None, pdq: PdqHash | None, limit: int = 5) -> list[FingerprintMatch]:
        self._catch_up()
        candidates: dict[int, int] = {}  # seq -> best rank so far, to fetch the likeliest rows only
        with self._lock:
            if iscc is not None:
                query = iscc_unit(iscc)
                index = self._iscc[query.kind]
                for seq, distance in index.within(query.body):
                    candidates[seq] = min(candidates.get(seq, distance), distance)
            if pdq is not None and pdq.indexable:
                image_radius = self._iscc[IsccKind.IMAGE].radius
                for seq, distance in self._pdq.within(pdq.bits):
                    scaled = distance * image_radius // PDQ_MAX_DISTANCE
                    candidates[seq] = min(candidates.get(seq, scaled), scaled)
        # Fetch a few more than asked: altered rows are dropped after the fetch.
        seqs = sorted(candidates, key=lambda s: candidates[s])[: limit * 2]
        matches = []
        for entry in self._many(manifests.c.seq.in_(seqs)) if seqs else []:
            match = fingerprint_match(entry, iscc, pdq)
            if match is not None:  # the row's own columns, digest-checked, decide (not the index)
                matches.append(match)
        return sorted(matches, key=match_rank)[:limit]

    def near_pictures(self, pdq: PdqHash | None, limit: int) -> list[RepositoryEntry]:
        if pdq is None or not pdq.indexable:
            return []
        self._catch_up()
        with self._lock:
            found = self._pdq.within(pdq.bits, PDQ_CANDIDATE_DISTANCE)
        distances = dict(found[: limit * 2])
        near = []
        for entry in self._many(manifests.c.seq.in_(list(distances))) if distances else []:
            # the row's own hash, digest-checked, decides (not the index)
            if entry.pdq is not None and entry.pdq.indexable:
                distance = hamming(pdq.bits, entry.pdq.bits)
                if distance <= PDQ_CANDIDATE_DISTANCE:
                    near.append((distance, entry))
        return [entry for _, entry in sorted(near, key=lambda item: item[0])][:limit]

    def near_watermarks(self, word: bytes | None, limit: int) -> list[RepositoryEntry]:
        if word is None or len(word) != WATERMARK_WORD_BYTES:
            return []
        self._catch_up()
        with self._lock:
            seqs = [seq for seq, _ in self._words.within(word)][: limit * 2]
        entries = self._many(manifests.c.seq.in_(seqs)) if seqs else []
        near = []
        for entry in entries:  # the row's own watermark id, digest-checked, decides (not the index)
            distance = _word_distance(entry.watermark_id, word)
            if distance is not None and distance <= WATERMARK_WORD_RADIUS:
                near.append((distance, entry))
        return [entry for _, entry in sorted(near, key=lambda item: item[0])][:limit]

    def watermark_count(self) -> int:
        # as of the last lookup: recovery asks right after near_watermarks, which has just caught up
        with self._lock:
            return len(self._words)

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(manifests)).scalar_one())

    def _one(self, where: sa.ColumnElement[bool]) -> RepositoryEntry | None:
        found = self._many(where)
        return found[0] if found else None

    def _many(self, where: sa.ColumnElement[bool]) -> list[RepositoryEntry]:
        with self._engine.connect() as conn:
            rows = conn.execute(manifests.select().where(where)).mappings().all()
        entries = [(_entry(row), row["integrity"]) for row in rows]
        return [entry for entry, digest in entries if digest_matches(entry, digest)]

    def _catch_up(self) -> None:
        with self._lock:
            new = manifests.c.seq > self._last_seq
            late = manifests.c.seq.in_(list(self._gaps)) if self._gaps else None
            query = (
                sa.select(*_INDEXED)
                .where(new if late is None else sa.or_(new, late))
                .order_by(manifests.c.seq)
            )
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
            self._note_gaps([row[0] for row in rows])
            iscc_new: dict[IsccKind, tuple[list[bytes], list[int]]] = {kind: ([], []) for kind in IsccKind}
            pdq_codes: list[bytes] = []
            pdq_ids: list[int] = []
            words: list[bytes] = []
            word_ids: list[int] = []
            for seq, iscc, pdq, quality, watermark_id in rows:
                word = _word(watermark_id)
                if word is not None:
                    words.append(word)
                    word_ids.append(seq)
                unit = _iscc_or_none(iscc)
                if unit is not None:
                    iscc_new[unit.kind][0].append(unit.body)
                    iscc_new[unit.kind][1].append(seq)
                if isinstance(pdq, bytes) and len(pdq) == PDQ_BITS // 8 and (quality or 0) >= PDQ_MIN_QUALITY:
                    pdq_codes.append(pdq)
                    pdq_ids.append(seq)
            for kind, (codes, ids) in iscc_new.items():
                self._iscc[kind].add(codes, ids)
            self._pdq.add(pdq_codes, pdq_ids)
            self._words.add(words, word_ids)
            if rows:
                self._last_seq = max(self._last_seq, rows[-1][0])

    def _note_gaps(self, seqs: list[int]) -> None:
        """Numbers skipped between the rows read are remembered and asked for again (for GAP_SECONDS, at most
        MAX_GAPS of them): on PostgreSQL a row may commit after one with a higher number (two signs in
        parallel), and would otherwise never be indexed. Rolled-back numbers simply age out."""
        now = time.monotonic()
        expected = self._last_seq + 1
        for seq in seqs:
            self._gaps.pop(seq, None)
            if seq > expected and seq - expected <= MAX_GAPS:
                self._gaps.update(dict.fromkeys(range(expected, seq), now))
            expected = max(expected, seq + 1)
        for seq in [s for s, seen in self._gaps.items() if now - seen > GAP_SECONDS]:
            del self._gaps[seq]
        for seq in sorted(self._gaps)[: max(0, len(self._gaps) - MAX_GAPS)]:  # the oldest numbers first
            del self._gaps[seq]


def _word(watermark_id: Any) -> bytes | None:
    """The code word of a stored watermark id (12 hex digits), or None for none or a malformed one."""
    if not isinstance(watermark_id, str):
        return None
    try:
        return watermark_codeword(int(watermark_id, 16))
    except ValueError:
        return None


def _word_distance(watermark_id: str | None, word: bytes) -> int | None:
    own = _word(watermark_id)
    return None if own is None else hamming(own, word)


def _iscc_or_none(code: Any) -> IsccUnit | None:
    if not isinstance(code, str):
        return None
    try:
        return iscc_unit(code)
    except ValueError:
        return None  # an altered row: its digest check will refuse it anyway


def _entry(row: Any) -> RepositoryEntry:
    created = row["created_at"]
    if isinstance(created, datetime) and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)  # SQLite drops the zone; we only store UTC
    pdq = None
    if row["pdq"] is not None and row["pdq_quality"] is not None:
        pdq = PdqHash(bits=bytes(row["pdq"]), quality=int(row["pdq_quality"]))
    return RepositoryEntry(
        manifest_id=row["manifest_id"],
        manifest_store=bytes(row["manifest_store"]),
        media_type=row["media_type"],
        watermark_id=row["watermark_id"],
        iscc=row["iscc"],
        pdq=pdq,
        key_id=row["key_id"],
        created_at=created,
        confirmation=bytes(row["confirmation"]) if row["confirmation"] is not None else None,
    )


def manifest_row(entry: RepositoryEntry) -> dict[str, Any]:
    """The `manifests` row of an entry (its `integrity` digest included)."""
    return {
        "manifest_id": entry.manifest_id,
        "manifest_store": entry.manifest_store,
        "media_type": entry.media_type,
        "watermark_id": entry.watermark_id,
        "iscc": entry.iscc,
        "pdq": entry.pdq.bits if entry.pdq else None,
        "pdq_quality": entry.pdq.quality if entry.pdq else None,
        "key_id": entry.key_id,
        "created_at": entry.created_at,
        "integrity": entry_digest(entry),
        "confirmation": entry.confirmation,
    }
