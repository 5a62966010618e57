"""Admission of verification work: at most `running` verifies compute at once in this worker process, at most
`waiting` more wait (each at most `wait_seconds`) for a slot, and any beyond that is answered 503 at once.

Without it a flood of verifies queues in the thread pool and every request, the flood's and everyone
else's, waits behind all the others: on 2 cores 200 connections made the p99 of a 10 ms verify 3 s. With it
the requests admitted take about their usual time and the rest learn at once to come back (Retry-After).
A slot is taken after the upload has arrived and held only while the file is examined, so a slow upload
never holds one.

Retry-After is an appointment, not a constant: each refused request is given the next free place in a
virtual queue that advances at the rate this process completes verifications (measured), so a crowd of N
refused clients is told to come back spread over about N / rate seconds instead of all at once a second
later. With a fixed 1 s, 1,000 polite clients came back as a wave each second; the refusals alone kept the
event loop busy and the requests admitted waited behind them (p99 1.2 s for a 10 ms verify)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import hallmark_problem
from signing import CapacityError

SHED = Counter(
    "hallmark_verify_shed_total", "Verifications refused (503): every slot and queue place was taken"
)


RATE_WINDOW_SECONDS = 5.0  # time constant of the completion rate's moving average


class WorkGate:
    def __init__(
        self,
        running: int,
        waiting: int,
        wait_seconds: float,
        max_retry_after: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.running = running
        self.waiting = waiting
        self.wait_seconds = wait_seconds
        self.max_retry_after = max_retry_after
        self._clock = clock
        self._slots = threading.Semaphore(running)
        self._lock = threading.Lock()
        self._queued = 0
        self._busy = 0
        self._rate = 0.0  # completions per second, exponentially weighted
        self._rate_at = clock()
        self._next_return = 0.0  # the appointment given to the last request refused

    def _decayed(self, now: float) -> float:
        """Verifications completed per second lately (a moving average over about RATE_WINDOW_SECONDS).
        Called with the lock held."""
        return self._rate * math.exp(-(now - self._rate_at) / RATE_WINDOW_SECONDS)

    def _completed(self) -> None:
        now = self._clock()
        self._rate = self._decayed(now) + 1.0 / RATE_WINDOW_SECONDS
        self._rate_at = now

    def retry_after(self) -> int:
        """Seconds until the next free appointment (1 to max_retry_after): each call books one place in a
        virtual queue served at the measured completion rate (at least `running` per second, so that a
        gate with no history yet does not send its first refusals away for long)."""
        with self._lock:
            now = self._clock()
            rate = max(self._decayed(now), float(self.running))
            start = min(max(self._next_return, now), now + self.max_retry_after)
            self._next_return = start + 1.0 / rate
            wait = self._next_return - now
        return max(1, min(self.max_retry_after, math.ceil(wait)))

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Holds one slot for the block; raises CapacityError (503) when none can be had in time."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                full = self._queued >= self.waiting
                if not full:
                    self._queued += 1
            if full:
                SHED.inc()
                raise _busy(self)  # outside the lock: booking the appointment takes it
            try:
                got = self._slots.acquire(timeout=self.wait_seconds)
            finally:
                with self._lock:
                    self._queued -= 1
            if not got:
                SHED.inc()
                raise _busy(self)
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._completed()
            self._slots.release()

    def saturated(self) -> bool:
        """Every slot busy and every queue place taken: a request arriving now would be refused."""
        with self._lock:
            return self._busy >= self.running and self._queued >= self.waiting


def _busy(gate: WorkGate) -> CapacityError:
    return CapacityError(
        f"This server is verifying as many files as it can at once ({gate.running} at a time, "
        f"{gate.waiting} waiting); try again in a moment.",
        hint="Retry after the number of seconds in the Retry-After header.",
        details={"retry_after_seconds": gate.retry_after()},
    )


class VerifyDoor:
    """Refuses a verification at the door (503 before its body is read) while the gate is saturated: reading
    and parsing an upload that will be refused anyway costs about as much CPU as a small verify, so under a
    flood the refusals would eat the capacity they protect (the body is then read and dropped unparsed).
    Advisory only, nothing is reserved, so a slow upload cannot hold a place."""

    def __init__(self, app: ASGIApp, gate: WorkGate, paths: frozenset[str]):
        self.app = app
        self.gate = gate
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self.paths
            and self.gate.saturated()
        ):
            SHED.inc()
            # Read the body and drop it first (paced and charged by BodySizeLimit, outside this): answering
            # with it unread makes the server close the connection, and the reset can lose the answer.
            while (message := await receive())["type"] == "http.request" and message.get("more_body", False):
                pass
            await hallmark_problem(_busy(self.gate))(scope, receive, send)
            return
        await self.app(scope, receive, send)
