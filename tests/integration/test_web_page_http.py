"""The public page, the offline API docs and POST /v1/feedback over HTTP (the browser tests are in
tests/e2e/test_web_page.py)."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.testclient import TestClient

from app.store.db import alembic_config, make_engine, migrate
from app.store.feedback import FeedbackEntry, SqlFeedback

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.IGNORECASE)


@dataclass(frozen=True)
class FixedClock:
    at: datetime

    def now(self) -> datetime:
        return self.at


def feedback_rows(client: TestClient) -> list[FeedbackEntry]:
    return SqlFeedback(client.app.state.runtime.db).list()  # type: ignore[attr-defined]


def csp(response: Any) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {d.split()[0]: d.partition(" ")[2] for d in (p.strip() for p in policy.split(";")) if d}


# --- the page -------------------------------------------------------------------------------------------


def test_page_is_served_with_a_strict_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = csp(response)
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "<script>" not in response.text  # no inline script: the policy would block it
    assert '<script src="/assets/verify.js" defer></script>' in response.text
    assert EXTERNAL.search(response.text) is None
    assert EXTERNAL.search('<script src="//cdn.example/x.js">') is not None  # control: the check can fail


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/assets/verify.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
        ("/assets/vendor/swagger-ui/swagger-ui-bundle.js", "text/javascript"),
        ("/assets/vendor/swagger-ui/swagger-ui.css", "text/css"),
        ("/assets/vendor/swagger-ui/favicon-32x32.png", "image/png"),
    ],
)
def test_assets_are_served_from_the_package(client: TestClient, path: str, media_type: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get(path + ".missing").status_code == 404


def test_page_script_never_writes_html(client: TestClient) -> None:
    """Report strings are attacker-controlled: the script sets text only."""
    script = client.get("/assets/verify.js").text
    assert "textContent" in script
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


# --- the API docs, offline ------------------------------------------------------------------------------


def test_docs_reference_no_external_host(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert EXTERNAL.search(response.text) is None, response.text
    assert "/assets/vendor/swagger-ui/swagger-ui-bundle.js" in response.text
    assert "/assets/vendor/swagger-ui/swagger-ui.css" in response.text
    # Control: FastAPI's default page loads from a CDN, and the check sees it.
    default = bytes(get_swagger_ui_html(openapi_url="/openapi.json", title="x").body).decode()
    assert EXTERNAL.search(default) is not None


def test_docs_policy_allows_exactly_their_start_up_script(client: TestClient) -> None:
    response = client.get("/docs")
    [inline] = re.findall(r"<script>(.*?)</script>", response.text, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert csp(response)["script-src"] == f"'self' 'sha256-{digest}'"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_redoc_is_not_offered(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200  # control: the document itself is served


# --- feedback -------------------------------------------------------------------------------------------


def test_feedback_stores_exactly_its_fields_and_the_day(client: TestClient) -> None:
    client.app.state.runtime.clock = FixedClock(datetime(2026, 3, 5, 23, 59, 58, tzinfo=UTC))  # type: ignore[attr-defined]
    assert feedback_rows(client) == []
    body = {"manifest_id": "urn:c2pa:1", "outcome": "none", "verdict_correct": False, "comment": "  hmm  "}
    response = client.post(
        "/v1/feedback", json=body, headers={"User-Agent": "tracker/1.0", "X-Forwarded-For": "203.0.113.9"}
    )
    assert response.status_code == 201, response.text
    stored = FeedbackEntry(
        day=date(2026, 3, 5), outcome="none", verdict_correct=False, manifest_id="urn:c2pa:1", comment="hmm"
    )
    assert response.json() == {
        "day": "2026-03-05", "outcome": "none", "verdict_correct": False, "manifest_id": "urn:c2pa:1",
        "comment": "hmm",
    }  # fmt: skip
    assert feedback_rows(client) == [stored]
    with client.app.state.runtime.db.connect() as conn:  # type: ignore[attr-defined]
        [row] = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM feedback"))]
    assert set(row) == {"seq", "day", "outcome", "verdict_correct", "manifest_id", "comment"}
    assert "203.0.113.9" not in repr(row)
    assert "tracker" not in repr(row)


def test_feedback_the_database_cannot_store_is_a_503_that_blames_no_ledger(client: TestClient) -> None:
    ok = {"outcome": "trusted", "verdict_correct": True}
    assert client.post("/v1/feedback", json=ok).status_code == 201  # the control: the same body stores
    with client.app.state.runtime.db.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.text("DROP TABLE feedback"))
    response = client.post("/v1/feedback", json=ok)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/storage-unavailable"
    assert "ledger" not in response.text.lower()


def test_feedback_with_only_the_required_fields(client: TestClient) -> None:
    response = client.post("/v1/feedback", json={"outcome": "trusted", "verdict_correct": True})
    assert response.status_code == 201, response.text
    [entry] = feedback_rows(client)
    assert (entry.outcome, entry.verdict_correct, entry.manifest_id, entry.comment) == (
        "trusted",
        True,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": "maybe", "verdict_correct": True}, "outcome"),
        ({"outcome": "none"}, "verdict_correct"),
        ({"outcome": "none", "verdict_correct": True, "comment": "x" * 501}, "comment"),
        ({"outcome": "none", "verdict_correct": True, "ip": "198.51.100.1"}, "ip"),
    ],
)
def test_invalid_feedback_is_a_problem_and_stores_nothing(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert feedback_rows(client) == []
    # Control: the longest comment allowed is stored.
    ok = {"outcome": "none", "verdict_correct": True, "comment": "x" * 500}
    assert client.post("/v1/feedback", json=ok).status_code == 201


def test_feedback_body_is_size_limited(client: TestClient) -> None:
    padded = b'{"outcome": "none", "verdict_correct": true' + b" " * 5000 + b"}"
    response = client.post("/v1/feedback", content=padded, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["details"] == {"limit_bytes": 4096}

    def chunks() -> Any:  # no Content-Length: refused while it streams
        yield padded[:3000]
        yield padded[3000:]

    streamed = client.post("/v1/feedback", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert feedback_rows(client) == []
    small = b'{"outcome": "none", "verdict_correct": true' + b" " * 3000 + b"}"  # control: under the limit
    accepted = client.post("/v1/feedback", content=small, headers={"Content-Type": "application/json"})
    assert accepted.status_code == 201


def test_migration_0005_adds_feedback_to_a_0004_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    try:
        command.upgrade(alembic_config(url), "0004")
        assert "feedback" not in sa.inspect(engine).get_table_names()
        migrate(engine)
        columns = {c["name"] for c in sa.inspect(engine).get_columns("feedback")}
        assert columns == {"seq", "day", "outcome", "verdict_correct", "manifest_id", "comment"}
        command.downgrade(alembic_config(url), "0004")
        assert "feedback" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
