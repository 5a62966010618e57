"""`IdempotencyStore`: Idempotency-Key claims and stored sign results, in the service's database.

One row per (scope, key): scope is the API key's id ("-" when sign needs no key), so two API keys never
see each other's keys. A request claims a key by inserting a `pending` row with a fresh token and a lease;
it completes by turning its own row (same token) `done` AND inserting the signature's ledger row in ONE
transaction. A process killed at any moment therefore leaves either no ledger row (the row stays
`pending` until its lease runs out, then a retry claims it and signs) or the ledger row together with the
stored result (a retry replays it). A claim whose lease ran out and was taken over cannot complete: its
token no longer matches, its transaction writes nothing, and its signed file is withheld.

The result (headers and the signed bytes) is kept in the database, not on a local disk, so every service
process and machine sharing the database can replay it; rows are deleted once `ttl_seconds` have passed.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from app.store.intents import complete_intent
from app.store.tables import idempotency_keys, signatures
from signing import IdempotencyInProgressError, IdempotencyMismatchError, LedgerEntry, LedgerError

PENDING, DONE = "pending", "done"
PURGE_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Claim:
    """This request holds the key until it completes, releases it, or its lease runs out."""

    scope: str
    key: str
    token: str


@dataclass(frozen=True)
class StoredResult:
    """What the first request answered: replayed byte for byte."""

    manifest_id: str
    signature_id: str
    media_type: str
    headers: dict[str, str]
    body: bytes


def insert_ignoring_conflict(conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING (SQLite and PostgreSQL); the number of rows inserted (0 or 1)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing()
    # RETURNING, not rowcount: PostgreSQL's driver reports a row for a skipped insert.
    first_column = next(iter(table.primary_key.columns))
    return len(conn.execute(statement.returning(first_column)).all())


class IdempotencyStore:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        ttl_seconds: float,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
    ):
        self._engine = engine
        self.ttl_seconds = ttl_seconds
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._purged = 0.0

    def begin(self, scope: str, key: str, fingerprint: str) -> Claim | StoredResult:
        """Claim `key`, or the stored result of the request that used it. Raises `IdempotencyMismatchError`
        when it was used with another fingerprint, `IdempotencyInProgressError` while another request holds
        it (details: retry_after_seconds)."""
        self._purge_now_and_then()
        try:
            for _ in range(10):  # each pass either decides or sees the row change under it
                outcome = self._attempt(scope, key, fingerprint)
                if outcome is not None:
                    return outcome
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None
        raise IdempotencyInProgressError(
            "Another request with this Idempotency-Key is being processed.",
            details={"retry_after_seconds": 1},
        )

    def _attempt(self, scope: str, key: str, fingerprint: str) -> Claim | StoredResult | None:
        now = self._clock()
        token = str(uuid.uuid4())
        where = (idempotency_keys.c.scope == scope) & (idempotency_keys.c.key == key)
        with self._engine.begin() as conn:
            claimed = insert_ignoring_conflict(
                conn,
                idempotency_keys,
                {"scope": scope, "key": key, "fingerprint": fingerprint, "state": PENDING, "token": token,
                 "lease_until": now + self.lease_seconds, "expires_at": now + self.ttl_seconds},
            )  # fmt: skip
            if claimed:
                return Claim(scope, key, token)
            row = conn.execute(idempotency_keys.select().where(where)).first()
            if row is None:
                return None  # removed meanwhile: try again
            mine = where & (idempotency_keys.c.token == row.token)
            if row.expires_at <= now:
                conn.execute(idempotency_keys.delete().where(mine))
                return None
            if row.fingerprint != fingerprint:
                raise IdempotencyMismatchError(
                    "This Idempotency-Key was already used for a different request (other form fields, "
                    "options or file). A retry must repeat the first request exactly.",
                    hint="Use a new Idempotency-Key for a new request.",
                )
            if row.state == DONE:
                return StoredResult(
                    manifest_id=row.manifest_id,
                    signature_id=row.signature_id,
                    media_type=row.media_type,
                    headers=json.loads(row.headers),
                    body=bytes(row.body),
                )
            if row.lease_until > now:
                wait = max(1, math.ceil(row.lease_until - now))
                raise IdempotencyInProgressError(
                    "A request with this Idempotency-Key is still being processed; retry after it ends "
                    f"(at most {wait} s).",
                    details={"retry_after_seconds": wait},
                )
            # Its holder is gone (or too slow): take the key over. It can no longer complete.
            taken = conn.execute(
                idempotency_keys.update()
                .where(mine & (idempotency_keys.c.state == PENDING))
                .values(token=token, lease_until=now + self.lease_seconds)
            )
            return Claim(scope, key, token) if taken.rowcount == 1 else None

    def complete(
        self, claim: Claim, entry: LedgerEntry, media_type: str, headers: dict[str, str], body: bytes
    ) -> None:
        """Store the result and insert the ledger row, atomically; raises `IdempotencyInProgressError`
        (nothing written) when the claim was lost, `LedgerError` when the database fails."""
        now = self._clock()
        mine = (
            (idempotency_keys.c.scope == claim.scope)
            & (idempotency_keys.c.key == claim.key)
            & (idempotency_keys.c.token == claim.token)
            & (idempotency_keys.c.state == PENDING)
        )
        try:
            with self._engine.begin() as conn:
                done = conn.execute(
                    idempotency_keys.update()
                    .where(mine)
                    .values(
                        state=DONE,
                        signature_id=entry.id,
                        manifest_id=entry.manifest_id,
                        media_type=media_type,
                        headers=json.dumps(headers, sort_keys=True),
                        body=body,
                        expires_at=now + self.ttl_seconds,
                    )
                )
                if done.rowcount != 1:
                    raise _LostClaimError
                conn.execute(signatures.insert(), asdict(entry))
                complete_intent(conn, manifest_id=entry.manifest_id, signature_id=entry.id)
        except _LostClaimError:
            raise IdempotencyInProgressError(
                "This request took longer than the Idempotency-Key lease and another request with the same "
                "key took over; this one's result was discarded (nothing recorded).",
                details={"retry_after_seconds": 1},
            ) from None
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from None

    def release(self, claim: Claim) -> None:
        """Give the key back after a failure (nothing was recorded), so a retry may sign at once."""
        mine = (
            (idempotency_keys.c.scope == claim.scope)
            & (idempotency_keys.c.key == claim.key)
            & (idempotency_keys.c.token == claim.token)
            & (idempotency_keys.c.state == PENDING)
        )
        try:
            with self._engine.begin() as conn:
                conn.execute(idempotency_keys.delete().where(mine))
        except SQLAlchemyError:
            pass  # the lease runs out instead

    def purge(self) -> int:
        """Delete the entries past their time to live."""
        with self._engine.begin() as conn:
            gone = conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.expires_at <= self._clock())
            )
        return int(gone.rowcount)

    def _purge_now_and_then(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._purged < PURGE_EVERY_SECONDS:
                return
            self._purged = now
        # Expired rows are also skipped when read; the next purge tries again.
        with contextlib.suppress(SQLAlchemyError):
            self.purge()


class _LostClaimError(Exception):
    pass


def _unavailable(exc: SQLAlchemyError) -> LedgerError:
    return LedgerError(
        "The Idempotency-Key could not be checked or recorded in the database, so nothing was signed or "
        "returned.",
        hint="Retry with the same Idempotency-Key.",
        details={"database_error": type(exc).__name__},
    )
