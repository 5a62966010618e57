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


def is_json(scope: Scope) -> bool:
    """Whether the request says its body is JSON (Content-Type application/json, parameters aside)."""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False


class JsonBodyLimit:
    """Refuses a body over its path's limit from its Content-Length, and stops reading one without a
    declared length as soon as it passes the limit. `json_limits` apply only to JSON bodies (a path that
    also takes uploads keeps the upload limit for them)."""

    def __init__(self, app: ASGIApp, limits: dict[str, int], json_limits: dict[str, int] | None = None):
        self.app = app
        self.limits = limits
        self.json_limits = json_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = None
        if scope["type"] == "http":
            path = route_path(scope)
            limit = self.limits.get(path)
            if limit is None and path in self.json_limits and is_json(scope):
                limit = self.json_limits[path]
        if limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await hallmark_problem(too_large(limit))(scope, receive, send)
                return
        counted = _Counted(receive, limit)
        responded = False

        async def watched_send(message: Message) -> None:
            nonlocal responded
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched_send)
        except AssetTooLargeError as exc:
            # FastAPI's body parsing answers it; a reader outside it (the verification door dropping a
            # refused body) lets it escape, which would be logged and counted as a 500.
            if exc is not counted.refused or responded:
                raise
            response = hallmark_problem(exc)
            response.headers["Connection"] = "close"  # the rest of the body is not read
            await response(scope, receive, send)


class _Counted:
    """The receive channel, refusing the body once more than `limit` bytes of it have arrived."""

    def __init__(self, receive: Receive, limit: int):
        self._receive = receive
        self.limit = self._left = limit
        self.refused: AssetTooLargeError | None = None

    async def __call__(self) -> Message:
        message = await self._receive()
        self._left -= len(message.get("body", b"")) if message["type"] == "http.request" else 0
        if self._left < 0:
            self.refused = too_large(self.limit)
            raise self.refused
        return message
