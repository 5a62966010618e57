"""Transport limits: request body size (rejected as early as possible) and bytes in flight per worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import route_path
from app.errors import hallmark_problem
from signing import AssetTooLargeError, CapacityError


def too_large(limit: int) -> AssetTooLargeError:
    return AssetTooLargeError(
        f"The request body is larger than the limit of {limit} bytes.",
        hint="The operator sets the limit with HALLMARK_MAX_UPLOAD_BYTES.",
        details={"limit_bytes": limit},
    )


BUDGET_HELD = "inflight_budget_held"


class BodySizeLimit:
    """Refuse a body over `limit` from its Content-Length before reading it, and stop reading a body
    without one as soon as it passes the limit (Starlette would otherwise spool all of it). A declared
    body also takes its size from the worker's byte budget while it is spooled and processed, so many
    concurrent public uploads cannot fill memory or disk; over budget it is refused at once (503)."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        budget: InflightBudget | None = None,
        factors: dict[str, int] | None = None,
    ):
        self.app = app
        self.limit = limit
        self.budget = budget
        # Bytes held per body byte while a path works on it (upload spool + the engine's copies).
        self.factors = factors or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.limit:
                    await hallmark_problem(too_large(self.limit))(scope, receive, send)
                    return
                if self.budget is not None and declared > 0:
                    factor = self.factors.get(route_path(scope), 1)
                    with ExitStack() as held:
                        try:
                            held.enter_context(self.budget.reserve(factor * declared))
                        except CapacityError as exc:
                            await hallmark_problem(exc)(scope, receive, send)
                            return
                        scope.setdefault("state", {})[BUDGET_HELD] = True
                        await self._limited(scope, receive, send)
                    return
        await self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise too_large(self.limit)
            return message

        await self.app(scope, limited_receive, send)


class InflightBudget:
    """Bounds the bytes of assets processed at once in this worker: c2pa holds a whole asset (~2x when
    signing), so admission by bytes, not by request count, is what bounds memory. Never blocks; a request
    alone in the worker always runs, however large (the upload limit bounds it)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._used = 0
        self._lock = threading.Lock()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        cost = max(nbytes, 1)
        with self._lock:
            if self._used and self._used + cost > self.capacity:
                raise CapacityError(
                    "The server is processing as much data as it is configured to; retry shortly.",
                    details={"retry_after_seconds": 5},
                )
            self._used += cost
        try:
            yield
        finally:
            with self._lock:
                self._used -= cost

    @contextmanager
    def reserve_unless_held(self, state: object, nbytes: int) -> Iterator[None]:
        """For a body whose size was not declared up front (chunked): reserve now, after the upload."""
        if getattr(state, BUDGET_HELD, False):
            yield
            return
        with self.reserve(nbytes):
            yield
