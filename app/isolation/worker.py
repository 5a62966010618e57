"""The entry of an isolated worker process. Started from a fork server that imported this module (and with
it c2pa, numpy, Pillow, scipy) but made no c2pa object: each worker builds its own engine after the fork.

Protocol over the worker's end of a pipe (the parent is trusted, the file is not):
  parent -> worker: ("config", WorkerConfig) | ("job", Job)
  worker -> parent: ("ok", result) | ("error", HallmarkError) | ("unexpected", text)
                    | ("memory", None), after which the worker exits
                    | ("call", (name, args)): while a job runs, a request to the service (sign's signature
                      over the claim: the private key never enters a worker), answered by
  parent -> worker: ("return", value) | ("raise", HallmarkError)
"""

from __future__ import annotations

import logging
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

from app.isolation import jobs
from app.isolation.limits import WorkerLimits, arm_cpu_limit, keep_heap, limit_memory
from signing import Engine, HallmarkError

log = logging.getLogger("hallmark.worker")

MEMORY_EXIT = 3  # the exit status after a MemoryError was reported


class ServiceChannel:
    """The worker's calls into the service process, over the job's pipe, while a job runs."""

    def __init__(self, conn: Connection):
        self._conn = conn

    def call(self, name: str, *args: object) -> Any:
        self._conn.send(("call", (name, args)))
        kind, value = self._conn.recv()
        if kind == "raise":
            assert isinstance(value, HallmarkError)
            raise value
        assert kind == "return", f"unexpected answer {kind!r} to a call"
        return value


def main(conn: Connection, limits: WorkerLimits) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the service; the parent ends its workers
    limit_memory(limits.memory_bytes)
    keep_heap()
    config: jobs.WorkerConfig | None = None
    engine: Engine | None = None
    channel = ServiceChannel(conn)
    while True:
        try:
            kind, value = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        if kind == "config":
            config, engine = value, None
            continue
        assert config is not None, "a job before the configuration"
        arm_cpu_limit(limits.cpu_seconds)
        try:
            if engine is None:
                engine = Engine(config.engine)
            reply: tuple[str, object] = ("ok", jobs.run(value, config, engine, channel))
        except HallmarkError as exc:
            reply = ("error", exc)
        except MemoryError:
            conn.send(("memory", None))
            os._exit(MEMORY_EXIT)
        except Exception as exc:  # a bug, not the file's fault: the parent answers 500 and logs it
            reply = ("unexpected", f"{type(exc).__name__}: {exc}")
        conn.send(reply)
