"""Procrastinate (pinned in pyproject.toml) as the job queue on PostgreSQL.

POST /v1/jobs inserts the job row and defers the Procrastinate job in ONE transaction (Procrastinate's
`configure(connection=...)` on the psycopg connection under SQLAlchemy's): a crash leaves both or neither,
never a row nobody will run nor a queued task without its row. Each service process runs a Procrastinate
worker in its lifespan (an asyncio task; the sync sign runs in Procrastinate's worker threads, at most
HALLMARK_JOB_WORKERS at once), listening on its queue with LISTEN/NOTIFY. The task only names the job; the
row decides: it is claimed by the same conditional UPDATE as with the in-process runner, so a task run
twice signs once. Procrastinate's schema is created by migration 0011 on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import procrastinate
import sqlalchemy as sa

from app.jobs.runner import JobRunner
from app.runtime import Runtime

log = logging.getLogger("hallmark")

QUEUE = "hallmark-jobs"
TASK = "hallmark.sign_job"


def conninfo(db: sa.Engine) -> str:
    """The database URL as libpq takes it (no SQLAlchemy driver name)."""
    return db.url.set(drivername="postgresql").render_as_string(hide_password=False)


class ProcrastinateQueue:
    def __init__(self, rt: Runtime, runner: JobRunner):
        self.runner = runner
        self.concurrency = max(1, rt.settings.job_workers)
        self.take = rt.settings.job_workers > 0
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(conninfo=conninfo(rt.db), min_size=1, max_size=4)
        )

        @self.app.task(name=TASK, queue=QUEUE, pass_context=False)
        def sign_job(job_id: str) -> None:
            runner.run(job_id)

        # Deferring goes through a sync connector on the caller's own connection (it opens no pool).
        self.deferrer = procrastinate.App(
            connector=procrastinate.SyncPsycopgConnector(conninfo=conninfo(rt.db))
        )
        self.task = sign_job

    def defer_in(self, conn: sa.Connection, job_id: str) -> None:
        """Defer the job in the transaction of `conn` (the caller commits)."""
        driver = conn.connection.driver_connection
        self.deferrer.configure_task(TASK, queue=QUEUE, connection=driver).defer(job_id=job_id)

    def defer(self, job_id: str) -> None:
        """Defer a job on a connection of its own (a requeued job)."""
        engine: sa.Engine = self.runner.store._engine
        with engine.begin() as conn:
            self.defer_in(conn, job_id)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.app.open_async():
            worker: asyncio.Task[Any] | None = None
            if self.take:
                worker = asyncio.create_task(
                    self.app.run_worker_async(
                        queues=[QUEUE],
                        concurrency=self.concurrency,
                        install_signal_handlers=False,
                        wait=True,
                        name="hallmark",
                    )
                )
            try:
                yield
            finally:
                self.runner.stopping.set()  # a running sign is cancelled and its job deferred again
                if worker is not None:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await worker


@contextlib.asynccontextmanager
async def job_queue(jobs: Any) -> AsyncIterator[None]:
    """The lifespan's hook: runs Procrastinate's worker while the app serves (nothing in-process mode)."""
    queue = getattr(jobs, "queue", None)
    if queue is None:
        yield
        return
    async with queue.running():
        yield
