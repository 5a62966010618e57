"""Verification admission through the app: while every slot and queue place is taken, POST /v1/verify and
Soft Binding Resolution by content get 503 + Retry-After before their upload is parsed; otherwise they run."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from app.admission import WorkGate
from app.main import create_app
from app.settings import Settings
from tests.conftest import make_data_dir
from tests.pki import TestPki as Pki
from tests.unit.test_admission import held


@pytest.fixture
def app(tmp_path: Path, pki: Pki) -> Iterator[FastAPI]:
    settings = Settings(
        data_dir=make_data_dir(tmp_path / "var", pki), max_concurrent_verifies=1, verify_queue=0
    )
    application = create_app(settings)
    with TestClient(application):
        yield application


@pytest.fixture(scope="module")
def tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 20)).save(out, "JPEG")
    return out.getvalue()


def gate(app: FastAPI) -> WorkGate:
    g: WorkGate = app.state.verify_gate
    return g


def test_a_saturated_gate_answers_503_with_retry_after(app: FastAPI, tiny_jpeg: bytes) -> None:
    client = TestClient(app)
    with held(gate(app)):
        refused = client.post("/v1/verify", files={"file": ("a.jpg", tiny_jpeg, "image/jpeg")})
        by_content = client.post("/sbr/v1/matches/byContent", content=tiny_jpeg)
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"] == "/problems/over-capacity"
    assert by_content.status_code == 503
    # The same client on the same connection is answered normally once the slot is free again.
    assert client.post("/v1/verify", files={"file": ("a.jpg", tiny_jpeg, "image/jpeg")}).status_code == 200
    assert client.post("/sbr/v1/matches/byContent", content=tiny_jpeg).status_code == 200


def test_other_endpoints_pass_a_saturated_gate(app: FastAPI) -> None:
    client = TestClient(app)
    with held(gate(app)):
        assert client.get("/healthz").status_code == 200
        assert (
            client.post("/v1/feedback", json={"outcome": "none", "verdict_correct": True}).status_code == 201
        )


def chunks(total: int, size: int = 16_384) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length): its size is known only as it arrives."""
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


@pytest.fixture
def small(tmp_path: Path, pki: Pki) -> Iterator[FastAPI]:
    """Uploads of at most 100 KB, one verification at a time and none waiting."""
    settings = Settings(
        data_dir=make_data_dir(tmp_path / "var", pki),
        max_concurrent_verifies=1,
        verify_queue=0,
        max_upload_bytes=100_000,
    )
    application = create_app(settings)
    with TestClient(application):
        yield application


@pytest.mark.parametrize(
    ("content_type", "limit"),
    [("multipart/form-data; boundary=b", 100_000), ("application/json", 8 * 1024)],
    ids=["upload", "json"],
)
def test_a_body_over_its_limit_dropped_at_a_saturated_gate_is_413(
    small: FastAPI, content_type: str, limit: int
) -> None:
    """The door reads a refused verify's body to drop it, outside FastAPI's body parsing: a limit crossed
    there is still answered 413 (it was an unhandled error, 500), and the connection is closed."""
    client = TestClient(small)
    with held(gate(small)):
        over = client.post(
            "/v1/verify", content=chunks(limit + 20_000), headers={"Content-Type": content_type}
        )
        # Control: the same body under the limit is read to its end and refused for capacity.
        under = client.post(
            "/v1/verify", content=chunks(limit - 1_000), headers={"Content-Type": content_type}
        )
    assert over.status_code == 413, over.text
    assert over.headers["content-type"] == "application/problem+json"
    assert over.json()["details"]["limit_bytes"] == limit
    assert over.headers["connection"] == "close"
    assert under.status_code == 503, under.text
