"""Procrastinate as the job queue on PostgreSQL (filled in below), and the lifespan hook that runs its
worker. With the in-process runner (SQLite, or HALLMARK_JOB_QUEUE=in-process) the hook does nothing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any


@contextlib.asynccontextmanager
async def job_queue(jobs: Any) -> AsyncIterator[None]:
    queue = getattr(jobs, "queue", None)
    if queue is None:
        yield
        return
    async with queue.running():
        yield


class ProcrastinateQueue:  # replaced below when Procrastinate is wired in
    def __init__(self, rt: Any, runner: Any) -> None:
        raise NotImplementedError
