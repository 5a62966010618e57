"""Checks on every request before routing: no credentials in the query string, a bounded header count."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import problem

# Query parameters that look like a credential. A key in a URL ends up in proxy logs, browser history and
# Referer headers, so it is refused outright and never looked up.
KEY_PARAMS = frozenset({"api_key", "apikey", "key", "token", "access_token"})


class RequestGuard:
    """400 for a credential in the query string; 431 for more than `max_headers` request headers or more
    than `max_header_bytes` of them. The server (uvicorn's h11) stops buffering a head that has not ended
    within its limit; a head that arrives whole in one read is measured here."""

    def __init__(self, app: ASGIApp, max_headers: int, max_header_bytes: int):
        self.app = app
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        size = sum(len(name) + len(value) + 4 for name, value in headers)  # ": " and CRLF
        if len(headers) > self.max_headers or size > self.max_header_bytes:
            await problem(
                431,
                "headers-too-large",
                "Request headers too large",
                f"The request has more than {self.max_headers} headers or more than "
                f"{self.max_header_bytes} bytes of them.",
            )(scope, receive, send)
            return
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        if any(name.lower() in KEY_PARAMS for name, _ in parse_qsl(query, keep_blank_values=True)):
            await problem(
                400,
                "credentials-in-query",
                "Credentials in the query string",
                "API keys are not accepted in the URL; send one as 'Authorization: Bearer <key>'.",
            )(scope, receive, send)
            return
        await self.app(scope, receive, send)
