"""The job API for large files (POST /v1/jobs): the store of job rows (app/store/jobs.py), one job's sign
(work.py), the in-process runner and sweeper (runner.py), Procrastinate on PostgreSQL (queue.py), the
optional signed webhook (webhook.py). `JobService` is what the routes and the lifespan hold."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app.files import PRIVATE_FILE_MODE, make_private_dir
from app.isolation import WorkerLimits, WorkerPool
from app.jobs.runner import JobRunner
from app.jobs.webhook import WebhookSender, check_settings
from app.jobs.work import remove_files, upload_path
from app.runtime import Runtime
from app.settings import Settings
from app.store.jobs import Job, JobStore, KeyTakenError, OnInsert
from signing import ConfigError, IdempotencyInProgressError, IdempotencyMismatchError

log = logging.getLogger("hallmark")

COPY_CHUNK = 1 << 20


def build_job_pool(settings: Settings) -> WorkerPool | None:
    """The isolated workers of jobs: apart from POST /v1/sign's (a long job does not hold them), with the
    job's own CPU and wall-time limits. None: sign in this process (HALLMARK_ISOLATION_WORKERS=0)."""
    if settings.isolation_workers == 0 or settings.job_workers == 0:
        return None
    limits = WorkerLimits(
        memory_bytes=settings.isolation_memory_bytes,
        cpu_seconds=settings.job_cpu_seconds,
        deadline_seconds=settings.job_deadline_seconds,
        max_jobs=settings.isolation_max_jobs,
    )
    return WorkerPool(settings.job_workers, limits)


def uses_procrastinate(settings: Settings, dialect: str) -> bool:
    if settings.job_queue == "auto":
        return dialect == "postgresql"
    if settings.job_queue == "procrastinate" and dialect != "postgresql":
        raise ConfigError(
            "HALLMARK_JOB_QUEUE=procrastinate needs PostgreSQL (HALLMARK_DATABASE_URL=postgresql://...).",
            hint="Use HALLMARK_JOB_QUEUE=in-process (or auto) with SQLite.",
        )
    return settings.job_queue == "procrastinate"


@dataclass
class JobService:
    settings: Settings
    store: JobStore
    jobs_dir: Path
    runner: JobRunner
    pool: WorkerPool | None
    webhooks: WebhookSender
    on_insert: OnInsert | None = None  # Procrastinate's defer, in the insert's transaction
    queue: Any = None  # the Procrastinate queue (app/jobs/queue.py), when it runs the jobs

    def save_upload(self, job_id: str, upload: IO[bytes]) -> int:
        """Copy the upload (already spooled to disk by the multipart parser) into the jobs folder, owner-only;
        returns its size."""
        make_private_dir(self.jobs_dir)
        path = upload_path(self.jobs_dir, job_id)
        upload.seek(0)
        with open(path, "xb") as out:
            path.chmod(PRIVATE_FILE_MODE)
            shutil.copyfileobj(upload, out, COPY_CHUNK)
            return out.tell()

    def submit(
        self,
        job_id: str,
        api_key_id: str,
        params: dict[str, Any],
        size: int,
        webhook_url: str | None,
        idempotency: tuple[str, str] | None = None,
    ) -> tuple[Job, bool]:
        """Queue the job; (the job, True). With `idempotency` (key, fingerprint) and another job holding
        that key meanwhile (a simultaneous duplicate): this job is not made, its upload is deleted, and the
        answer is (that other job, False); a different fingerprint raises `IdempotencyMismatchError`."""
        for _ in range(3):  # a key whose time ran out is freed, then inserted again
            try:
                job = self.store.create(
                    job_id, api_key_id, params, size, webhook_url, self.on_insert, idempotency
                )
            except KeyTakenError:
                assert idempotency is not None
                earlier = self.earlier(api_key_id, *idempotency)
                if earlier is None:
                    continue
                remove_files(self.jobs_dir, job_id)
                return earlier, False
            except BaseException:
                remove_files(self.jobs_dir, job_id)
                raise
            if self.queue is None:
                self.runner.notify()
            return job, True
        remove_files(self.jobs_dir, job_id)
        raise IdempotencyInProgressError(
            "The Idempotency-Key changed hands while this job was being created; retry.",
            details={"retry_after_seconds": 1},
        )

    def earlier(self, api_key_id: str, key: str, fingerprint: str) -> Job | None:
        """The job this API key made with this Idempotency-Key (within HALLMARK_IDEMPOTENCY_TTL_SECONDS of
        its creation), or None. Raises `IdempotencyMismatchError` when it was made by a different request."""
        job = self.store.by_idempotency_key(api_key_id, key)
        if job is None:
            return None
        if job.created_at + self.settings.idempotency_ttl_seconds <= self.store.clock():
            self.store.forget_idempotency_key(job.id, key)
            return None
        if job.idempotency_fingerprint != fingerprint:
            raise IdempotencyMismatchError(
                "This Idempotency-Key was already used for a different job request (other form fields, "
                "options or file). A retry must repeat the first request exactly.",
                hint="Use a new Idempotency-Key for a new request.",
            )
        return job

    def discard(self, job_id: str) -> None:
        remove_files(self.jobs_dir, job_id)

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job (False: it is neither); its webhook, if any, is sent."""
        if not self.store.cancel(job_id):
            return False
        self.discard(job_id)
        job = self.store.get(job_id)
        if job is not None:
            self.webhooks.send(job)
        return True

    def stop(self) -> None:
        self.runner.stop()
        self.webhooks.stop()
        if self.pool is not None:
            self.pool.close()


def build_job_service(rt: Runtime) -> JobService:
    settings = rt.settings
    check_settings(settings)
    jobs_dir = settings.data_dir / "jobs"
    make_private_dir(jobs_dir)
    store = JobStore(rt.db, ttl_seconds=settings.job_result_ttl_seconds)
    pool = build_job_pool(settings)
    procrastinate = uses_procrastinate(settings, rt.db.dialect.name)
    webhooks = WebhookSender(settings)
    runner = JobRunner(
        rt, pool, store, jobs_dir, webhooks.send,
        workers=settings.job_workers, sweep_seconds=settings.job_sweep_seconds,
        take_from_table=not procrastinate,
    )  # fmt: skip
    service = JobService(settings, store, jobs_dir, runner, pool, webhooks)
    if procrastinate:
        from app.jobs.queue import ProcrastinateQueue  # noqa: PLC0415 - PostgreSQL only

        service.queue = ProcrastinateQueue(rt, runner)
        service.on_insert = service.queue.defer_in
        runner.sweeper.requeued = service.queue.defer
    runner.start()
    return service


__all__ = ["JobService", "build_job_service"]
