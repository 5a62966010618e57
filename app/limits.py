"""Transport limits: request body size, bytes in flight per worker (charged as they arrive) and the rate
at which a body must keep arriving."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import route_path
from app.errors import hallmark_problem, problem
from signing import AssetTooLargeError, CapacityError, HallmarkError


def too_large(limit: int) -> AssetTooLargeError:
    return AssetTooLargeError(
        f"The request body is larger than the limit of {limit} bytes.",
        hint="The operator sets the limit with HALLMARK_MAX_UPLOAD_BYTES.",
        details={"limit_bytes": limit},
    )


BUDGET_HELD = "inflight_budget_held"


@dataclass(frozen=True)
class BodyPace:
    """A body must keep arriving: no gap between two chunks longer than `max_gap` seconds, and after
    `grace` seconds at least `min_rate` bytes per second on average since the request began (0: no rate)."""

    min_rate: int = 1024
    grace: float = 10.0
    max_gap: float = 30.0

    def deadline(self, started: float, last_chunk: float, received: int) -> float:
        """The monotonic time by which the next chunk must have arrived."""
        by_gap = last_chunk + self.max_gap
        if self.min_rate <= 0:
            return by_gap
        return min(by_gap, started + self.grace + received / self.min_rate)


class BodyTimeoutError(Exception):
    """The body stopped arriving, or arrives too slowly (answered 408 by BodySizeLimit)."""


class BodySizeLimit:
    """Refuse a body over `limit` from its Content-Length before reading it, and stop reading any body as
    soon as it passes the limit (Starlette would otherwise spool all of it). Each chunk that arrives is
    charged to the worker's byte budget (times the path's factor: the spool and the engine's copies) and
    held until the request ends, so a client pays for bytes it sent, not for bytes it declared; a chunk that
    would overfill the budget is refused at once (503). A body that stops arriving or arrives too slowly
    (`pace`) is answered 408. A response sent before the body was read to its end closes the connection."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        budget: InflightBudget | None = None,
        factors: dict[str, int] | None = None,
        pace: BodyPace | None = None,
        clock: Callable[[], float] = time.monotonic,
        path_limits: dict[str, int] | None = None,
    ):
        self.app = app
        self.limit = limit
        self.path_limits = path_limits or {}  # paths with a limit of their own (the job API's uploads)
        self.budget = budget
        # Bytes held per body byte while a path works on it (upload spool + the engine's copies).
        self.factors = factors or {}
        self.pace = pace or BodyPace()
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        limit = self.path_limits.get(path, self.limit)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await hallmark_problem(too_large(limit))(scope, receive, send)
                    return
        if self.budget is None:
            await _Body(self, scope, None, 1, limit).run(receive, send)
            return
        with self.budget.charge() as charge:
            scope.setdefault("state", {})[BUDGET_HELD] = True
            await _Body(self, scope, charge, self.factors.get(path, 1), limit).run(receive, send)


class _Body:
    """One request's body as it arrives: counted, charged, paced."""

    def __init__(
        self, limit: BodySizeLimit, scope: Scope, charge: Charge | None, factor: int, max_bytes: int
    ):
        self.limit, self.scope, self.charge, self.factor = limit, scope, charge, factor
        self.max_bytes = max_bytes
        self.received = 0
        self.started = self.last_chunk = limit.clock()
        self.complete = not _has_body(scope)
        self.timed_out = False
        self.refused: HallmarkError | None = None  # the refusal _count raised (too large, over budget)
        self.responded = False  # a response has started (the app's, or one sent here)

    async def run(self, receive: Receive, send: Send) -> None:
        async def paced_receive() -> Message:
            # Once the body is in, only a disconnect is left to wait for: no deadline.
            message = await (receive() if self.complete else self._in_time(receive))
            self._count(message)
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.responded = True
            if message["type"] == "http.response.start" and not self.complete:
                if self.timed_out:
                    await self._request_timeout(send)
                    return
                # The rest of the body is not read: the connection cannot carry another request.
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            elif self.timed_out:
                return  # the 408 went out instead of the app's answer
            await send(message)

        try:
            await self.limit.app(self.scope, paced_receive, closing_send)
        except BodyTimeoutError:
            # FastAPI's own body parsing turns the cut into an answer (sent as the 408 above); whatever else
            # reads the body lets it escape: the verification door dropping a refused upload, a route reading
            # request.stream(). Past here it would be an unhandled error, logged and counted as 500.
            if self.responded:
                raise  # too late for a status: the server closes the connection
            await self._request_timeout(send)
        except HallmarkError as exc:
            if exc is not self.refused or self.responded:
                raise
            await hallmark_problem(exc)(self.scope, _nothing, closing_send)  # closing: the body is unread

    async def _in_time(self, receive: Receive) -> Message:
        pace = self.limit.pace
        wait = pace.deadline(self.started, self.last_chunk, self.received) - self.limit.clock()
        with anyio.move_on_after(max(wait, 0)):
            return await receive()
        self.timed_out = True
        raise BodyTimeoutError

    def _count(self, message: Message) -> None:
        if message["type"] != "http.request":
            self.complete = True  # disconnected
            return
        chunk = len(message.get("body", b""))
        self.received += chunk
        self.last_chunk = self.limit.clock()
        try:
            if self.received > self.max_bytes:
                raise too_large(self.max_bytes)
            if self.charge is not None and chunk:
                self.charge.add(self.factor * chunk)
        except HallmarkError as exc:
            self.refused = exc  # answered in run() if the app lets it escape
            raise
        self.complete = not message.get("more_body", False)

    async def _request_timeout(self, send: Send) -> None:
        pace = self.limit.pace
        response = problem(
            408,
            "request-timeout",
            "Request body too slow",
            f"The request body stopped arriving or arrived slower than {pace.min_rate} bytes per second.",
            details={"min_rate_bytes": pace.min_rate, "max_gap_seconds": pace.max_gap},
        )
        response.headers["Connection"] = "close"
        await response(self.scope, _nothing, send)


def _has_body(scope: Scope) -> bool:
    """HTTP/1.1 framing: without Content-Length or Transfer-Encoding a request has no body."""
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


class Charge:
    """The bytes one request holds in an InflightBudget; grows as its body arrives."""

    def __init__(self, budget: InflightBudget):
        self.budget = budget
        self.held = 0

    def add(self, nbytes: int) -> None:
        self.budget._add(self, nbytes)


class InflightBudget:
    """Bounds the bytes of assets processed at once in this worker: c2pa holds a whole asset (~2x when
    signing), so admission by bytes, not by request count, is what bounds memory. Never blocks; a request
    alone in the worker always runs, however large (the upload limit bounds it)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    @contextmanager
    def charge(self) -> Iterator[Charge]:
        """Hold bytes as they are added; all are given back when the block ends, however it ends."""
        charge = Charge(self)
        try:
            yield charge
        finally:
            with self._lock:
                self._used -= charge.held
                charge.held = 0

    def _add(self, charge: Charge, nbytes: int) -> None:
        with self._lock:
            others = self._used - charge.held
            if others and self._used + nbytes > self.capacity:
                raise CapacityError(
                    "The server is processing as much data as it is configured to; retry shortly.",
                    details={"retry_after_seconds": 5},
                )
            self._used += nbytes
            charge.held += nbytes

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        with self.charge() as charge:
            charge.add(max(nbytes, 1))
            yield

    @contextmanager
    def reserve_unless_held(self, state: object, nbytes: int) -> Iterator[None]:
        """For a request BodySizeLimit did not charge (an app built without it): reserve now."""
        if getattr(state, BUDGET_HELD, False):
            yield
            return
        with self.reserve(nbytes):
            yield
