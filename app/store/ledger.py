"""`SqlLedger`: the audit ledger of every signature, behind the core's `Ledger` port."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from app.store.tables import signatures
from signing import LedgerEntry, LedgerError


class SqlLedger:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def record(self, entry: LedgerEntry) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(signatures.insert(), asdict(entry))
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
