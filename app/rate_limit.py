"""Per-client limits on the public endpoints: a token bucket per client (requests per minute) and a cap on
requests in progress per client. State lives in this worker process: with N workers a client may get up to
N times the limit, and a restart forgets it."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth import matching_rule, route_path
from app.client_address import Network, client_id
from app.errors import problem

Clock = Callable[[], float]


@dataclass
class Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """`per_minute` requests per client per minute, with a burst of as many. At most `max_clients` buckets
    are kept (least recently seen dropped first), so a flood of addresses cannot grow memory; a dropped
    client starts again with a full bucket."""

    def __init__(self, per_minute: int, max_clients: int, clock: Clock = time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, client: str) -> float:
        """Takes a token: 0.0 when the request may go ahead, else the seconds until one is available."""
        now = self.clock()
        bucket = self._buckets.pop(client, None) or Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        self._buckets[client] = bucket  # most recently seen last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def tracked(self) -> int:
        return len(self._buckets)


class PublicLimits:
    """Refuses (429) a request to one of `paths` (or under one ending in "/") when its client has used up
    its rate or has `max_concurrent` requests in progress already. 0 turns either off."""

    def __init__(
        self,
        app: ASGIApp,
        paths: frozenset[str],
        per_minute: int,
        max_concurrent: int,
        max_clients: int,
        proxies: tuple[Network, ...],
        clock: Clock = time.monotonic,
    ):
        self.app = app
        self.paths = paths
        self.buckets = TokenBuckets(per_minute, max_clients, clock) if per_minute > 0 else None
        self.max_concurrent = max_concurrent
        self.proxies = proxies
        # Only clients with a request in progress have an entry, so it is bounded by open connections.
        self.active: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limited = scope["type"] == "http" and matching_rule(self.paths, route_path(scope)) is not None
        if not limited or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        client = client_id(scope, self.proxies)
        if self.max_concurrent and self.active.get(client, 0) >= self.max_concurrent:
            detail = f"At most {self.max_concurrent} requests per client may be in progress at once."
            await _too_many(detail, 1)(scope, receive, send)
            return
        wait = self.buckets.take(client) if self.buckets is not None else 0.0
        if wait > 0:
            per_minute = int(self.buckets.capacity) if self.buckets is not None else 0
            detail = f"More than {per_minute} requests per minute from this client."
            await _too_many(detail, math.ceil(wait))(scope, receive, send)
            return
        self.active[client] = self.active.get(client, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.active[client] - 1
            if left:
                self.active[client] = left
            else:
                del self.active[client]


def _too_many(detail: str, retry_after: int) -> JSONResponse:
    response = problem(
        429, "too-many-requests", "Too many requests", detail, details={"retry_after_seconds": retry_after}
    )
    response.headers["Retry-After"] = str(retry_after)
    return response
