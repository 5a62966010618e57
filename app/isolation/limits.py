"""The limits of an isolated worker process: applied inside the worker (rlimits) and by the parent's
watchdog (the wall deadline)."""

from __future__ import annotations

import resource
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerLimits:
    memory_bytes: int  # RLIMIT_AS of each worker: address space, including what the modules map at start
    cpu_seconds: int  # CPU time one job may use (RLIMIT_CPU, re-armed before each job)
    deadline_seconds: float  # wall-clock time one job may take; the parent SIGKILLs a worker past it
    max_jobs: int  # a worker is replaced after this many jobs (bounds leaks and fragmentation)


def limit_memory(memory_bytes: int) -> None:
    """Called once in a fresh worker: allocations past the limit fail (MemoryError in Python, an abort in
    native code); both end the worker, never the service."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def arm_cpu_limit(cpu_seconds: int) -> None:
    """RLIMIT_CPU counts the whole life of the process: before each job the soft limit is set to what the
    worker has used so far plus the job's share. Past it the kernel sends SIGXCPU, whose default action
    ends the process; the hard limit stays where it was so that the next job can be given its share."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + cpu_seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
