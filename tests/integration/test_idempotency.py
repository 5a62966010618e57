"""Idempotency-Key on POST /v1/sign: the real app, the real c2pa engine, a real database (SQLite, and
PostgreSQL in the second pass of `make test`). Every check counts the ledger's rows."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.idempotency import REPLAY_HEADER, fingerprint
from app.main import create_app
from app.settings import Settings
from app.store.idempotency import Claim, IdempotencyStore
from app.store.tables import idempotency_keys
from signing import IdempotencyInProgressError, LedgerError

FORM = {"model_name": "test-diffusion", "model_version": "2.1"}


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def runtime(client: TestClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]


def rows(client: TestClient) -> int:
    return int(runtime(client).ledger.count())


def sign(
    client: TestClient,
    token: str,
    data: bytes,
    key: str | None,
    *,
    filename: str = "in.jpg",
    params: dict[str, str] | None = None,
    **form: str,
) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(
        "/v1/sign",
        headers=headers,
        params=params,
        data={**FORM, **form},
        files={"file": (filename, data, "application/octet-stream")},
    )


def same_answer(first: Any, second: Any) -> None:
    """The replay carries the first answer's bytes and every one of its headers but X-Request-Id, which names
    each request (the retry is a request of its own)."""
    assert second.content == first.content
    for name, value in first.headers.items():
        if name.lower() != "x-request-id":
            assert second.headers.get(name) == value, name
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert REPLAY_HEADER.lower() not in first.headers
    assert second.headers[REPLAY_HEADER] == "true"


def with_clock(client: TestClient, clock: FakeClock, **options: float) -> IdempotencyStore:
    rt = runtime(client)
    settings = rt.settings
    store = IdempotencyStore(
        rt.db,
        ttl_seconds=options.get("ttl", settings.idempotency_ttl_seconds),
        lease_seconds=options.get("lease", settings.idempotency_lease_seconds),
        clock=clock,
    )
    rt.idempotency = store
    return store


@pytest.fixture
def jpeg(interop_dir: Path) -> bytes:
    return (interop_dir / "no_manifest.jpg").read_bytes()


# --- replay ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["embedded", "sidecar"])
def test_retry_replays_the_same_bytes_and_writes_no_second_row(
    client: TestClient, api_key: str, interop_dir: Path, output: str
) -> None:
    data = (interop_dir / "sample1.png").read_bytes()
    first = sign(client, api_key, data, "order-42", filename="a.png", params={"output": output})
    assert first.status_code == 200, first.text
    assert rows(client) == 1
    second = sign(client, api_key, data, "order-42", filename="a.png", params={"output": output})
    assert second.status_code == 200, second.text
    same_answer(first, second)
    assert second.headers["Hallmark-Manifest-Id"] == first.headers["Hallmark-Manifest-Id"]
    assert rows(client) == 1
    assert hashlib.sha256(second.content).hexdigest() == first.headers["Hallmark-Output-SHA256"]


def test_without_a_key_every_request_signs_again(client: TestClient, api_key: str, jpeg: bytes) -> None:
    """The negative control: the same request twice without Idempotency-Key is two signatures."""
    first = sign(client, api_key, jpeg, None)
    second = sign(client, api_key, jpeg, None)
    assert first.status_code == second.status_code == 200
    assert first.headers["Hallmark-Manifest-Id"] != second.headers["Hallmark-Manifest-Id"]
    assert REPLAY_HEADER.lower() not in second.headers
    assert rows(client) == 2


def test_a_new_key_signs_again(client: TestClient, api_key: str, jpeg: bytes) -> None:
    first = sign(client, api_key, jpeg, "k-1")
    second = sign(client, api_key, jpeg, "k-2")
    assert first.status_code == second.status_code == 200
    assert first.headers["Hallmark-Manifest-Id"] != second.headers["Hallmark-Manifest-Id"]
    assert rows(client) == 2


# --- the fingerprint must match -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"form": {"model_version": "2.2"}},
        {"form": {"title": "another title"}},
        {"params": {"output": "sidecar"}},
        {"filename": "other.jpg"},
        {"data": "flip"},
    ],
    ids=["field", "added-field", "query", "filename", "file"],
)
def test_a_different_request_with_a_used_key_gets_422(
    client: TestClient, api_key: str, jpeg: bytes, change: dict[str, Any]
) -> None:
    first = sign(client, api_key, jpeg, "k")
    assert first.status_code == 200, first.text
    data = jpeg[:-3] + bytes([jpeg[-3] ^ 1]) + jpeg[-2:] if change.get("data") else jpeg
    other = sign(
        client,
        api_key,
        data,
        "k",
        filename=change.get("filename", "in.jpg"),
        params=change.get("params"),
        **change.get("form", {}),
    )
    assert other.status_code == 422, other.text
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    assert "different request" in other.json()["detail"]
    assert rows(client) == 1
    # The first request, repeated exactly, still gets its answer.
    again = sign(client, api_key, jpeg, "k")
    assert again.status_code == 200
    same_answer(first, again)


# --- scope, syntax, expiry ------------------------------------------------------------------------------


def test_keys_of_different_api_keys_are_independent(client: TestClient, api_key: str, jpeg: bytes) -> None:
    _, other = runtime(client).api_keys.create("other tenant", {"sign"})
    mine = sign(client, api_key, jpeg, "shared-key")
    theirs = sign(client, other, jpeg, "shared-key", model_version="9")  # another request: no 422 either
    assert mine.status_code == theirs.status_code == 200, theirs.text
    assert mine.headers["Hallmark-Manifest-Id"] != theirs.headers["Hallmark-Manifest-Id"]
    assert REPLAY_HEADER.lower() not in theirs.headers
    assert rows(client) == 2
    # Each replays its own.
    same_answer(theirs, sign(client, other, jpeg, "shared-key", model_version="9"))
    assert rows(client) == 2


@pytest.mark.parametrize(
    ("key", "problem"),
    [("x" * 256, "at most 255"), ("caf\u00e9", "printable ASCII"), ("tab\there", "printable ASCII")],
    ids=["too-long", "non-ascii", "control"],
)
def test_an_unusable_key_is_400(
    client: TestClient, api_key: str, jpeg: bytes, key: str, problem: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": key}
    files = {"file": ("in.jpg", jpeg)}
    encoded = {k.encode(): v.encode("utf-8") for k, v in headers.items()}
    response = client.post("/v1/sign", headers=encoded, data=FORM, files=files)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "/problems/invalid-idempotency-key"
    assert problem in response.json()["detail"]
    assert rows(client) == 0


def test_the_longest_key_is_accepted(client: TestClient, api_key: str, jpeg: bytes) -> None:
    """The control beside the refusals: 255 printable characters, spaces included."""
    key = ("a b~" * 64)[:255]
    assert sign(client, api_key, jpeg, key).status_code == 200
    assert sign(client, api_key, jpeg, key).headers[REPLAY_HEADER] == "true"
    assert rows(client) == 1


def test_an_expired_key_signs_afresh(client: TestClient, api_key: str, jpeg: bytes) -> None:
    clock = FakeClock()
    with_clock(client, clock, ttl=3600)
    first = sign(client, api_key, jpeg, "k")
    clock.now += 3599
    assert (
        sign(client, api_key, jpeg, "k").headers["Hallmark-Manifest-Id"]
        == first.headers["Hallmark-Manifest-Id"]
    )
    clock.now += 2  # past the time to live
    later = sign(client, api_key, jpeg, "k", model_version="3")  # the key is free for any request now
    assert later.status_code == 200, later.text
    assert later.headers["Hallmark-Manifest-Id"] != first.headers["Hallmark-Manifest-Id"]
    assert REPLAY_HEADER.lower() not in later.headers
    assert rows(client) == 2


def test_expired_entries_are_purged(client: TestClient, api_key: str, jpeg: bytes) -> None:
    clock = FakeClock()
    store = with_clock(client, clock, ttl=60)
    assert sign(client, api_key, jpeg, "k").status_code == 200
    assert store.purge() == 0
    clock.now += 61
    assert store.purge() == 1
    with runtime(client).db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(idempotency_keys)).scalar_one() == 0
    assert rows(client) == 1  # the ledger keeps its row


# --- a request still in flight --------------------------------------------------------------------------


def held_claim(client: TestClient, api_key: str, jpeg: bytes, key: str) -> tuple[IdempotencyStore, Claim]:
    """What a request that is still signing holds: the claim for exactly this request."""
    store: IdempotencyStore = runtime(client).idempotency
    key_id = api_key.split("_")[1]
    fp = fingerprint(FORM, {"output": "embedded"}, "in.jpg", io.BytesIO(jpeg))
    claim = store.begin(key_id, key, fp)
    assert isinstance(claim, Claim)
    return store, claim


def test_a_duplicate_while_the_first_is_in_flight_gets_409(
    client: TestClient, api_key: str, jpeg: bytes
) -> None:
    store, claim = held_claim(client, api_key, jpeg, "busy")
    response = sign(client, api_key, jpeg, "busy")
    assert response.status_code == 409, response.text
    assert response.json()["type"] == "/problems/idempotency-key-in-progress"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert rows(client) == 0
    store.release(claim)  # the first request failed: nothing recorded, the key is free again
    after = sign(client, api_key, jpeg, "busy")
    assert after.status_code == 200, after.text
    assert rows(client) == 1


def test_a_claim_left_by_a_dead_process_is_taken_over_after_its_lease(
    client: TestClient, api_key: str, jpeg: bytes
) -> None:
    clock = FakeClock()
    store = with_clock(client, clock, lease=30)
    _, dead = held_claim(client, api_key, jpeg, "orphan")
    clock.now += 29
    assert sign(client, api_key, jpeg, "orphan").status_code == 409
    clock.now += 2
    retried = sign(client, api_key, jpeg, "orphan")
    assert retried.status_code == 200, retried.text
    assert rows(client) == 1
    # Had the first holder only been slow, it can no longer complete: its transaction writes nothing.
    entry = runtime(client).ledger.list(limit=1)[0]
    with pytest.raises(IdempotencyInProgressError):
        store.complete(dead, replace(entry, id="x" * 36, manifest_id="urn:other"), "image/jpeg", {}, b"late")
    assert rows(client) == 1
    same_answer(retried, sign(client, api_key, jpeg, "orphan"))


def test_result_and_ledger_row_commit_together(client: TestClient, api_key: str, jpeg: bytes) -> None:
    """A failing ledger insert (here: a duplicate manifest id) leaves the claim pending, not done."""
    assert sign(client, api_key, jpeg, None).status_code == 200
    entry = runtime(client).ledger.list(limit=1)[0]
    store, claim = held_claim(client, api_key, jpeg, "atomic")
    with pytest.raises(LedgerError):
        store.complete(claim, replace(entry, id="y" * 36), "image/jpeg", {"a": "b"}, b"bytes")
    assert rows(client) == 1
    with runtime(client).db.connect() as conn:
        state = conn.execute(sa.select(idempotency_keys.c.state, idempotency_keys.c.body)).one()
    assert tuple(state) == ("pending", None)


def test_a_result_over_the_size_cap_is_refused_and_not_recorded(settings: Settings, jpeg: bytes) -> None:
    capped = settings.model_copy(update={"idempotency_max_result_bytes": len(jpeg) // 2})
    with TestClient(create_app(capped)) as client:
        _, api_key = runtime(client).api_keys.create("tests", {"sign"})
        result_over_the_cap(client, api_key, jpeg)


def result_over_the_cap(client: TestClient, api_key: str, jpeg: bytes) -> None:
    refused = sign(client, api_key, jpeg, "big")
    assert refused.status_code == 413, refused.text
    assert refused.json()["type"] == "/problems/idempotent-result-too-large"
    assert rows(client) == 0
    with runtime(client).db.connect() as conn:  # the key was given back
        assert conn.execute(sa.select(sa.func.count()).select_from(idempotency_keys)).scalar_one() == 0
    assert sign(client, api_key, jpeg, None).status_code == 200  # control: without a key it signs
    assert rows(client) == 1


def test_a_failed_request_gives_its_key_back(client: TestClient, api_key: str, jpeg: bytes) -> None:
    truncated = jpeg[: len(jpeg) // 2]
    failed = sign(client, api_key, truncated, "k")
    assert failed.status_code == 422, failed.text
    assert failed.json()["type"] != "/problems/idempotency-key-reused"
    assert rows(client) == 0
    with runtime(client).db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(idempotency_keys)).scalar_one() == 0
    fixed = sign(client, api_key, jpeg, "k")  # another request under the same key: the first kept nothing
    assert fixed.status_code == 200, fixed.text
    assert REPLAY_HEADER.lower() not in fixed.headers
    assert rows(client) == 1
