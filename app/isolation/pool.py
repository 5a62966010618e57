"""A pool of isolated worker processes with a watchdog: every decode of untrusted bytes runs here.

Workers are forked from a fork server that preloaded the heavy modules (c2pa, numpy, Pillow) without making
a c2pa object, so a new worker costs a fork, not an import; each builds its own engine on its first job and
keeps it. The parent hands a worker a job naming a file by path and waits for the reply on the worker's
pipe, at most the wall deadline: past it, or when the client has gone, the worker is SIGKILLed and replaced
on the next request. A worker that dies (a crash, SIGXCPU at its CPU limit, SIGKILL by the kernel) or
reports a MemoryError is replaced too. Each event is counted in `hallmark_isolation_events_total`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from app.isolation import worker as entry
from app.isolation.jobs import Job, WorkerConfig
from app.isolation.limits import WorkerLimits
from app.metrics import ISOLATION_EVENTS
from signing import CapacityError, ClientGoneError, DecodeDeadlineError, HallmarkError, IsolationLimitError

log = logging.getLogger("hallmark")

PRELOAD = ["app.isolation.worker"]
WATCH_INTERVAL = 0.05  # seconds between checks whether the client is still there, while a job runs
# What a worker's job may ask the service for: `serve(name, *args)` (see WorkerPool.run).
Serve = Callable[..., Any]
UNREADABLE = (
    "The file is too complex or unreadable to verify within this server's limits: processing it {what}. "
    "Nothing was kept."
)


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    config: WorkerConfig | None = None  # the configuration last sent
    jobs: int = 0
    killed: bool = False
    # Made once, polled for every job: `Connection.poll` and `process.exitcode` build a selector per call.
    _reply: select.poll = field(default_factory=select.poll, repr=False)
    _ended: select.poll = field(default_factory=select.poll, repr=False)

    def __post_init__(self) -> None:
        self._reply.register(self.conn.fileno(), select.POLLIN)
        self._ended.register(self.process.sentinel, select.POLLIN)

    def replied(self, timeout: float) -> bool:
        """Whether the worker sent something (or ended: then reading gives EOFError) within `timeout` s."""
        return bool(self._reply.poll(math.ceil(timeout * 1000)))

    def ended(self) -> bool:
        """Whether the process has ended (its sentinel is readable), without waiting."""
        return bool(self._ended.poll(0))

    def kill(self) -> None:
        """SIGKILL (idempotent) and reap: no zombie is left behind."""
        if self.killed:
            return
        self.killed = True
        if self.process.exitcode is None and self.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(5)
        self.conn.close()


@dataclass
class WorkerPool:
    size: int
    limits: WorkerLimits
    _idle: list[_Worker] = field(default_factory=list)
    _started: int = 0
    _busy: set[int] = field(default_factory=set)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False

    def run(
        self,
        job: Job,
        config: WorkerConfig,
        cancelled: Callable[[], bool] | None = None,
        serve: Serve | None = None,
    ) -> Any:
        """The job's result, or the HallmarkError the job raised; see the module doc for the rest.

        `serve` answers the worker's calls into this process while the job runs (sign: the signature over
        the claim, the TSA circuit breaker, whether a watermark id is taken), under the same deadline and
        cancellation watch; what it raises goes back to the worker as the call's exception."""
        worker = self._acquire()
        try:
            return self._exchange(worker, job, config, cancelled, serve)
        finally:
            self._release(worker)

    def close(self) -> None:
        """Kill every worker (idle and busy ones: a busy job's caller then gets a crash answer)."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in idle:
            worker.kill()

    @property
    def pids(self) -> list[int]:
        with self._cond:
            return [w.process.pid for w in self._idle if w.process.pid is not None] + list(self._busy)

    # --- the watchdog -------------------------------------------------------------------------------------

    def _exchange(
        self,
        worker: _Worker,
        job: Job,
        config: WorkerConfig,
        cancelled: Callable[[], bool] | None,
        serve: Serve | None = None,
    ) -> Any:
        try:
            if worker.config is not config:
                worker.conn.send(("config", config))
                worker.config = config
            worker.conn.send(("job", job))
        except OSError:
            raise self._died(worker) from None
        worker.jobs += 1
        deadline = time.monotonic() + self.limits.deadline_seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                worker.kill()
                ISOLATION_EVENTS.labels("deadline").inc()
                raise DecodeDeadlineError(
                    f"Processing the file took longer than this server's limit of "
                    f"{self.limits.deadline_seconds:g} s and was stopped. Nothing was kept.",
                    hint="The file is likely too complex for this server; a busy server may do better later.",
                    details={"retry_after_seconds": 30},
                )
            if worker.replied(min(remaining, WATCH_INTERVAL) if cancelled else remaining):
                try:
                    kind, value = worker.conn.recv()
                except (EOFError, OSError):
                    raise self._died(worker) from None
                if kind == "call":
                    self._answer(worker, serve, value)
                    continue
                return self._reply(worker, kind, value)
            if cancelled is not None and cancelled():
                worker.kill()
                ISOLATION_EVENTS.labels("cancelled").inc()
                raise ClientGoneError("The client closed the connection; its work was stopped.")

    def _answer(self, worker: _Worker, serve: Serve | None, value: Any) -> None:
        """One call from the worker into this process (see `run`). Only HallmarkErrors travel back as such;
        anything else is this side's bug and goes back as a generic failure (and is logged here)."""
        if serve is None:
            reply: tuple[str, object] = ("raise", HallmarkError("this job may not call the service"))
        else:
            name, args = value
            try:
                reply = ("return", serve(name, *args))
            except HallmarkError as exc:
                reply = ("raise", exc)
            except Exception as exc:
                log.exception("a worker's call %r failed in the service", name)
                reply = (
                    "raise",
                    HallmarkError(f"The service failed to answer its worker ({type(exc).__name__})."),
                )
        with contextlib.suppress(OSError):  # the worker is gone: the next poll sees its end
            worker.conn.send(reply)

    def _reply(self, worker: _Worker, kind: str, value: Any) -> Any:
        if kind == "ok":
            return value
        if kind == "error":
            assert isinstance(value, HallmarkError)
            raise value
        if kind == "unexpected":
            raise RuntimeError(f"isolated worker failed: {value}")
        if kind == "memory":
            worker.kill()
            ISOLATION_EVENTS.labels("memory").inc()
            raise IsolationLimitError(
                UNREADABLE.format(what="needed more memory than a worker may use"),
                details={"event": "memory"},
            )
        worker.kill()
        raise RuntimeError(f"isolated worker sent an unknown reply {kind!r}")

    def _died(self, worker: _Worker) -> IsolationLimitError:
        worker.process.join(5)
        code = worker.process.exitcode
        worker.kill()
        event = "cpu" if code == -signal.SIGXCPU else "crash"
        ISOLATION_EVENTS.labels(event).inc()
        log.warning("isolated worker ended on a file (exit status %s): %s", code, event)
        what = "used more CPU time than a worker may" if event == "cpu" else "crashed its worker process"
        return IsolationLimitError(UNREADABLE.format(what=what), details={"event": event})

    # --- workers ------------------------------------------------------------------------------------------

    def _acquire(self) -> _Worker:
        wait_until = time.monotonic() + self.limits.deadline_seconds
        with self._cond:
            while True:
                if self._closed:
                    raise CapacityError("The service is shutting down.", details={"retry_after_seconds": 5})
                if self._idle:
                    worker = self._idle.pop()
                    if worker.ended():  # died while idle (e.g. the OOM killer)
                        self._started -= 1
                        worker.kill()
                        continue
                    break
                if self._started < self.size:
                    self._started += 1
                    try:
                        worker = self._spawn()
                    except BaseException:
                        self._started -= 1
                        raise
                    break
                remaining = wait_until - time.monotonic()
                if remaining <= 0:
                    ISOLATION_EVENTS.labels("busy").inc()
                    raise CapacityError(
                        "Every isolated worker is busy; try again shortly.",
                        details={"retry_after_seconds": 2},
                    )
                self._cond.wait(remaining)
            if worker.process.pid is not None:
                self._busy.add(worker.process.pid)
        return worker

    def _release(self, worker: _Worker) -> None:
        retire = worker.killed or worker.jobs >= self.limits.max_jobs
        with self._cond:
            self._busy.discard(worker.process.pid or -1)
            if retire or self._closed:
                self._started -= 1
            else:
                self._idle.append(worker)
            self._cond.notify()
        if retire or self._closed:
            worker.kill()

    def _spawn(self) -> _Worker:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=entry.main, args=(child, self.limits), name="hallmark-decode", daemon=True
        )
        process.start()
        child.close()
        ISOLATION_EVENTS.labels("started").inc()
        return _Worker(process, parent)
