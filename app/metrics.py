"""Prometheus metrics. One process: the default registry. `hallmark serve --workers N` (N > 1) runs the
workers in prometheus-client's multiprocess mode: each writes its values to files in a private directory
(PROMETHEUS_MULTIPROC_DIR, set by `serve` before the workers start), and /metrics, whichever worker answers
it, adds up every worker's counters. Gauges say how they combine (`multiprocess_mode`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    multiprocess,
)

from app.temp_sweep import prefix as temp_prefix

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter("hallmark_http_requests_total", "HTTP requests answered, by status", ["status"])
SIGNED = Counter("hallmark_signed_total", "Files signed", ["media_type", "output"])
VERIFIED = Counter("hallmark_verified_total", "Files verified", ["outcome"])
PROBLEMS = Counter("hallmark_problems_total", "Requests answered with a problem", ["code"])
ISOLATION_EVENTS = Counter(
    "hallmark_isolation_events_total",
    "Isolated decode workers: started, and ended by crash, cpu, memory, deadline, cancelled (client gone); "
    "busy: no worker free in time",
    ["event"],
)
# Every worker runs the sealer and measures: the most recent measurement of any worker is the answer.
AUDIT_UNSEALED = Gauge(
    "hallmark_audit_unsealed_rows",
    "Ledger rows the sealer has not linked yet (at its last run)",
    multiprocess_mode="mostrecent",
)
AUDIT_SEAL_LAG = Gauge(
    "hallmark_audit_seal_lag_seconds",
    "Age of the oldest unsealed ledger row at the sealer's last run",
    multiprocess_mode="mostrecent",
)
AUDIT_SEALED = Gauge(
    "hallmark_audit_chain_rows",
    "Rows in the audit chain under a signed checkpoint",
    multiprocess_mode="mostrecent",
)
# Counted in the database by whichever worker answers /metrics, right before it answers (app/sealing.py
# refresh_audit_gauges), sealer or not: every worker's count is of the same table, so the most recent one is
# the answer ("max" would keep a higher count after the rows were closed or deleted; "liveall" would list one
# stale series per worker; "livesum" would add the same count up once per worker).
AUDIT_UNCOMMITTED_SIGNS = Gauge(
    "hallmark_audit_uncommitted_signs",
    "Signatures attempted (intent written) but never committed nor abandoned, past their deadline and "
    "HALLMARK_AUDIT_INTENT_GRACE_SECONDS: a process died between the engine and the ledger commit "
    "(counted when /metrics is scraped)",
    multiprocess_mode="mostrecent",
)
WORKERS = Gauge(
    "hallmark_workers", "Service worker processes running (live ones only)", multiprocess_mode="livesum"
)
AUDIT_TIMESTAMPS = Counter(
    "hallmark_audit_timestamps_total",
    "RFC 3161 timestamps requested for audit checkpoints: stamped, failed (TSA unreachable, slow or "
    "erroring), refused (a reply that is not a granted token over the checkpoint)",
    ["outcome"],
)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def multiprocess_dir() -> Path | None:
    # prometheus-client's own variable (read by the library at import to pick its value store), no setting.
    value = os.environ.get(MULTIPROC_ENV)  # noqa: TID251
    return Path(value) if value else None


def prepare_multiprocess_dir(workers: int) -> tuple[Path | None, bool]:
    """Called by `serve` before the workers start: the directory to use (None: single-process metrics) and
    whether `serve` made it (and removes it at exit). An operator's PROMETHEUS_MULTIPROC_DIR is used as it is,
    emptied of the previous run's value files (stale pids would count twice)."""
    given = multiprocess_dir()
    if given is not None:
        if not given.is_dir():
            raise ValueError(f"{MULTIPROC_ENV}={given} is not a directory")
        for stale in given.glob("*.db"):
            stale.unlink()
        return given, False
    if workers <= 1:
        return None, False
    return Path(tempfile.mkdtemp(prefix=temp_prefix("metrics"))), True  # mode 0700, fresh, private


def remove_multiprocess_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def worker_started() -> None:
    WORKERS.set(1)


def worker_stopped() -> None:
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
            os.getpid(), str(directory)
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead_workers(directory: Path) -> list[int]:
    """Mark the workers that died without saying so (SIGKILL, a crash) dead, so their live gauges stop
    counting; uvicorn replaces them with new processes that write their own files."""
    dead = []
    for path in directory.glob("gauge_live*_*.db"):
        pid_text = path.stem.rsplit("_", 1)[-1]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                int(pid_text), str(directory)
            )
            dead.append(int(pid_text))
    return dead


def exposition() -> bytes:
    """The text /metrics answers: this process's registry, or every worker's values added up."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest()
    sweep_dead_workers(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry)
