"""`JobStore`: the rows of the job API (app/jobs/), in the service's database.

States: queued -> running -> succeeded | failed; queued/running -> cancelled (DELETE); any finished or
queued row -> expired (the sweep, once `expires_at` has passed: its files are deleted). Every change is
one conditional UPDATE on the row's current state, so two processes never both claim a job, and a job
cancelled while it runs is never marked succeeded afterwards.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.store.tables import jobs

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, EXPIRED = (
    "queued", "running", "succeeded", "failed", "cancelled", "expired",
)  # fmt: skip
ACTIVE = (QUEUED, RUNNING)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
MAX_ATTEMPTS = 3  # a job whose process died this many times while running it fails


@dataclass(frozen=True)
class Job:
    id: str
    api_key_id: str
    state: str
    phase: str
    progress: float
    params: dict[str, Any]
    upload_size: int
    attempts: int
    problem: dict[str, Any] | None
    result_media_type: str | None
    result_size: int | None
    result_headers: dict[str, str] | None
    webhook_url: str | None
    created_at: float
    updated_at: float
    expires_at: float
    idempotency_fingerprint: str | None = None  # with an Idempotency-Key: the request's fingerprint


class KeyTakenError(Exception):
    """Another job holds this API key's Idempotency-Key (the insert hit the unique index)."""


def _job(row: Any) -> Job:
    m = row._mapping
    return Job(
        id=m["id"], api_key_id=m["api_key_id"], state=m["state"], phase=m["phase"],
        progress=float(m["progress"]), params=json.loads(m["params"]), upload_size=int(m["upload_size"]),
        attempts=int(m["attempts"]), problem=json.loads(m["problem"]) if m["problem"] else None,
        result_media_type=m["result_media_type"], result_size=m["result_size"],
        result_headers=json.loads(m["result_headers"]) if m["result_headers"] else None,
        webhook_url=m["webhook_url"], created_at=float(m["created_at"]), updated_at=float(m["updated_at"]),
        expires_at=float(m["expires_at"]), idempotency_fingerprint=m["idempotency_fingerprint"],
    )  # fmt: skip


def new_job_id() -> str:
    """256 random bits: the job's id is also the only thing that names its result."""
    return secrets.token_urlsafe(32)


# Called inside the transaction that inserts a job (Procrastinate defers it there: app/jobs/queue.py).
OnInsert = Callable[[sa.Connection, str], None]


class JobStore:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        ttl_seconds: float,
        lease_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ):
        self._engine = engine
        self.ttl_seconds = ttl_seconds
        self.lease_seconds = lease_seconds
        self.clock = clock

    def count_active(self, api_key_id: str) -> int:
        query = sa.select(sa.func.count()).where(jobs.c.api_key_id == api_key_id, jobs.c.state.in_(ACTIVE))
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def create(
        self,
        job_id: str,
        api_key_id: str,
        params: dict[str, Any],
        upload_size: int,
        webhook_url: str | None,
        on_insert: OnInsert | None = None,
        idempotency: tuple[str, str] | None = None,
    ) -> Job:
        """Insert a queued job (and, through `on_insert`, its queue entry, in the same transaction). With
        `idempotency` (key, fingerprint): raises `KeyTakenError`, inserting nothing, when another job of the
        API key holds that key."""
        now = self.clock()
        row = {
            "id": job_id, "api_key_id": api_key_id, "state": QUEUED, "phase": "received", "progress": 0.05,
            "params": json.dumps(params, sort_keys=True), "upload_size": upload_size, "attempts": 0,
            "webhook_url": webhook_url, "created_at": now, "updated_at": now,
            "expires_at": now + self.ttl_seconds,
            "idempotency_key": idempotency[0] if idempotency else None,
            "idempotency_fingerprint": idempotency[1] if idempotency else None,
        }  # fmt: skip
        try:
            with self._engine.begin() as conn:
                conn.execute(jobs.insert(), row)
                if on_insert is not None:
                    on_insert(conn, job_id)
                inserted = conn.execute(jobs.select().where(jobs.c.id == job_id)).one()
        except sa.exc.IntegrityError:
            if idempotency is None or self.by_idempotency_key(api_key_id, idempotency[0]) is None:
                raise
            raise KeyTakenError from None  # rolled back: no row, no queue entry
        return _job(inserted)

    def by_idempotency_key(self, api_key_id: str, key: str) -> Job | None:
        query = jobs.select().where(jobs.c.api_key_id == api_key_id, jobs.c.idempotency_key == key)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return _job(row) if row is not None else None

    def forget_idempotency_key(self, job_id: str, key: str) -> None:
        """The key's time to live has passed: the job keeps its row, the key is free for a new request."""
        statement = (
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.idempotency_key == key)
            .values(idempotency_key=None, idempotency_fingerprint=None)
        )
        with self._engine.begin() as conn:
            conn.execute(statement)  # as queued, whoever claims it next

    def get(self, job_id: str, api_key_id: str | None = None) -> Job | None:
        """The job; with `api_key_id`, only when that key owns it."""
        query = jobs.select().where(jobs.c.id == job_id)
        if api_key_id is not None:
            query = query.where(jobs.c.api_key_id == api_key_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return _job(row) if row is not None else None

    def state(self, job_id: str) -> str | None:
        with self._engine.connect() as conn:
            value = conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job_id)).scalar_one_or_none()
        return str(value) if value is not None else None

    def _update(self, job_id: str, states: tuple[str, ...], **values: Any) -> bool:
        statement = (
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.state.in_(states))
            .values(updated_at=self.clock(), **values)
        )
        with self._engine.begin() as conn:
            return bool(conn.execute(statement).rowcount)

    def claim(self, job_id: str) -> bool:
        """Queued -> running for this process (False: someone else has it, or it was cancelled)."""
        now = self.clock()
        return self._update(
            job_id, (QUEUED,), state=RUNNING, phase="prescan", progress=0.1,
            attempts=jobs.c.attempts + 1, lease_until=now + self.lease_seconds,
        )  # fmt: skip

    def next_queued(self) -> str | None:
        query = sa.select(jobs.c.id).where(jobs.c.state == QUEUED).order_by(jobs.c.created_at).limit(1)
        with self._engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return str(value) if value is not None else None

    def phase(self, job_id: str, phase: str, progress: float) -> bool:
        """Record the running job's phase and renew its lease (False: it is no longer running)."""
        return self._update(
            job_id, (RUNNING,), phase=phase, progress=progress, lease_until=self.clock() + self.lease_seconds
        )

    def renew(self, job_id: str) -> bool:
        return self._update(job_id, (RUNNING,), lease_until=self.clock() + self.lease_seconds)

    def succeed(self, job_id: str, media_type: str, size: int, headers: dict[str, str]) -> bool:
        return self._update(
            job_id, (RUNNING,), state=SUCCEEDED, phase="done", progress=1.0, lease_until=None,
            result_media_type=media_type, result_size=size, result_headers=json.dumps(headers),
            expires_at=self.clock() + self.ttl_seconds,
        )  # fmt: skip

    def fail(self, job_id: str, problem: dict[str, Any]) -> bool:
        return self._update(
            job_id, ACTIVE, state=FAILED, lease_until=None, problem=json.dumps(problem),
            expires_at=self.clock() + self.ttl_seconds,
        )  # fmt: skip

    def cancel(self, job_id: str) -> bool:
        return self._update(
            job_id, ACTIVE, state=CANCELLED, lease_until=None, expires_at=self.clock() + self.ttl_seconds
        )

    def stalled(self) -> list[Job]:
        """Running jobs whose lease ran out: their process died (or hangs past every renewal)."""
        query = jobs.select().where(jobs.c.state == RUNNING, jobs.c.lease_until < self.clock())
        with self._engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    def requeue(self, job_id: str) -> bool:
        """A stalled job goes back to the queue (its lease must still be run out: not renewed meanwhile)."""
        now = self.clock()
        statement = (
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.state == RUNNING, jobs.c.lease_until < now)
            .values(state=QUEUED, phase="received", progress=0.05, lease_until=None, updated_at=now)
        )
        with self._engine.begin() as conn:
            return bool(conn.execute(statement).rowcount)

    def release(self, job_id: str) -> bool:
        """This process stops (shutdown) while running the job: back to the queue, this try not counted."""
        return self._update(
            job_id, (RUNNING,), state=QUEUED, phase="received", progress=0.05, lease_until=None,
            attempts=jobs.c.attempts - 1,
        )  # fmt: skip

    def due(self) -> list[str]:
        """Ids of jobs past `expires_at` that are not running nor expired yet."""
        query = sa.select(jobs.c.id).where(
            jobs.c.expires_at <= self.clock(), jobs.c.state.in_((QUEUED, *FINISHED))
        )
        with self._engine.connect() as conn:
            return [str(v) for v in conn.execute(query).scalars()]

    def expire(self, job_id: str) -> bool:
        return self._update(job_id, (QUEUED, *FINISHED), state=EXPIRED)
