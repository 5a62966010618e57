"""The entry of an isolated worker process. Started from a fork server that imported this module (and with
it c2pa, numpy, Pillow, scipy) but made no c2pa object: each worker builds its own engine after the fork.

Protocol over the worker's end of a pipe (the parent is trusted, the file is not):
  parent -> worker: ("config", WorkerConfig) | ("job", Job)
  worker -> parent: ("ok", result) | ("error", HallmarkError) | ("unexpected", text)
                    | ("memory", None), after which the worker exits
"""

from __future__ import annotations

import logging
import os
import signal
from multiprocessing.connection import Connection

from app.isolation import jobs
from app.isolation.limits import WorkerLimits, arm_cpu_limit, keep_heap, limit_memory
from signing import Engine, HallmarkError

log = logging.getLogger("hallmark.worker")

MEMORY_EXIT = 3  # the exit status after a MemoryError was reported


def main(conn: Connection, limits: WorkerLimits) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the service; the parent ends its workers
    limit_memory(limits.memory_bytes)
    keep_heap()
    config: jobs.WorkerConfig | None = None
    engine: Engine | None = None
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
            reply: tuple[str, object] = ("ok", jobs.run(value, config, engine))
        except HallmarkError as exc:
            reply = ("error", exc)
        except MemoryError:
            conn.send(("memory", None))
            os._exit(MEMORY_EXIT)
        except Exception as exc:  # a bug, not the file's fault: the parent answers 500 and logs it
            reply = ("unexpected", f"{type(exc).__name__}: {exc}")
        conn.send(reply)
