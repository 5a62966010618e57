"""Isolation of untrusted decodes: a pool of worker processes with memory, CPU and wall-time limits
(pool.py, worker.py, limits.py), what they run (jobs.py), and the service side of verify and byContent
(service.py)."""

from __future__ import annotations

from app.isolation.limits import WorkerLimits
from app.isolation.pool import WorkerPool
from app.settings import Settings


def build_pool(settings: Settings) -> WorkerPool | None:
    """The pool for these settings (no process starts before the first job), or None: decode in-process."""
    if settings.isolation_workers == 0:
        return None
    limits = WorkerLimits(
        memory_bytes=settings.isolation_memory_bytes,
        cpu_seconds=settings.isolation_cpu_seconds,
        deadline_seconds=settings.verify_deadline_seconds,
        max_jobs=settings.isolation_max_jobs,
    )
    return WorkerPool(settings.isolation_workers, limits)


__all__ = ["WorkerLimits", "WorkerPool", "build_pool"]
