"""Per-API-key policies on POST /v1/sign: allowed source types and formats (403), a request rate shared by
every service process (429 + Retry-After), a monthly quota counted from the ledger (429). Real app, real
engine, real database (SQLite; PostgreSQL in the second pass of `make test`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.store.apikeys import ApiKeyStore, KeyPolicy
from app.store.key_limits import KeyLimits, month_start
from app.store.tables import ledger_events, signatures

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
FORM = {"model_name": "test-diffusion", "model_version": "2.1"}
HALLMARK = str(Path(sys.executable).with_name("hallmark"))


class FakeClock:
    def __init__(self, now: float = 1_800_000_010.0):  # 10 s into a minute
        self.now = now

    def __call__(self) -> float:
        return self.now


def runtime(client: TestClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]


def new_key(client: TestClient, policy: KeyPolicy | None = None) -> tuple[str, str]:
    store = runtime(client).api_keys
    key, token = store.create("tests", {"sign"})
    if policy is not None:
        assert store.set_policy(key.id, policy) is not None
    return key.id, token


def sign(client: TestClient, token: str, data: bytes, *, key: str | None = None, **form: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    return client.post("/v1/sign", headers=headers, data={**FORM, **form}, files={"file": ("in", data)})


def problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{kind}"
    return body


@pytest.fixture
def uncached(settings: Settings) -> Settings:
    """No API-key cache: a policy set through the store applies to the next request."""
    return settings.model_copy(update={"api_key_cache_seconds": 0.0})


@pytest.fixture
def app(uncached: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(uncached)) as client:
        yield client


@pytest.fixture
def jpeg(interop_dir: Path) -> bytes:
    return (interop_dir / "no_manifest.jpg").read_bytes()


@pytest.fixture
def png(interop_dir: Path) -> bytes:
    return (interop_dir / "sample1.png").read_bytes()


# --- the policy lives in the ledger ---------------------------------------------------------------------


def test_a_policy_is_a_ledger_event_and_is_read_back_from_the_ledger(app: TestClient) -> None:
    policy = KeyPolicy(frozenset({IPTC + "trainedAlgorithmicMedia"}), frozenset({"image/png"}), 5, 100)
    key_id, _ = new_key(app, policy)
    with runtime(app).db.connect() as conn:
        events = conn.execute(
            sa.select(ledger_events.c.kind, ledger_events.c.data).where(ledger_events.c.subject == key_id)
        ).all()
    assert [e.kind for e in events] == ["api_key.created", "api_key.policy"]
    assert json.loads(events[1].data) == policy.to_json()
    # Another process (a fresh store over the same database) derives the same policy from the events.
    fresh = ApiKeyStore(runtime(app).db).get(key_id)
    assert fresh is not None
    assert fresh.policy == policy
    # The control: a key without a policy event has none.
    other_id, _ = new_key(app)
    other = ApiKeyStore(runtime(app).db).get(other_id)
    assert other is not None
    assert other.policy == KeyPolicy()


def test_cli_sets_shows_and_clears_a_policy(app: TestClient) -> None:
    key_id, _ = new_key(app)
    env = {**os.environ, "HALLMARK_DATA_DIR": str(runtime(app).settings.data_dir)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [HALLMARK, "apikey", *args], env=env, capture_output=True, text=True, check=False
        )

    done = cli("policy", key_id, "--source-types", "trainedAlgorithmicMedia", "--formats", "jpg,png",
               "--rate-per-minute", "7", "--monthly-quota", "1000")  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = json.loads(cli("list", "--json").stdout)
    assert [k["policy"] for k in listed if k["id"] == key_id] == [
        {"source_types": [IPTC + "trainedAlgorithmicMedia"], "formats": ["image/jpeg", "image/png"],
         "rate_per_minute": 7, "monthly_quota": 1000}
    ]  # fmt: skip
    assert "rate=7/min" in cli("list").stdout
    assert cli("policy", key_id, "--clear", "rate", "--clear", "formats").returncode == 0
    policy = ApiKeyStore(runtime(app).db).get(key_id)
    assert policy is not None
    assert policy.policy == KeyPolicy(frozenset({IPTC + "trainedAlgorithmicMedia"}), None, None, 1000)
    assert cli("policy", key_id, "--clear", "all").returncode == 0
    assert json.loads(cli("list", "--json").stdout)[0]["policy"] == KeyPolicy().to_json()
    # Refusals: an unknown format or source type, nothing to change, an unknown key.
    assert cli("policy", key_id, "--formats", "bmp").returncode == 2
    assert cli("policy", key_id, "--source-types", "photo").returncode == 2
    assert cli("policy", key_id).returncode == 2
    assert cli("policy", "0" * 16, "--rate-per-minute", "3").returncode == 1


# --- source types and formats ---------------------------------------------------------------------------


def test_a_source_type_outside_the_policy_is_403_naming_the_allowed(app: TestClient, jpeg: bytes) -> None:
    _, token = new_key(app, KeyPolicy(source_types=frozenset({IPTC + "trainedAlgorithmicMedia"})))
    refused = sign(app, token, jpeg, digital_source_type="compositeWithTrainedAlgorithmicMedia")
    body = problem(refused, 403, "api-key-policy")
    assert "compositeWithTrainedAlgorithmicMedia" in body["detail"]
    assert "may sign: trainedAlgorithmicMedia" in body["detail"]
    assert runtime(app).ledger.count() == 0
    allowed = sign(app, token, jpeg, digital_source_type="trainedAlgorithmicMedia")
    assert allowed.status_code == 200, allowed.text
    _, open_token = new_key(app)  # control: a key without a policy signs the refused type
    assert (
        sign(app, open_token, jpeg, digital_source_type="compositeWithTrainedAlgorithmicMedia").status_code
        == 200
    )


def test_a_format_outside_the_policy_is_403_naming_the_allowed(
    app: TestClient, jpeg: bytes, png: bytes
) -> None:
    _, token = new_key(app, KeyPolicy(formats=frozenset({"image/png"})))
    body = problem(sign(app, token, jpeg), 403, "api-key-policy")
    assert "may not sign image/jpeg files; it may sign: image/png" in body["detail"]
    assert sign(app, token, png).status_code == 200
    assert runtime(app).ledger.count() == 1


# --- the rate, across processes -------------------------------------------------------------------------


def test_the_rate_is_shared_by_two_service_processes(uncached: Settings, jpeg: bytes) -> None:
    clock = FakeClock()
    with TestClient(create_app(uncached)) as one, TestClient(create_app(uncached)) as two:
        for client in (one, two):
            runtime(client).key_limits = KeyLimits(runtime(client).db, clock=clock)
        _, token = new_key(one, KeyPolicy(rate_per_minute=2))
        _, other = new_key(one, KeyPolicy(rate_per_minute=2))
        assert sign(one, token, jpeg).status_code == 200
        assert sign(two, token, jpeg).status_code == 200  # the other process sees the policy and the count
        refused = sign(one, token, jpeg)
        body = problem(refused, 429, "api-key-rate-limited")
        assert "2 sign requests per minute" in body["detail"]
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 120
        assert body["details"]["retry_after_seconds"] == wait
        problem(sign(two, token, jpeg), 429, "api-key-rate-limited")
        assert sign(two, other, jpeg).status_code == 200  # control: another key has its own count
        clock.now += wait  # a refused request did not count: waiting Retry-After is enough
        assert sign(two, token, jpeg).status_code == 200
        assert runtime(one).ledger.count() == 4


def test_without_a_rate_the_counter_is_not_touched(app: TestClient, jpeg: bytes) -> None:
    _, token = new_key(app)
    for _ in range(3):
        assert sign(app, token, jpeg).status_code == 200
    with runtime(app).db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM api_key_rate")).scalar_one() == 0


# --- the monthly quota ----------------------------------------------------------------------------------


def test_the_monthly_quota_counts_the_ledger_and_replays_are_free(app: TestClient, jpeg: bytes) -> None:
    key_id, token = new_key(app, KeyPolicy(monthly_quota=2))
    _, other = new_key(app, KeyPolicy(monthly_quota=2))
    first = sign(app, token, jpeg, key="a")
    assert first.status_code == 200
    assert sign(app, token, jpeg).status_code == 200
    refused = sign(app, token, jpeg)
    body = problem(refused, 429, "api-key-quota-exceeded")
    assert "monthly quota of 2 signatures is used up" in body["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    # A retry of a request that was signed is answered from its stored result: no new signature.
    replay = sign(app, token, jpeg, key="a")
    assert replay.status_code == 200
    assert replay.headers["Hallmark-Manifest-Id"] == first.headers["Hallmark-Manifest-Id"]
    assert sign(app, other, jpeg).status_code == 200  # control: the other key's quota is its own
    with runtime(app).db.connect() as conn:
        mine = conn.execute(
            sa.select(sa.func.count()).select_from(signatures).where(signatures.c.api_key_id == key_id)
        ).scalar_one()
    assert mine == 2


def test_last_months_signatures_do_not_count(app: TestClient, jpeg: bytes) -> None:
    _, token = new_key(app, KeyPolicy(monthly_quota=1))
    assert sign(app, token, jpeg).status_code == 200  # the ledger row is dated now
    problem(sign(app, token, jpeg), 429, "api-key-quota-exceeded")  # control: this month it counts
    following = month_start(month_start(datetime.now(UTC)) + timedelta(days=32))
    runtime(app).key_limits = KeyLimits(runtime(app).db, clock=FakeClock(following.timestamp() + 10))
    assert sign(app, token, jpeg).status_code == 200  # next month, the quota starts afresh
