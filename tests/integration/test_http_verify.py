"""POST /v1/verify through HTTP: who may call it, the report's shape, and every interop file."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import shared_dir
from tests.interop_corpus import refused_as_malformed

FORBIDDEN_WORDS = ("authentic", "human-made", "human made")


def read_expected() -> list[dict[str, str]]:
    path = shared_dir() / "interop" / "EXPECTED.tsv"
    if not path.is_file():
        return [{"file": "<EXPECTED.tsv not found>", "c2pa_state": "", "failure_codes": "", "note": ""}]
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


EXPECTED = read_expected()


def verify(client: TestClient, data: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post("/v1/verify", headers=headers, files={"file": ("asset", data)})


def signed_jpeg(client: TestClient, auth: dict[str, str], interop_dir: Path) -> bytes:
    response = client.post(
        "/v1/sign",
        headers=auth,
        data={"model_name": "test-diffusion", "model_version": "2.1"},
        files={"file": ("a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())},
    )
    assert response.status_code == 200, response.text
    return response.content


# --- who may verify ---------------------------------------------------------------------------------


def test_verify_is_public_by_default(client: TestClient, interop_dir: Path) -> None:
    response = verify(client, (interop_dir / "C.jpg").read_bytes())
    assert response.status_code == 200
    assert response.json()["outcome"] == "valid_untrusted"


@pytest.fixture
def private_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"verify_requires_key": True}))) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("scopes", "status"),
    [(None, 401), ({"sign"}, 200), ({"admin"}, 200), ({"sign", "admin"}, 200)],
    ids=["no-key", "sign-key", "admin-key", "both-scopes"],
)
def test_verify_can_require_any_valid_key(
    private_client: TestClient, interop_dir: Path, scopes: set[str] | None, status: int
) -> None:
    headers = {}
    if scopes is not None:
        _, token = private_client.app.state.runtime.api_keys.create("k", scopes)  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {token}"}
    response = verify(private_client, (interop_dir / "no_manifest.jpg").read_bytes(), headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_verify_with_required_key_refuses_an_unknown_key(
    private_client: TestClient, interop_dir: Path
) -> None:
    headers = {"Authorization": "Bearer hm_0123456789abcdef_nope"}
    response = verify(private_client, (interop_dir / "no_manifest.jpg").read_bytes(), headers)
    assert response.status_code == 401


# --- the report -------------------------------------------------------------------------------------


def test_report_on_our_output_has_every_field(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    response = verify(client, signed_jpeg(client, auth, interop_dir))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    report = response.json()
    assert report["outcome"] == "trusted"
    assert report["integrity"] == "intact"
    assert report["media_type"] == "image/jpeg"
    assert report["manifest_id"].startswith("urn:c2pa:")
    assert report["signer"]["trusted"] is True
    assert report["signer"]["trust_profile"] == "test-root"
    assert report["signer"]["common_name"] == "Hallmark Test Signer"
    assert report["timestamp"]["status"] == "none"
    assert report["revocation"] == "not_checked"
    assert report["ai"] == {
        "declared": True,
        "digital_source_type": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        "description": report["ai"]["description"],
        "model_name": "test-diffusion",
        "model_version": "2.1",
        "provider": "Example AI",
        "actions": ["c2pa.created"],
    }
    assert report["ingredients"] == []
    assert set(report["codes"]) == {"success", "informational", "failure"}
    assert report["codes"]["failure"] == []
    assert "claimSignature.validated" in {c["code"] for c in report["codes"]["success"]}
    assert report["development_trust"] is True  # the test PKI is a development PKI
    assert report["remote_manifest"] is None
    assert report["summary"]
    assert not any(word in report["summary"].lower() for word in FORBIDDEN_WORDS)


def test_unsigned_file_reports_no_provenance_without_judging_the_content(
    client: TestClient, interop_dir: Path
) -> None:
    report = verify(client, (interop_dir / "no_manifest.jpg").read_bytes()).json()
    assert report["outcome"] == "none"
    assert report["integrity"] == "absent"
    assert report["signer"] is None
    assert report["ai"] is None
    assert "says nothing about how the content was made" in report["summary"]


def verify_with_sidecar(client: TestClient, asset: bytes, sidecar: bytes) -> Any:
    return client.post(
        "/v1/verify",
        files={"file": ("a.jpg", asset), "manifest": ("a.c2pa", sidecar, "application/c2pa")},
    )


def test_garbage_sidecar_is_an_unreadable_manifest(client: TestClient, interop_dir: Path) -> None:
    response = verify_with_sidecar(
        client, (interop_dir / "no_manifest.jpg").read_bytes(), b"not a manifest store" * 10
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["outcome"] == "invalid"
    assert report["integrity"] == "unreadable"
    assert report["signer"] is None


def test_a_real_sidecar_verifies_its_file(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    """The control for the garbage case: the same request with the sidecar the service made is trusted."""
    original = (interop_dir / "no_manifest.jpg").read_bytes()
    signed = client.post(
        "/v1/sign",
        params={"output": "sidecar"},
        headers=auth,
        data={"model_name": "test-diffusion", "model_version": "2.1"},
        files={"file": ("a.jpg", original)},
    )
    assert signed.status_code == 200, signed.text
    report = verify_with_sidecar(client, original, signed.content).json()
    assert report["outcome"] == "trusted"
    assert report["integrity"] == "intact"


# --- the interop corpus -----------------------------------------------------------------------------


def expected_outcome(row: dict[str, str]) -> str:
    """The one answer for a row of EXPECTED.tsv: an outcome, or 'problem' for a 422 problem."""
    state, note = row["c2pa_state"], row["note"] or ""
    if state == "Valid":
        return "valid_untrusted"
    if state == "Invalid":
        return "invalid"
    if state == "Error:ManifestNotFound":
        return "none"
    if note.startswith("Remote:"):
        return "remote"
    assert state == "Error:Other", f"{row['file']}: a state this test does not know: {state!r}"
    return "problem" if refused_as_malformed(row["file"]) else "invalid"


@pytest.mark.parametrize("row", EXPECTED, ids=[r["file"] for r in EXPECTED])
def test_every_interop_file_gets_an_answer_consistent_with_the_reference(
    client: TestClient, interop_dir: Path, row: dict[str, str]
) -> None:
    response = verify(client, (interop_dir / row["file"]).read_bytes())
    expected = expected_outcome(row)

    if expected == "problem":
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert {"type", "title", "status", "detail"} <= set(response.json())
        return

    assert response.status_code == 200, response.text
    report = response.json()
    assert not any(word in report["summary"].lower() for word in FORBIDDEN_WORDS)
    if expected == "remote":
        assert report["outcome"] == "none"
        assert report["remote_manifest"]["url"].startswith("http")
        assert report["remote_manifest"]["fetched"] is False
        return
    assert report["outcome"] == expected, report["summary"]
    failures = {c["code"] for c in report["codes"]["failure"]}
    expected_failures = {c for c in (row["failure_codes"] or "").split(",") if c}
    assert expected_failures <= failures
    if row["c2pa_state"] == "Error:Other":
        assert report["integrity"] == "unreadable"
