"""The tamper-evident ledger's SQL side: events, the sealer, and reading everything back for verification.

Rows get their seq from the database on insert (one small INSERT, no read of the chain head): a sign never
waits for the chain. The sealer, one at a time (it takes the database write lock by updating the single
`ledger_sealer` row first; on PostgreSQL the same row lock, or an advisory lock, serialises sealers),
links every row above each table's sealed head, in seq order, into the chain and the tree, and signs a
checkpoint with the service key. A row that appears below a table's sealed head is never sealed: on SQLite,
where writes are serialised, only a forged insert can put one there, and `audit verify` names it.
(PostgreSQL will need a grace period: a sequence number taken by a transaction that commits late.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from app.store.db import APPEND_LOCK_KEY
from app.store.tables import (
    key_events,
    ledger_checkpoint_timestamps,
    ledger_checkpoints,
    ledger_events,
    ledger_links,
    ledger_sealer,
    signatures,
)
from signing import (
    CHAIN_START,
    AuditCheckpoint,
    KeySigner,
    LedgerError,
    LedgerLink,
    LedgerRow,
    extend_frontier,
    link_rows,
    root_from_frontier,
    sign_checkpoint,
)

log = logging.getLogger("hallmark.audit")

# Row kind -> table and the column that says when the row was written.
SOURCES: dict[str, tuple[sa.Table, str]] = {
    "signature": (signatures, "created_at"),
    "key_event": (key_events, "at"),
    "event": (ledger_events, "at"),
}


def event_data(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def event_row(kind: str, subject: str, data: Mapping[str, Any], at: datetime | None = None) -> dict[str, Any]:
    return {"at": at or datetime.now(UTC), "kind": kind, "subject": subject, "data": event_data(data)}


def record_event(
    engine: sa.Engine, kind: str, subject: str, data: Mapping[str, Any], *, failure: str | None = None
) -> None:
    """Append one API-key or configuration event to the ledger (its own transaction)."""
    try:
        with engine.begin() as conn:
            conn.execute(ledger_events.insert(), event_row(kind, subject, data))
    except SQLAlchemyError as exc:
        raise LedgerError(
            failure or "The change was made but could not be recorded in the audit ledger.",
            details={"database_error": type(exc).__name__},
        ) from None


def ledger_row(kind: str, mapping: sa.RowMapping | Mapping[str, Any]) -> LedgerRow:
    return LedgerRow(kind, int(mapping["seq"]), {k: v for k, v in mapping.items() if k != "seq"})


@dataclass(frozen=True)
class SealResult:
    linked: int
    tree_size: int
    checkpoints: int


@dataclass(frozen=True)
class SealStatus:
    unsealed: int
    lag_seconds: float  # age of the oldest unsealed row (0 when none)
    tree_size: int


def _sealed_head(conn: sa.Connection, kind: str) -> int:
    query = sa.select(sa.func.max(ledger_links.c.row_seq)).where(ledger_links.c.source == kind)
    value = conn.execute(query).scalar_one()
    return int(value) if value is not None else 0


def _checkpoint(row: Any, timestamp: str | None = None) -> AuditCheckpoint:
    created = row.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return AuditCheckpoint(
        tree_size=row.tree_size,
        root_hash=row.root_hash,
        chain_head=row.chain_head,
        created_at=created,
        key_id=row.key_id,
        algorithm=row.algorithm,
        certificate_chain=row.certificate_chain,
        signature=row.signature,
        timestamp=timestamp,
    )


class Sealer:
    """Links unsealed rows into the chain and writes a signed checkpoint per batch."""

    def __init__(self, engine: sa.Engine, *, batch: int = 5000):
        self._engine = engine
        self._batch = batch

    def seal(self, signer: KeySigner) -> SealResult:
        linked = checkpoints = 0
        tree_size = 0
        final = self._final_seqs()
        while True:
            n, tree_size = self._seal_batch(signer, final)
            if n == 0:
                break
            linked += n
            checkpoints += 1
            if n < self._batch:
                break
        return SealResult(linked, tree_size, checkpoints)

    def _final_seqs(self) -> dict[str, int] | None:
        """PostgreSQL: the newest seq per table below which no append is still in flight (None: SQLite,
        where every committed seq is final). Waits for appends holding the lock; new ones wait meanwhile."""
        if self._engine.dialect.name != "postgresql":
            return None
        with self._engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})
            return {
                kind: int(conn.execute(sa.select(sa.func.max(table.c.seq))).scalar_one() or 0)
                for kind, (table, _) in SOURCES.items()
            }

    def _seal_batch(self, signer: KeySigner, final: dict[str, int] | None) -> tuple[int, int]:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            # The write lock first: one sealer at a time, and what it reads next is the newest state.
            lock = conn.execute(ledger_sealer.update().where(ledger_sealer.c.id == 1).values(sealed_at=now))
            if lock.rowcount == 0:
                conn.execute(ledger_sealer.insert().values(id=1, sealed_at=now))
            last = conn.execute(
                ledger_checkpoints.select().order_by(ledger_checkpoints.c.tree_size.desc()).limit(1)
            ).first()
            size = int(last.tree_size) if last else 0
            frontier = [bytes.fromhex(h) for h in json.loads(last.frontier)] if last else []
            head = bytes.fromhex(last.chain_head) if last else CHAIN_START
            top = conn.execute(sa.select(sa.func.max(ledger_links.c.position))).scalar_one() or 0
            if top != size:
                raise LedgerError(
                    f"The audit chain has {top} links but its newest checkpoint covers {size}: "
                    "refusing to seal on top of links no checkpoint signed.",
                    hint="Run `hallmark audit verify` to see what changed.",
                )
            rows: list[LedgerRow] = []
            for kind, (table, _) in SOURCES.items():
                room = self._batch - len(rows)
                if room <= 0:
                    break
                above = _sealed_head(conn, kind)
                query = table.select().where(table.c.seq > above)
                if final is not None:
                    query = query.where(table.c.seq <= final[kind])
                query = query.order_by(table.c.seq).limit(room)
                rows += [ledger_row(kind, r._mapping) for r in conn.execute(query)]
            if not rows:
                return 0, size
            links, head = link_rows(rows, start_position=size + 1, chain_head=head)
            conn.execute(
                ledger_links.insert(),
                [
                    {"position": lk.position, "source": lk.kind, "row_seq": lk.seq,
                     "leaf_hash": lk.leaf_hash, "chain_hash": lk.chain_hash}
                    for lk in links
                ],
            )  # fmt: skip
            frontier = extend_frontier(frontier, size, [bytes.fromhex(lk.leaf_hash) for lk in links])
            size += len(links)
            cp = sign_checkpoint(signer, size, root_from_frontier(frontier).hex(), head.hex(), now)
            conn.execute(
                ledger_checkpoints.insert(),
                {
                    "tree_size": cp.tree_size, "root_hash": cp.root_hash, "chain_head": cp.chain_head,
                    "created_at": cp.created_at, "key_id": cp.key_id, "algorithm": cp.algorithm,
                    "certificate_chain": cp.certificate_chain, "signature": cp.signature,
                    "frontier": json.dumps([h.hex() for h in frontier]),
                },
            )  # fmt: skip
        return len(links), size

    def newest_unstamped(self) -> AuditCheckpoint | None:
        """The newest checkpoint, if it has no timestamp yet (a token on it covers every older row too,
        so a backlog left by an unreachable TSA needs one token, not one per checkpoint)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                ledger_checkpoints.select().order_by(ledger_checkpoints.c.tree_size.desc()).limit(1)
            ).first()
            if row is None:
                return None
            stamped = conn.execute(
                sa.select(ledger_checkpoint_timestamps.c.tree_size).where(
                    ledger_checkpoint_timestamps.c.tree_size == row.tree_size
                )
            ).first()
        return None if stamped is not None else _checkpoint(row)

    def record_timestamp(self, tree_size: int, token: str) -> bool:
        """Store a checkpoint's token; False when another worker stored one first (insert-only table)."""
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    ledger_checkpoint_timestamps.insert(),
                    {"tree_size": tree_size, "stamped_at": datetime.now(UTC), "token": token},
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def status(self) -> SealStatus:
        """How far behind the sealer is: rows above each table's sealed head, and the oldest one's age."""
        unsealed, oldest = 0, None
        with self._engine.connect() as conn:
            for kind, (table, when) in SOURCES.items():
                above = _sealed_head(conn, kind)
                count, first = conn.execute(
                    sa.select(sa.func.count(), sa.func.min(table.c[when])).where(table.c.seq > above)
                ).one()
                unsealed += int(count)
                if first is not None:
                    first = first if first.tzinfo else first.replace(tzinfo=UTC)
                    oldest = first if oldest is None else min(oldest, first)
            size = conn.execute(sa.select(sa.func.max(ledger_checkpoints.c.tree_size))).scalar_one() or 0
        lag = max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest else 0.0
        return SealStatus(unsealed, lag, int(size))


def read_ledger(engine: sa.Engine) -> tuple[list[LedgerRow], list[LedgerLink], list[AuditCheckpoint]]:
    """Every ledger row, link and checkpoint (for `audit verify` and `audit export`)."""
    with engine.connect() as conn:
        rows = [
            ledger_row(kind, r._mapping)
            for kind, (table, _) in SOURCES.items()
            for r in conn.execute(table.select().order_by(table.c.seq))
        ]
        links = [
            LedgerLink(r.position, r.source, r.row_seq, r.leaf_hash, r.chain_hash)
            for r in conn.execute(ledger_links.select().order_by(ledger_links.c.position))
        ]
        tokens = {int(r.tree_size): str(r.token) for r in conn.execute(ledger_checkpoint_timestamps.select())}
        checkpoints = [
            _checkpoint(r, tokens.get(int(r.tree_size)))
            for r in conn.execute(ledger_checkpoints.select().order_by(ledger_checkpoints.c.tree_size))
        ]
    return rows, links, checkpoints
