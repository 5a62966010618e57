"""What a verify report says, through HTTP, about files the real engine signed: whose problems are whose,
which list vouches for a timestamp, the actions' times, training-mining preferences and the detailed view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.test_http_sign import sign, verify

CAWG_PARENT = "C_with_CAWG_data.jpg"  # another implementation's file: its CAWG identity is not trusted here
CAWG_UNTRUSTED = "cawg.x509.credential.untrusted"


def signed(
    client: TestClient, auth: dict[str, str], data: bytes, training_mining: str | None = None
) -> bytes:
    if training_mining is None:
        response = sign(client, auth, data)
    else:
        response = sign(client, auth, data, training_mining=training_mining)
    assert response.status_code == 200, response.text
    content: bytes = response.content
    return content


def test_our_signature_over_a_parent_with_an_untrusted_identity_is_trusted(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    report = verify(client, signed(client, auth, (interop_dir / CAWG_PARENT).read_bytes()))
    assert report["outcome"] == "trusted", report["summary"]
    assert report["signer"]["trusted"] is True
    assert report["signer"]["trust_profile"] == "test-root"
    assert "not on any trust list" not in report["summary"]
    assert report["codes"]["failure"] == []
    [parent] = report["ingredients"]
    assert parent["relationship"] == "parentOf"
    assert CAWG_UNTRUSTED in parent["validation_failures"]
    assert "signingCredential.untrusted" in parent["validation_failures"]
    assert "ingredients carries credentials with problems of their own" in report["summary"]


def test_the_parent_on_its_own_keeps_its_untrusted_identity(client: TestClient, interop_dir: Path) -> None:
    """Negative control: where the identity assertion is the active manifest's, its failure is its own."""
    report = verify(client, (interop_dir / CAWG_PARENT).read_bytes())
    assert report["outcome"] == "valid_untrusted"
    assert CAWG_UNTRUSTED in {c["code"] for c in report["codes"]["failure"]}
    assert report["signer"]["trusted"] is False


def test_a_version_1_claims_timestamp_is_not_called_trusted(client: TestClient, interop_dir: Path) -> None:
    """The engine accepts a v1 claim's timestamp without checking its authority: no list vouches for it."""
    report = verify(client, (interop_dir / "C.jpg").read_bytes())
    assert report["timestamp"]["status"] == "unanchored"
    assert report["timestamp"]["trust_profile"] is None
    assert report["timestamp"]["trust_list"] is None
    assert "timeStamp.trusted" in {c["code"] for c in report["codes"]["success"]}


def test_actions_carry_their_time_and_training_mining_is_reported(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    data = (interop_dir / "no_manifest.jpg").read_bytes()
    report = verify(client, signed(client, auth, data, training_mining="notAllowed"))
    created, watermarked = report["ai"]["action_details"]  # the JPEG is large enough to carry the mark
    assert watermarked["action"] == "c2pa.watermarked.bound"
    assert watermarked["when"] == created["when"]
    assert created["action"] == "c2pa.created"
    assert created["when"] is not None
    assert created["when"].endswith("Z")
    assert created["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    uses = {p["use"]: p["value"] for p in report["training_mining"]}
    assert uses == {
        "cawg.ai_generative_training": "notAllowed",
        "cawg.ai_inference": "notAllowed",
        "cawg.ai_training": "notAllowed",
        "cawg.data_mining": "notAllowed",
    }
    plain = verify(client, signed(client, auth, data))
    assert plain["training_mining"] == []


def detailed(client: TestClient, data: bytes, detail: str | None) -> Any:
    params = {"detail": detail} if detail else None
    return client.post("/v1/verify", files={"file": ("asset", data)}, params=params)


def test_detail_full_adds_the_whole_manifest_store(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    data = signed(client, auth, (interop_dir / CAWG_PARENT).read_bytes())
    full = detailed(client, data, "full")
    assert full.status_code == 200
    body = full.json()
    store = body.pop("manifest_store")
    assert store["active_manifest"] == body["manifest_id"]
    assert len(store["manifests"]) == 2  # ours and the parent's, ingredients included
    [ingredient] = store["manifests"][body["manifest_id"]]["ingredients"]
    assert ingredient["active_manifest"] in store["manifests"]
    summary = detailed(client, data, None)
    assert "manifest_store" not in summary.json()
    assert summary.json() == body  # the rest is the same report
    assert detailed(client, data, "summary").json() == summary.json()
    assert len(summary.content) < len(full.content)


def test_detail_full_without_credentials_has_no_store(client: TestClient, interop_dir: Path) -> None:
    body = detailed(client, (interop_dir / "no_manifest.jpg").read_bytes(), "full").json()
    assert body["outcome"] == "none"
    assert body["manifest_store"] is None


@pytest.mark.parametrize("detail", ["everything", "FULL"])
def test_unknown_detail_is_refused(client: TestClient, interop_dir: Path, detail: str) -> None:
    response = detailed(client, (interop_dir / "no_manifest.jpg").read_bytes(), detail)
    assert response.status_code == 422
    assert json.loads(response.text)["status"] == 422
