"""The token bucket, the client address behind proxies and the per-client concurrency cap, serverless."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.client_address import client_id, parse_networks
from app.rate_limit import PublicLimits, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_limit_then_says_how_long_to_wait() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_minute=3, max_clients=10, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == 20.0  # one token every 60/3 seconds
    clock.now += 19.0
    assert buckets.take("a") == pytest.approx(1.0)
    clock.now += 1.0
    assert buckets.take("a") == 0.0


def test_bucket_refills_no_higher_than_its_capacity() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_minute=2, max_clients=10, clock=clock)
    buckets.take("a")
    clock.now += 3600.0
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 30.0]


def test_buckets_are_per_client() -> None:
    buckets = TokenBuckets(per_minute=1, max_clients=10, clock=Clock())
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0


def test_bucket_count_is_bounded_and_the_least_recently_seen_is_dropped() -> None:
    buckets = TokenBuckets(per_minute=1, max_clients=2, clock=Clock())
    for client in ("a", "b", "c", "d"):
        buckets.take(client)
    assert buckets.tracked() == 2
    assert buckets.take("d") > 0  # kept: still limited
    assert buckets.take("a") == 0.0  # forgotten: starts with a full bucket


def scope(peer: str, forwarded: str | None = None, path: str = "/v1/verify") -> Scope:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"type": "http", "method": "POST", "path": path, "client": (peer, 4711), "headers": headers}


def test_client_is_the_peer_when_no_proxy_is_trusted() -> None:
    assert client_id(scope("203.0.113.7", "198.51.100.1"), ()) == "203.0.113.7"


def test_forwarded_header_of_an_untrusted_peer_is_ignored() -> None:
    proxies = parse_networks(["10.0.0.0/8"])
    assert client_id(scope("203.0.113.7", "198.51.100.1"), proxies) == "203.0.113.7"


def test_trusted_proxy_names_the_rightmost_untrusted_hop() -> None:
    proxies = parse_networks(["10.0.0.0/8", "192.0.2.1"])
    forwarded = "198.51.100.66, 198.51.100.1, 192.0.2.1"  # spoofed, real client, inner proxy
    assert client_id(scope("10.1.2.3", forwarded), proxies) == "198.51.100.1"


def test_trusted_proxy_without_a_usable_hop_is_the_client() -> None:
    proxies = parse_networks(["10.0.0.0/8"])
    assert client_id(scope("10.1.2.3"), proxies) == "10.1.2.3"
    assert client_id(scope("10.1.2.3", "not-an-address"), proxies) == "10.1.2.3"
    assert client_id(scope("10.1.2.3", "2001:db8::1"), proxies) == "2001:db8::1"


class Held:
    """An inner app whose requests stay in progress until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(app: PublicLimits, request: Scope) -> dict[str, Any]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(request, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return {"status": start["status"], "headers": dict(start["headers"]), "body": body}


def limits(inner: Held, max_concurrent: int) -> PublicLimits:
    paths = frozenset({"/v1/verify"})
    return PublicLimits(inner, paths, per_minute=0, max_concurrent=max_concurrent, max_clients=10, proxies=())


async def _concurrency(max_concurrent: int) -> dict[str, Any]:
    """Two requests of one client held in progress, then a third of the same client and one of another."""
    inner = Held()
    app = limits(inner, max_concurrent)
    held = [asyncio.create_task(call(app, scope("203.0.113.7"))) for _ in range(2)]
    await asyncio.sleep(0)  # one loop turn: both enter the inner app and wait there
    third = asyncio.create_task(call(app, scope("203.0.113.7")))
    other = asyncio.create_task(call(app, scope("198.51.100.1")))
    await asyncio.sleep(0)
    third_answered_at_once = third.done()
    inner.release.set()
    return {
        "held": [(await task)["status"] for task in held],
        "third": await third,
        "third_answered_at_once": third_answered_at_once,
        "other": (await other)["status"],
        "later": (await call(app, scope("203.0.113.7")))["status"],
        "tracked": dict(app.active),
    }


def test_concurrency_cap_refuses_a_client_with_too_many_requests_in_progress() -> None:
    result = asyncio.run(_concurrency(max_concurrent=2))
    assert result["held"] == [200, 200]
    assert result["third_answered_at_once"] is True
    assert result["third"]["status"] == 429
    assert result["third"]["headers"][b"retry-after"] == b"1"
    assert json.loads(result["third"]["body"])["type"] == "/problems/too-many-requests"
    assert result["other"] == 200  # another client is not capped
    assert result["later"] == 200  # the held requests ended: the client may send again
    assert result["tracked"] == {}  # nothing kept for clients with nothing in progress


def test_concurrency_cap_zero_is_off() -> None:
    result = asyncio.run(_concurrency(max_concurrent=0))
    assert result["third_answered_at_once"] is False
    assert (result["held"], result["third"]["status"], result["other"]) == ([200, 200], 200, 200)


def test_other_paths_are_not_limited() -> None:
    async def run() -> int:
        inner = Held()
        inner.release.set()
        buckets_app = PublicLimits(
            inner, frozenset({"/v1/verify"}), per_minute=1, max_concurrent=0, max_clients=10, proxies=()
        )
        statuses = [
            (await call(buckets_app, scope("203.0.113.7", path="/v1/sign")))["status"] for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        return int((await call(buckets_app, scope("203.0.113.7")))["status"])

    assert asyncio.run(run()) == 200
