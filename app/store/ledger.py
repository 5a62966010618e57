"""`SqlLedger`: the audit ledger of every signature, behind the core's `Ledger` port."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from app.request_context import current_request_id
from app.store.intents import complete_intent
from app.store.tables import key_events, signatures
from signing import KeyEvent, LedgerEntry, LedgerError


class SqlLedger:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def record(self, entry: LedgerEntry) -> None:
        row = asdict(entry)
        if row["request_id"] is None:
            row["request_id"] = current_request_id()  # the HTTP request this sign runs for, if any
        try:
            with self._engine.begin() as conn:
                conn.execute(signatures.insert(), row)
                complete_intent(conn, manifest_id=entry.manifest_id, signature_id=entry.id)
        except SQLAlchemyError as exc:
            raise LedgerError(
                "The signature could not be recorded in the audit ledger, so the signed file was withheld.",
                hint="Check the database (disk space, permissions, migrations) and retry.",
                details={"database_error": type(exc).__name__},
            ) from None

    def list(self, *, limit: int = 50, manifest_id: str | None = None) -> list[LedgerEntry]:
        query = signatures.select().order_by(signatures.c.seq.desc()).limit(limit)
        if manifest_id:
            query = query.where(signatures.c.manifest_id == manifest_id)
        with self._engine.connect() as conn:
            return [_entry(row._mapping) for row in conn.execute(query)]

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(signatures)).scalar_one())


def _entry(row: Any) -> LedgerEntry:
    values = {k: v for k, v in dict(row).items() if k != "seq"}
    created = values["created_at"]
    if isinstance(created, datetime) and created.tzinfo is None:
        values["created_at"] = created.replace(tzinfo=UTC)  # SQLite drops the zone; we only store UTC
    return LedgerEntry(**values)


class SqlKeyEventLog:
    """Key events in the same database as the signature ledger, for one audit trail."""

    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def record(self, events: list[KeyEvent], certificates: dict[str, str | None]) -> None:
        if not events:
            return
        rows = [
            {
                "at": e.at, "key_id": e.key_id, "event": e.event, "from_state": e.from_state,
                "to_state": e.to_state, "reason": e.reason, "certificate_sha256": certificates.get(e.key_id),
            }
            for e in events
        ]  # fmt: skip
        try:
            with self._engine.begin() as conn:
                conn.execute(key_events.insert(), rows)
        except SQLAlchemyError as exc:
            raise LedgerError(
                "The key change was made but could not be recorded in the audit ledger.",
                details={"database_error": type(exc).__name__},
            ) from None

    def list(self, *, limit: int = 50, key_id: str | None = None) -> list[dict[str, Any]]:
        query = key_events.select().order_by(key_events.c.seq.desc()).limit(limit)
        if key_id:
            query = query.where(key_events.c.key_id == key_id)
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row.pop("seq", None)
            if isinstance(row["at"], datetime) and row["at"].tzinfo is None:
                row["at"] = row["at"].replace(tzinfo=UTC)
        return rows
