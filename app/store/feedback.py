"""`SqlFeedback`: answers to "Was this result right?", stored without personal data."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from app.store.tables import feedback
from signing import StorageError


@dataclass(frozen=True)
class FeedbackEntry:
    """Everything that is kept: no address, no user agent, no file, no time finer than the UTC day."""

    day: date
    outcome: str
    verdict_correct: bool
    manifest_id: str | None
    comment: str | None


class SqlFeedback:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def record(self, entry: FeedbackEntry) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(feedback.insert(), asdict(entry))
        except SQLAlchemyError as exc:
            raise StorageError(
                "The feedback could not be stored.",
                details={"database_error": type(exc).__name__},
            ) from None

    def list(self, *, limit: int = 50) -> list[FeedbackEntry]:
        query = feedback.select().order_by(feedback.c.seq.desc()).limit(limit)
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return [FeedbackEntry(**{k: v for k, v in row.items() if k != "seq"}) for row in rows]
