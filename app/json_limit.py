"""A small body limit for the JSON endpoints: they need a few hundred bytes, not the upload limit."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import route_path
from app.errors import hallmark_problem
from signing import AssetTooLargeError


def too_large(limit: int) -> AssetTooLargeError:
    return AssetTooLargeError(
        f"The request body is larger than this endpoint's limit of {limit} bytes.",
        details={"limit_bytes": limit},
    )


class JsonBodyLimit:
    """Refuses a body over its path's limit from its Content-Length, and stops reading one without a
    declared length as soon as it passes the limit."""

    def __init__(self, app: ASGIApp, limits: dict[str, int]):
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.get(route_path(scope)) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await hallmark_problem(too_large(limit))(scope, receive, send)
                return
        await self.app(scope, _Counted(receive, limit), send)


class _Counted:
    """The receive channel, refusing the body once more than `limit` bytes of it have arrived."""

    def __init__(self, receive: Receive, limit: int):
        self._receive = receive
        self.limit = self._left = limit

    async def __call__(self) -> Message:
        message = await self._receive()
        self._left -= len(message.get("body", b"")) if message["type"] == "http.request" else 0
        if self._left < 0:
            raise too_large(self.limit)
        return message
