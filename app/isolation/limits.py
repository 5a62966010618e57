"""The limits of an isolated worker process: applied inside the worker (rlimits) and by the parent's
watchdog (the wall deadline)."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
from dataclasses import dataclass

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
_TRIM_THRESHOLD = 512 * 1024 * 1024


@dataclass(frozen=True)
class WorkerLimits:
    memory_bytes: int  # RLIMIT_AS of each worker: address space, including what the modules map at start
    cpu_seconds: int  # CPU time one job may use (RLIMIT_CPU, re-armed before each job)
    deadline_seconds: float  # wall-clock time one job may take; the parent SIGKILLs a worker past it
    max_jobs: int  # a worker is replaced after this many jobs (bounds leaks and fragmentation)


def limit_memory(memory_bytes: int) -> None:
    """Called once in a fresh worker: allocations past the limit fail (MemoryError in Python, an abort in
    native code); both end the worker, never the service. The soft limit only: the hard one stays, so that
    the ffmpeg/fpcalc a worker starts can be given their own limit (HALLMARK_MEDIA_FINGERPRINT_MEMORY_BYTES,
    app/media_features.py) even when it is higher; only the service's own code could raise it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        memory_bytes = min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))


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


def keep_heap() -> None:
    """Let a worker keep the memory it freed for its next job. A fresh worker's glibc otherwise unmaps the
    decoder's large buffers after every job and faults them in again on the next one, thousands of page
    faults per 1 MP recovery that the long-lived service process does not pay (found while measuring with
    bench/isolation_overhead.py). What a worker keeps stays within its RLIMIT_AS."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    except (OSError, AttributeError):  # not glibc: its defaults stand
        return
