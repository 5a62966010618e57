"""API-key authentication, checked before the request body is read: an unauthenticated upload is refused
from its headers and never reaches the signer (or fills the disk)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from anyio import to_thread
from fastapi import Request
from fastapi.security import HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import problem
from app.store.apikeys import ApiKey, ApiKeyStore

# Shown in the OpenAPI document; the check itself happens in ApiKeyGate.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer hm_...`")


class ApiKeyGate:
    """Requires a bearer API key with a scope for the paths listed in `rules` (path -> scope or "any"; a
    path ending in "/" covers every path under it)."""

    def __init__(self, app: ASGIApp, store: Callable[[], ApiKeyStore | None], rules: dict[str, str]):
        self.app = app
        self.store = store
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = matching_rule(self.rules, route_path(scope)) if scope["type"] == "http" else None
        needed = self.rules[rule] if rule is not None else None
        if needed is None or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            response = problem(
                401,
                "unauthorized",
                "API key required",
                "Send an API key as 'Authorization: Bearer <key>'.",
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="hallmark"'
            await response(scope, receive, send)
            return
        store = self.store()
        key = None
        if store is not None:
            key = store.cached(token) or await to_thread.run_sync(store.authenticate, token)
        if key is None:
            response = problem(401, "unauthorized", "Invalid API key", "The API key is unknown or revoked.")
            response.headers["WWW-Authenticate"] = 'Bearer realm="hallmark", error="invalid_token"'
            await response(scope, receive, send)
            return
        if needed != "any" and needed not in key.scopes:
            await problem(403, "forbidden", "Missing scope", f"This API key lacks the '{needed}' scope.")(
                scope, receive, send
            )
            return
        scope.setdefault("state", {})["api_key"] = key
        await self.app(scope, receive, send)


def matching_rule(rules: Iterable[str], path: str) -> str | None:
    """The rule in `rules` that covers `path`: the path itself, or a prefix ending in "/"."""
    names = tuple(rules)
    if path in names:
        return path
    return next((r for r in names if r.endswith("/") and path.startswith(r)), None)


def route_path(scope: Scope) -> str:
    """The path the router matches: without the root path a proxy or a mounting app put in front of it.
    Matching the raw path would let `--root-path /api` requests walk past the gate."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            header: str = bytes(value).decode("latin-1")
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def current_key(request: Request) -> ApiKey | None:
    key = getattr(request.state, "api_key", None)
    return key if isinstance(key, ApiKey) else None
