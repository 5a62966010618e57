"""Sign intents: a durable trace of every signature the service key is about to make.

A sign is intent -> sign -> commit -> respond. Right before the engine signs, `SqlSignIntents.open` inserts
one `open` row in its own short transaction (the manifest id the sign will use, the key and its certificate's
fingerprint, the API key, the request id, the input's SHA-256, when, and by when the sign must be over). The
transaction that inserts the signature's ledger row also turns its intent `completed` (`complete_intent`,
matched by manifest id: SqlLedger.record, IdempotencyStore.complete). A sign that fails or is cancelled
turns it `abandoned` with the error's type name. A process killed between the engine and the commit leaves
the row `open`: once past its `due_at` and the grace period, `hallmark audit verify` reports it as a
signature attempted but never committed (a crash, not tampering).

Why a table of its own and not hash-chained ledger rows: an intent is not a fact to keep unchanged but a
state that ends (completed or abandoned), so as ledger rows (insert-only) each sign would append two or three
chained rows instead of one, and every one of them would take the PostgreSQL append lock the sealer waits on
(app/store/db.py) and grow the chain the sealer hashes and `audit verify` walks. Here the sign pays one short
INSERT that touches neither the chain nor its lock, and one indexed UPDATE inside the transaction it commits
anyway; the chain, the sealer and the API-key events are untouched. What this gives up: intents are not
tamper-evident (someone who can write the database can delete an open one). They are evidence of crashes
for the operator; the signature rows, which are chained, stay the evidence of what was signed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from app.store.tables import sign_intents
from signing import LedgerError

log = logging.getLogger("hallmark.audit")

OPEN, COMPLETED, ABANDONED = "open", "completed", "abandoned"
REASON_LENGTH = 100
LISTED = 100  # at most this many uncommitted intents are listed (the count covers all)
PRUNE_BATCH = 500  # closed intents deleted per transaction: a short write lock (SQLite), a short transaction


@dataclass(frozen=True)
class SignIntent:
    id: str
    manifest_id: str
    created_at: float
    due_at: float
    request_id: str | None
    api_key_id: str | None
    key_id: str
    certificate_sha256: str
    input_sha256: str
    state: str
    closed_at: float | None
    signature_id: str | None
    reason: str | None

    def json(self) -> dict[str, Any]:
        return {
            "manifest_id": self.manifest_id, "created_at": utc_text(self.created_at),
            "due_at": utc_text(self.due_at), "request_id": self.request_id, "api_key_id": self.api_key_id,
            "key_id": self.key_id, "certificate_sha256": self.certificate_sha256,
            "input_sha256": self.input_sha256,
        }  # fmt: skip


@dataclass(frozen=True)
class IntentReport:
    """Open intents: `uncommitted` are past their due time and the grace period (the sign's process died
    between the engine and the commit), `in_progress` are not (yet)."""

    uncommitted: int
    oldest: float | None  # created_at of the oldest uncommitted one
    in_progress: int
    listed: list[SignIntent]  # the oldest uncommitted ones, at most LISTED


def utc_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _intent(row: Any) -> SignIntent:
    return SignIntent(**dict(row._mapping))


class SqlSignIntents:
    def __init__(self, engine: sa.Engine, *, clock: Callable[[], float] = time.time):
        self._engine = engine
        self._clock = clock

    def open(
        self,
        *,
        manifest_id: str,
        key_id: str,
        certificate_sha256: str,
        input_sha256: str,
        api_key_id: str | None,
        request_id: str | None,
        deadline_seconds: float,
    ) -> str:
        """Record that the service key is about to sign (committed before this returns); the intent's id.
        Raises `LedgerError` when it cannot be recorded: nothing is signed then."""
        now = self._clock()
        intent_id = str(uuid.uuid4())
        row = {
            "id": intent_id, "manifest_id": manifest_id, "created_at": now, "due_at": now + deadline_seconds,
            "request_id": request_id, "api_key_id": api_key_id, "key_id": key_id,
            "certificate_sha256": certificate_sha256, "input_sha256": input_sha256, "state": OPEN,
        }  # fmt: skip
        try:
            with self._engine.begin() as conn:
                conn.execute(sign_intents.insert(), row)
        except SQLAlchemyError as exc:
            raise LedgerError(
                "The sign could not be recorded in the audit ledger before signing, so nothing was signed.",
                hint="Check the database (disk space, permissions, migrations) and retry.",
                details={"database_error": type(exc).__name__},
            ) from None
        return intent_id

    def abandon(self, intent_id: str, reason: str) -> bool:
        """The sign failed or was cancelled before its ledger row was committed; `reason` is the error's
        type name. A no-op on an intent already closed (its row was committed). Never raises: an intent
        that cannot be closed stays open, and is reported as a sign never committed."""
        statement = (
            sign_intents.update()
            .where(sign_intents.c.id == intent_id, sign_intents.c.state == OPEN)
            .values(state=ABANDONED, closed_at=self._clock(), reason=reason[:REASON_LENGTH])
        )
        try:
            with self._engine.begin() as conn:
                return bool(conn.execute(statement).rowcount)
        except SQLAlchemyError as exc:
            log.warning("sign intent %s could not be marked abandoned (%s)", intent_id, type(exc).__name__)
            return False

    def get(self, manifest_id: str) -> SignIntent | None:
        with self._engine.connect() as conn:
            row = conn.execute(sign_intents.select().where(sign_intents.c.manifest_id == manifest_id)).first()
        return _intent(row) if row is not None else None

    def uncommitted(self, grace_seconds: float) -> int:
        """How many open intents are past their due time and the grace period: one COUNT over the
        (state, due_at) index, which holds few open rows (signs in flight and crashed ones)."""
        late = (sign_intents.c.state == OPEN) & (sign_intents.c.due_at < self._clock() - grace_seconds)
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(late)).scalar_one())

    def prune(self, retention_seconds: float, *, batch: int = PRUNE_BATCH) -> int:
        """Delete completed and abandoned intents whose sign's deadline (`due_at`, indexed with the state)
        is more than `retention_seconds` old, `batch` rows per transaction, until none is left; how many.
        Open intents are never deleted, however old: they are the evidence of a sign never committed.
        `retention_seconds` <= 0 keeps every intent."""
        if retention_seconds <= 0:
            return 0
        cutoff = self._clock() - retention_seconds
        closed = sign_intents.c.state.in_((COMPLETED, ABANDONED)) & (sign_intents.c.due_at < cutoff)
        oldest = sa.select(sign_intents.c.id).where(closed).limit(batch)
        statement = sign_intents.delete().where(sign_intents.c.id.in_(oldest))
        removed = 0
        while True:
            with self._engine.begin() as conn:
                count = conn.execute(statement).rowcount
            removed += count
            if count < batch:
                return removed

    def report(self, grace_seconds: float) -> IntentReport:
        """Open intents, split at `due_at + grace_seconds` (see `IntentReport`)."""
        cutoff = self._clock() - grace_seconds
        is_open = sign_intents.c.state == OPEN
        late = is_open & (sign_intents.c.due_at < cutoff)
        with self._engine.connect() as conn:
            count, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(sign_intents.c.created_at)).where(late)
            ).one()
            waiting = conn.execute(
                sa.select(sa.func.count()).where(is_open & (sign_intents.c.due_at >= cutoff))
            ).scalar_one()
            listed = [
                _intent(r)
                for r in conn.execute(
                    sign_intents.select().where(late).order_by(sign_intents.c.created_at).limit(LISTED)
                )
            ]
        return IntentReport(int(count), float(oldest) if oldest is not None else None, int(waiting), listed)


# Built once: on the sign's path, a statement made per call costs more in Python than the database's work.
_COMPLETE = (
    sign_intents.update()
    .where(sign_intents.c.manifest_id == sa.bindparam("m"), sign_intents.c.state == OPEN)
    .values(state=COMPLETED, closed_at=sa.bindparam("t"), signature_id=sa.bindparam("s"))
)


def complete_intent(conn: sa.Connection, *, manifest_id: str, signature_id: str) -> None:
    """In the transaction that inserts the signature's ledger row: its intent is completed. A sign with no
    intent (a path that writes none, or rows made before migration 0013) changes nothing."""
    conn.execute(_COMPLETE, {"m": manifest_id, "t": time.time(), "s": signature_id})
