"""Timestamps through the HTTP service: a real local TSA, the deadline relay, the breaker, both policies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import make_data_dir
from tests.pki import TestPki as Pki
from tests.tsa import LocalTsa
from tests.waiting import GENEROUS_SECONDS

DEADLINE = 1.0


def sign(client: TestClient, token: str, jpeg: bytes) -> tuple[int, dict[str, str], bytes]:
    response = client.post(
        "/v1/sign",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": ("a.jpg", jpeg)},
        data={"model_name": "m", "model_version": "1"},
    )
    return response.status_code, dict(response.headers), response.content


@pytest.fixture
def jpeg(interop_dir: Path) -> bytes:
    return (interop_dir / "no_manifest.jpg").read_bytes()


def service(
    tmp_path: Path, pki: Pki, tsa: LocalTsa, *, trust_tsa: bool = True, **overrides: object
) -> Iterator[tuple[TestClient, str]]:
    data_dir = make_data_dir(tmp_path / "var", pki)
    if trust_tsa:
        (data_dir / "trust" / "test-tsa.pem").write_bytes(
            tsa.root_pem
        )  # the TSA's anchor, as its own profile
    settings = Settings(data_dir=data_dir, tsa_url=tsa.url, tsa_deadline_seconds=DEADLINE, **overrides)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        _, token = client.app.state.runtime.api_keys.create("t", {"sign"})  # type: ignore[attr-defined]
        yield client, token


def test_signatures_carry_a_trusted_timestamp(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with LocalTsa() as tsa:
        for client, token in service(tmp_path, pki, tsa):
            status, headers, body = sign(client, token, jpeg)
            assert status == 200
            assert headers["hallmark-timestamped"] == "true"
            assert tsa.requests == 1
            report = client.post("/v1/verify", files={"file": ("x", body)}).json()
            assert report["outcome"] == "trusted"
            assert report["timestamp"]["status"] == "trusted"
            # The profile whose list vouches: a plain .pem profile holds signer anchors (one engine pool).
            assert report["timestamp"]["trust_profile"] == "test-tsa"
            assert report["timestamp"]["trust_list"] == "signers"
            assert report["timestamp"]["time"]
            [row] = client.app.state.runtime.ledger.list()  # type: ignore[attr-defined]
            assert row.timestamped is True


def test_without_tsa_trust_no_list_vouches_for_the_timestamp(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with LocalTsa() as tsa:
        for client, token in service(tmp_path, pki, tsa, trust_tsa=False):
            status, headers, body = sign(client, token, jpeg)
            assert (status, headers["hallmark-timestamped"]) == (200, "true")
            report = client.post("/v1/verify", files={"file": ("x", body)}).json()
            assert report["outcome"] == "trusted"  # the signer's own profile still trusts the signer
            assert report["timestamp"]["status"] == "untrusted"
            assert report["timestamp"]["trust_profile"] is None
            assert report["timestamp"]["trust_list"] is None
            assert report["timestamp"]["time"]


def test_require_policy_fails_fast_with_retry_after(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with LocalTsa("blackhole") as tsa:
        for client, token in service(tmp_path, pki, tsa, tsa_breaker_failures=2, tsa_breaker_open_seconds=30):
            started = time.monotonic()
            status, headers, body = sign(client, token, jpeg)
            # A timing property under a generous bound: the 1 s deadline, not the engine's own ~30 s.
            assert time.monotonic() - started < DEADLINE + GENEROUS_SECONDS
            assert status == 503
            assert headers["content-type"] == "application/problem+json"
            assert int(headers["retry-after"]) >= 1
            assert json.loads(body)["details"]["reason"] == "tsa_failed"
            sign(client, token, jpeg)  # second failure opens the breaker
            seen = tsa.requests
            status, headers, body = sign(client, token, jpeg)
            assert status == 503
            assert json.loads(body)["details"]["reason"] == "breaker_open"  # answered without the TSA
            assert tsa.requests == seen, "an open breaker does not contact the TSA"
            assert 1 <= int(headers["retry-after"]) <= 30
            assert client.app.state.runtime.ledger.count() == 0  # type: ignore[attr-defined]


def test_best_effort_signs_without_a_timestamp_and_records_it(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with LocalTsa("error") as tsa:
        for client, token in service(tmp_path, pki, tsa, tsa_policy="best_effort"):
            status, headers, body = sign(client, token, jpeg)
            assert status == 200
            assert headers["hallmark-timestamped"] == "false"
            report = client.post("/v1/verify", files={"file": ("x", body)}).json()
            assert report["outcome"] == "trusted"
            assert report["timestamp"]["status"] == "none"
            [row] = client.app.state.runtime.ledger.list()  # type: ignore[attr-defined]
            assert row.timestamped is False


def test_a_dead_tsa_blocks_neither_start_nor_readiness(tmp_path: Path, pki: Pki) -> None:
    with LocalTsa("blackhole") as tsa:
        for client, _ in service(tmp_path, pki, tsa):
            assert client.get("/readyz").status_code == 200
