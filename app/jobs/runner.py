"""The in-process job runner: `job_workers` threads that take queued rows from the jobs table and sign them
(app/jobs/work.py), and one sweeper thread that expires old jobs and requeues stalled ones.

Started by the app's lifespan in every service process; processes sharing a database share the queue (a
row is claimed by one conditional UPDATE). A job posted in this process wakes a thread at once; jobs posted
elsewhere are found within POLL_SECONDS. On shutdown a running job's sign is cancelled and the job goes
back to the queue; a process that dies leaves its job `running` until the job's lease runs out, then the
sweep of any process queues it again (at most MAX_ATTEMPTS tries, then it fails with a problem saying so).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from app.isolation import WorkerPool
from app.jobs.work import remove_files, run_job
from app.runtime import Runtime
from app.store.jobs import FAILED, MAX_ATTEMPTS, SUCCEEDED, Job, JobStore

log = logging.getLogger("hallmark")

POLL_SECONDS = 1.0
Finished = Callable[[Job], None]


def interrupted_problem(attempts: int) -> dict[str, object]:
    return {
        "type": "/problems/job-interrupted",
        "title": "Job interrupted",
        "status": 503,
        "detail": f"The service process running this job stopped {attempts} times before it finished; it "
        "was not tried again. Submit the file again.",
    }


class Sweeper:
    """Expiry and stalled-job recovery, shared by the in-process runner and the Procrastinate queue."""

    def __init__(
        self,
        store: JobStore,
        jobs_dir: Path,
        requeued: Callable[[str], None] | None = None,
        finished: Finished | None = None,
    ):
        self.store, self.jobs_dir = store, jobs_dir
        self.requeued = requeued  # the queue to hand a requeued job to (Procrastinate), if not the table
        self.finished = finished  # told of a job this sweep failed (its webhook)

    def sweep(self) -> None:
        for job in self.store.stalled():
            if job.attempts >= MAX_ATTEMPTS:
                if self.store.fail(job.id, interrupted_problem(job.attempts)):
                    remove_files(self.jobs_dir, job.id)
                    log.warning("job %s failed: interrupted %d times", job.id[:8], job.attempts)
                    failed = self.store.get(job.id)
                    if failed is not None and self.finished is not None:
                        self.finished(failed)
            elif self.store.requeue(job.id):
                log.warning("job %s requeued: the process running it stopped", job.id[:8])
                if self.requeued is not None:
                    self.requeued(job.id)
        for job_id in self.store.due():
            if self.store.expire(job_id):
                remove_files(self.jobs_dir, job_id)


class JobRunner:
    def __init__(
        self,
        rt: Runtime,
        pool: WorkerPool | None,
        store: JobStore,
        jobs_dir: Path,
        finished: Finished,
        *,
        workers: int,
        sweep_seconds: float,
        take_from_table: bool = True,
    ):
        self.rt, self.pool, self.store, self.jobs_dir, self.finished = rt, pool, store, jobs_dir, finished
        self.sweeper = Sweeper(store, jobs_dir, finished=finished)
        self.sweep_seconds = sweep_seconds
        self.stopping = threading.Event()
        self.wake = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"hallmark-job-{i}", daemon=True)
            for i in range(workers if take_from_table else 0)
        ]
        self._threads.append(threading.Thread(target=self._sweep, name="hallmark-job-sweep", daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def notify(self) -> None:
        """A job was queued by this process."""
        with self.wake:
            self.wake.notify()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        with self.wake:
            self.wake.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def run(self, job_id: str) -> None:
        """Sign one job (from a worker thread here, or from a Procrastinate task)."""
        final = run_job(self.rt, self.pool, self.store, self.jobs_dir, job_id, self.stopping.is_set)
        released = final is None and self.stopping.is_set() and self.store.state(job_id) == "queued"
        if released and self.sweeper.requeued is not None:  # released by this stopping process: hand it on
            self.sweeper.requeued(job_id)
        # A cancel's webhook is sent by the DELETE that made it (JobService.cancel), not here.
        if final is not None and final.state in (SUCCEEDED, FAILED):
            try:
                self.finished(final)
            except Exception:
                log.exception("job %s: the completion hook failed", job_id[:8])

    def _work(self) -> None:
        while not self.stopping.is_set():
            job_id = self.store.next_queued()
            if job_id is None:
                with self.wake:
                    self.wake.wait(POLL_SECONDS)
                continue
            try:
                self.run(job_id)
            except Exception:
                log.exception("job runner: job %s", job_id[:8])

    def _sweep(self) -> None:
        """At start (jobs left by a process that died: queued again once their lease has run out), then
        every `sweep_seconds`."""
        while True:
            try:
                self.sweeper.sweep()
            except Exception:
                log.exception("job sweep failed")
            if self.stopping.wait(self.sweep_seconds):
                return
