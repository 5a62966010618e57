"""One job's sign: the same pipeline as POST /v1/sign (app/sign_service.py: pre-scan, the sign's intent,
isolated sign, ledger row and manifest repository entry), from the upload on disk to the result on disk.

Each try of a job writes its own intent when its sign starts, not when the job is posted: a job may be tried
again after its process died (the earlier try's intent must stay open, as the trace of a sign that may have
been made and never committed), the key that signs is the one active when the job runs, and a job waiting
in the queue has attempted no signature (its intent would be reported as never committed).

Progress is the phase the job is in, not a byte count: c2pa-python 0.38.1 reports no progress while it
signs, so the figure moves at phase boundaries only (PHASES). `recording` starts when the ledger row is
being written (the sign itself is over) and lasts until the result is stored in the jobs folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.errors import hallmark_problem
from app.files import PRIVATE_FILE_MODE, delete
from app.isolation import WorkerPool
from app.request_context import bind_request_id, unbind_request_id
from app.runtime import Runtime
from app.sign_service import generation, result_headers, sign_file
from app.store.jobs import RUNNING, Job, JobStore
from signing import ConfigError, HallmarkError, Ledger, LedgerEntry, OutputMode, check_validity

log = logging.getLogger("hallmark")

# The phases a job passes through and the progress figure each one shows (0..1).
PHASES = {"received": 0.05, "prescan": 0.1, "signing": 0.2, "recording": 0.9, "done": 1.0}
CHECK_EVERY = 0.5  # seconds between looks at the job's row while its sign runs (cancelled? lease renewal)
COPY_CHUNK = 1 << 20


def upload_path(jobs_dir: Path, job_id: str) -> Path:
    return jobs_dir / f"{job_id}.upload"


def result_path(jobs_dir: Path, job_id: str) -> Path:
    return jobs_dir / f"{job_id}.result"


def remove_files(jobs_dir: Path, job_id: str) -> None:
    for path in (upload_path(jobs_dir, job_id), result_path(jobs_dir, job_id)):
        delete(path)
        delete(path.with_name(path.name + ".part"))


class Watch:
    """The sign's `cancelled` callback: true once the job's row is no longer running (DELETE cancelled it,
    from any process); also renews the job's lease. Looks at the database at most every CHECK_EVERY s."""

    def __init__(self, store: JobStore, job_id: str, stopping: Callable[[], bool]):
        self.store, self.job_id, self.stopping = store, job_id, stopping
        self._next = 0.0
        self._cancelled = False

    def __call__(self) -> bool:
        if self.stopping():
            return True
        now = time.monotonic()
        if not self._cancelled and now >= self._next:
            self._next = now + CHECK_EVERY
            self._cancelled = not self.store.renew(self.job_id)
        return self._cancelled


class _PhaseLedger:
    """The ledger, marking the job `recording` when the sign hands it its row."""

    def __init__(self, inner: Ledger, mark: Callable[[], None]):
        self.inner, self.mark = inner, mark

    def record(self, entry: LedgerEntry) -> None:
        self.mark()
        self.inner.record(entry)


def run_job(
    rt: Runtime,
    pool: WorkerPool | None,
    store: JobStore,
    jobs_dir: Path,
    job_id: str,
    stopping: Callable[[], bool] = lambda: False,
) -> Job | None:
    """Claim and sign one job; returns its final row (None: not claimed, someone else has it). When this
    process is `stopping`, the sign is cancelled and the job goes back to the queue."""
    if not store.claim(job_id):
        return None
    job = store.get(job_id)
    assert job is not None
    token = bind_request_id(job.params.get("request_id"))  # the ledger row names the POST that made it
    try:
        _sign(rt, pool, store, jobs_dir, job, stopping)
    except Exception as exc:
        if stopping() and store.release(job_id):
            log.info("job %s goes back to the queue: this process is stopping", job_id[:8])
            return None
        _failed(store, job_id, exc)
    finally:
        unbind_request_id(token)
    final = store.get(job_id)
    if final is not None and final.state != "succeeded":
        remove_files(jobs_dir, job_id)  # failed or cancelled: nothing to download
    return final


def _failed(store: JobStore, job_id: str, exc: Exception) -> None:
    """Record `exc` as the job's problem (problem+json, as /v1/sign would have answered)."""
    if isinstance(exc, HallmarkError):
        log.info("job %s failed: %s", job_id[:8], exc.diagnostics())
        store.fail(job_id, bytes_json(hallmark_problem(exc).body))
    else:
        log.error("job %s failed unexpectedly", job_id[:8], exc_info=exc)
        store.fail(job_id, _internal())


def _sign(
    rt: Runtime,
    pool: WorkerPool | None,
    store: JobStore,
    jobs_dir: Path,
    job: Job,
    stopping: Callable[[], bool],
) -> None:
    ctx = rt.sign_ctx
    if ctx is None:
        raise ConfigError("Signing is unavailable: " + (rt.public_signer_problem or "no key is loaded."))
    check_validity(ctx.signer.key.certificate, rt.clock.now())
    info = generation(rt, job.params["fields"])
    mode = OutputMode(job.params["output"])
    watch = Watch(store, job.id, stopping)
    ctx = replace(ctx, ledger=_PhaseLedger(ctx.ledger, lambda: _mark(store, job.id, "recording")))
    with open(upload_path(jobs_dir, job.id), "rb") as source:
        _mark(store, job.id, "signing")
        outcome = sign_file(
            rt, pool, source, info, mode, job.api_key_id, watch, ctx=ctx,
            deadline_seconds=rt.settings.job_deadline_seconds,
        )  # fmt: skip
    with outcome.output as output:
        media_type, headers = result_headers(outcome, mode, job.params.get("filename"))
        final = result_path(jobs_dir, job.id)
        part = final.with_name(final.name + ".part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            output.seek(0)
            shutil.copyfileobj(output, out, COPY_CHUNK)
        os.replace(part, final)
    delete(upload_path(jobs_dir, job.id))
    if not store.succeed(job.id, media_type, outcome.signed.output_size, headers):
        # Cancelled after the ledger row was written: the signature is on record, the result is not kept.
        log.info("job %s was cancelled after signing; its result is discarded", job.id[:8])


def _mark(store: JobStore, job_id: str, phase: str) -> None:
    store.phase(job_id, phase, PHASES[phase])


def bytes_json(body: bytes | memoryview) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(bytes(body))
    return value


def _internal() -> dict[str, Any]:
    return {
        "type": "/problems/internal",
        "title": "Internal error",
        "status": 500,
        "detail": "An unexpected error occurred while signing; it has been logged.",
    }


__all__ = ["PHASES", "RUNNING", "remove_files", "result_path", "run_job", "upload_path"]
