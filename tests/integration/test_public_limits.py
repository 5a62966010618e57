"""Per-client rate limit on the public endpoints, credentials in query strings and the header count, through
the whole app with a clock the tests move (no sleeps)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import make_data_dir
from tests.pki import TestPki as Pki

FEEDBACK = {"outcome": "none", "verdict_correct": True}
CLIENT_A = ("203.0.113.7", 50000)
CLIENT_B = ("198.51.100.1", 50000)
PROXY = ("10.0.0.5", 50000)


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Limited:
    def __init__(self, app: FastAPI, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    def client(self, peer: tuple[str, int]) -> TestClient:
        # The lifespan already ran in the fixture's client: further clients share its runtime.
        return TestClient(self.app, client=peer)


@pytest.fixture
def limited(tmp_path: Path, pki: Pki) -> Iterator[Limited]:
    yield from _limited(tmp_path, pki, public_rate_limit=3, trusted_proxies=["10.0.0.0/8"])


def _limited(tmp_path: Path, pki: Pki, **settings: Any) -> Iterator[Limited]:
    clock = Clock()
    app = create_app(Settings(data_dir=make_data_dir(tmp_path / "var", pki), **settings), clock=clock)
    with TestClient(app):
        yield Limited(app, clock)


def feedback(client: TestClient, headers: dict[str, str] | None = None) -> int:
    return client.post("/v1/feedback", json=FEEDBACK, headers=headers).status_code


def test_the_request_past_the_limit_gets_429_with_retry_after(limited: Limited) -> None:
    a = limited.client(CLIENT_A)
    assert [feedback(a) for _ in range(3)] == [201, 201, 201]
    refused = a.post("/v1/feedback", json=FEEDBACK)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "20"  # 3 per minute: one token every 20 s
    body = refused.json()
    assert (body["type"], body["status"]) == ("/problems/too-many-requests", 429)
    assert body["details"] == {"retry_after_seconds": 20}


def test_verify_shares_the_limit_and_another_client_is_unaffected(limited: Limited) -> None:
    a, b = limited.client(CLIENT_A), limited.client(CLIENT_B)
    assert [feedback(a) for _ in range(3)] == [201, 201, 201]
    assert a.post("/v1/verify", files={"file": ("x", b"not media")}).status_code == 429
    assert b.post("/v1/verify", files={"file": ("x", b"not media")}).status_code == 415
    assert feedback(b) == 201


def test_the_client_passes_again_once_the_clock_has_moved(limited: Limited) -> None:
    a = limited.client(CLIENT_A)
    assert [feedback(a) for _ in range(4)] == [201, 201, 201, 429]
    limited.clock.now += 19.0
    assert feedback(a) == 429
    limited.clock.now += 1.0
    assert [feedback(a), feedback(a)] == [201, 429]


def test_forwarded_for_is_ignored_from_an_untrusted_peer(limited: Limited) -> None:
    a = limited.client(CLIENT_A)
    statuses = [feedback(a, {"X-Forwarded-For": f"192.0.2.{n}"}) for n in range(4)]
    assert statuses == [201, 201, 201, 429]  # one client however many addresses it claims


def test_forwarded_for_names_the_client_behind_a_trusted_proxy(limited: Limited) -> None:
    proxy = limited.client(PROXY)
    assert [feedback(proxy, {"X-Forwarded-For": "192.0.2.1"}) for _ in range(4)] == [201, 201, 201, 429]
    assert feedback(proxy, {"X-Forwarded-For": "192.0.2.2"}) == 201  # another client behind the proxy
    assert feedback(proxy, {"X-Forwarded-For": "192.0.2.99, 192.0.2.1"}) == 429  # left hops are the client's


def test_sign_is_not_rate_limited(limited: Limited) -> None:
    a = limited.client(CLIENT_A)
    statuses = [a.post("/v1/sign", files={"file": ("x", b"x")}).status_code for _ in range(5)]
    assert statuses == [401] * 5  # the API key gate answers, never the public limit
    assert [feedback(a) for _ in range(4)] == [201, 201, 201, 429]


def test_zero_turns_the_rate_limit_off(tmp_path: Path, pki: Pki) -> None:
    for limited in _limited(tmp_path, pki, public_rate_limit=0):
        a = limited.client(CLIENT_A)
        assert [feedback(a) for _ in range(10)] == [201] * 10


def test_defaults() -> None:
    settings = Settings()
    assert (settings.public_rate_limit, settings.public_max_concurrent_per_client) == (60, 4)
    assert (settings.max_header_bytes, settings.max_headers, settings.trusted_proxies) == (16384, 100, [])


def test_trusted_proxies_must_be_addresses() -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        Settings(trusted_proxies="10.0.0.0/8, proxy.internal")
    assert Settings(trusted_proxies="10.0.0.0/8, ::1").trusted_proxies == ["10.0.0.0/8", "::1"]


# --- credentials in the query string, header count -------------------------------------------------------


@pytest.mark.parametrize("name", ["api_key", "apikey", "key", "token", "access_token", "API_KEY"])
def test_a_key_in_the_query_string_is_refused(client: TestClient, api_key: str, name: str) -> None:
    response = client.post(f"/v1/sign?{name}={api_key}", files={"file": ("x", b"x")})
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/credentials-in-query"
    assert "Authorization" in response.json()["detail"]
    assert api_key not in response.text


def test_a_key_in_the_query_string_is_refused_on_public_endpoints_too(client: TestClient) -> None:
    assert client.get("/healthz?token=x").status_code == 400
    assert client.get("/healthz?page=2").status_code == 200  # other parameters are fine


def test_the_header_gate_counts_headers(tmp_path: Path, pki: Pki) -> None:
    for limited in _limited(tmp_path, pki, max_headers=20):
        a = limited.client(CLIENT_A)
        few = {f"X-Pad-{n}": "1" for n in range(10)}
        many = {f"X-Pad-{n}": "1" for n in range(30)}
        assert a.get("/healthz", headers=few).status_code == 200
        refused = a.get("/healthz", headers=many)
        assert refused.status_code == 431
        assert refused.json()["type"] == "/problems/headers-too-large"


def test_the_header_gate_measures_header_bytes(tmp_path: Path, pki: Pki) -> None:
    for limited in _limited(tmp_path, pki, max_header_bytes=2048):
        a = limited.client(CLIENT_A)
        assert a.get("/healthz", headers={"X-Pad": "a" * 1000}).status_code == 200
        refused = a.get("/healthz", headers={"X-Pad": "a" * 3000})
        assert refused.status_code == 431
        assert refused.headers["content-type"] == "application/problem+json"
