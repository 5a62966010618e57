"""Transport limits: request body size (rejected as early as possible) and bytes in flight per worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import hallmark_problem
from signing import AssetTooLargeError, CapacityError


def too_large(limit: int) -> AssetTooLargeError:
    return AssetTooLargeError(
        f"The request body is larger than the limit of {limit} bytes.",
        hint="The operator sets the limit with HALLMARK_MAX_UPLOAD_BYTES.",
        details={"limit_bytes": limit},
    )


class BodySizeLimit:
    """Refuse a body over `limit` from its Content-Length before reading it, and stop reading a body
    without one as soon as it passes the limit (Starlette would otherwise spool all of it)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

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
    signing), so admission by bytes, not by request count, is what bounds memory. Never blocks."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._used = 0
        self._lock = threading.Lock()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        cost = min(max(nbytes, 1), self.capacity)  # one oversized request may still run alone
        with self._lock:
            if self._used + cost > self.capacity:
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
