"""POST /v1/sign through HTTP: the real app, the real c2pa engine, a real SQLite ledger.

Outputs are checked by verifying them through POST /v1/verify (and, for assertions the report does not
show, by reading them with the app's own engine).
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from app.settings import Settings
from tests.conftest import make_data_dir
from tests.media_samples import flip_jpeg_scan_byte
from tests.pki import TestPki as Pki

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
FORM = {"model_name": "test-diffusion", "model_version": "2.1"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign(
    client: TestClient,
    headers: dict[str, str],
    data: bytes,
    *,
    filename: str = "upload.bin",
    content_type: str = "application/octet-stream",
    params: dict[str, str] | None = None,
    **form: str,
) -> Any:
    return client.post(
        "/v1/sign",
        headers=headers,
        params=params,
        data={**FORM, **form},
        files={"file": (filename, data, content_type)},
    )


def verify(client: TestClient, data: bytes, sidecar: bytes | None = None) -> dict[str, Any]:
    files: dict[str, Any] = {"file": ("asset", data)}
    if sidecar is not None:
        files["manifest"] = ("asset.c2pa", sidecar, "application/c2pa")
    response = client.post("/v1/verify", files=files)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def ledger_count(client: TestClient) -> int:
    return int(client.app.state.runtime.ledger.count())  # type: ignore[attr-defined]


def assertion(client: TestClient, mime: str, data: bytes, label: str) -> dict[str, Any] | None:
    """The data of assertion `label` in the active manifest, read by the app's own engine."""
    reading = client.app.state.runtime.engine.read(mime, io.BytesIO(data))  # type: ignore[attr-defined]
    manifest = reading.store["manifests"][reading.store["active_manifest"]]
    found = [a["data"] for a in manifest["assertions"] if a["label"] == label]
    return found[0] if found else None


# --- the signed response ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mime"),
    [("no_manifest.jpg", "image/jpeg"), ("sample1.png", "image/png"), ("sample1.wav", "audio/wav")],
)
def test_sign_returns_the_same_media_type_with_provenance_headers(
    client: TestClient, auth: dict[str, str], interop_dir: Path, name: str, mime: str
) -> None:
    original = (interop_dir / name).read_bytes()
    response = sign(client, auth, original, filename=name)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == mime
    assert re.fullmatch(r"urn:c2pa:[0-9a-f-]{36}", response.headers["Hallmark-Manifest-Id"])
    assert response.headers["Hallmark-Input-SHA256"] == sha256(original)
    assert response.headers["Hallmark-Output-SHA256"] == sha256(response.content)
    assert response.headers["Hallmark-Signing-Key-Id"] == "default"
    assert "Hallmark-Parent-Manifest-Id" not in response.headers
    assert response.content != original
    assert ledger_count(client) == 1


def test_media_type_is_sniffed_from_the_bytes_not_the_declared_type(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    png = (interop_dir / "sample1.png").read_bytes()
    response = sign(client, auth, png, filename="x.jpg", content_type="image/jpeg")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert verify(client, response.content)["media_type"] == "image/png"


def test_signed_output_verifies_as_trusted_ai_generated_media(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    response = sign(client, auth, (interop_dir / "no_manifest.jpg").read_bytes())
    report = verify(client, response.content)
    assert report["outcome"] == "trusted"
    assert report["integrity"] == "intact"
    assert report["manifest_id"] == response.headers["Hallmark-Manifest-Id"]
    assert report["signer"]["trust_profile"] == "test-root"
    assert report["ai"]["declared"] is True
    assert report["ai"]["digital_source_type"] == IPTC + "trainedAlgorithmicMedia"
    assert report["ai"]["model_name"] == "test-diffusion"
    assert report["ai"]["model_version"] == "2.1"
    assert report["ai"]["provider"] == "Example AI"  # the settings' default_provider
    assert report["ingredients"] == []


def test_provider_and_title_from_the_form_are_recorded(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    data = (interop_dir / "no_manifest.jpg").read_bytes()
    response = sign(client, auth, data, provider="Acme Labs", title="A lighthouse at dusk")
    report = verify(client, response.content)
    assert report["ai"]["provider"] == "Acme Labs"
    assert report["title"] == "A lighthouse at dusk"


@pytest.mark.parametrize(
    ("sent", "declared_uri", "ai_declared"),
    [
        (None, IPTC + "trainedAlgorithmicMedia", True),
        ("trainedAlgorithmicMedia", IPTC + "trainedAlgorithmicMedia", True),
        ("compositeWithTrainedAlgorithmicMedia", IPTC + "compositeWithTrainedAlgorithmicMedia", True),
        (IPTC + "compositeWithTrainedAlgorithmicMedia", IPTC + "compositeWithTrainedAlgorithmicMedia", True),
    ],
    ids=["default", "trained", "composite", "composite-uri"],
)
def test_digital_source_type_is_declared_as_sent(
    client: TestClient,
    auth: dict[str, str],
    interop_dir: Path,
    sent: str | None,
    declared_uri: str,
    ai_declared: bool,
) -> None:
    jpeg = (interop_dir / "no_manifest.jpg").read_bytes()
    response = (
        sign(client, auth, jpeg) if sent is None else sign(client, auth, jpeg, digital_source_type=sent)
    )
    assert response.status_code == 200, response.text
    ai = verify(client, response.content)["ai"]
    assert ai["digital_source_type"] == declared_uri
    assert ai["declared"] is ai_declared


@pytest.mark.parametrize(
    "sent", ["digitalCapture", IPTC + "digitalCapture", "algorithmicMedia", "digitalArt"]
)
def test_a_source_type_that_claims_no_trained_model_is_refused_by_default(
    client: TestClient, auth: dict[str, str], interop_dir: Path, sent: str
) -> None:
    response = sign(client, auth, (interop_dir / "no_manifest.jpg").read_bytes(), digital_source_type=sent)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/invalid-metadata")
    assert f"{sent.removeprefix(IPTC)} is not allowed here" in problem["detail"]
    assert ledger_count(client) == 0


def test_an_operator_may_allow_another_source_type(
    tmp_path: Path, pki: Pki, interop_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HALLMARK_ALLOWED_SOURCE_TYPES", "trainedAlgorithmicMedia, digitalArt")
    settings = Settings(data_dir=make_data_dir(tmp_path / "var", pki))
    assert settings.allowed_source_types == {IPTC + "trainedAlgorithmicMedia", IPTC + "digitalArt"}
    jpeg = (interop_dir / "no_manifest.jpg").read_bytes()
    with TestClient(create_app(settings)) as client:
        _, token = client.app.state.runtime.api_keys.create("t", {"sign"})  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {token}"}
        art = sign(client, headers, jpeg, digital_source_type="digitalArt")
        assert art.status_code == 200, art.text
        ai = verify(client, art.content)["ai"]
        assert (ai["digital_source_type"], ai["declared"]) == (IPTC + "digitalArt", False)
        # The setting replaces the default list: what it leaves out is refused.
        composite = sign(client, headers, jpeg, digital_source_type="compositeWithTrainedAlgorithmicMedia")
        assert composite.status_code == 422


@pytest.mark.parametrize("value", ["madeByMagic", "digitalArt,,nope", " , "])
def test_an_unknown_allowed_source_type_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HALLMARK_ALLOWED_SOURCE_TYPES", value)
    with pytest.raises(ValidationError, match="allowed_source_types"):
        Settings(data_dir=tmp_path)


def test_unknown_digital_source_type_is_refused_naming_the_field(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    data = (interop_dir / "no_manifest.jpg").read_bytes()
    response = sign(client, auth, data, digital_source_type="madeByMagic")
    assert response.status_code == 422
    assert "digital_source_type" in response.json()["detail"]
    assert ledger_count(client) == 0


@pytest.mark.parametrize("preference", ["allowed", "notAllowed", "constrained"])
def test_training_mining_preference_becomes_a_cawg_assertion(
    client: TestClient, auth: dict[str, str], interop_dir: Path, preference: str
) -> None:
    response = sign(client, auth, (interop_dir / "sample1.png").read_bytes(), training_mining=preference)
    assert response.status_code == 200, response.text
    data = assertion(client, "image/png", response.content, "cawg.training-mining")
    assert data is not None
    assert data["entries"]
    assert {entry["use"] for entry in data["entries"].values()} == {preference}
    assert verify(client, response.content)["outcome"] == "trusted"


def test_no_training_mining_assertion_without_a_preference(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    response = sign(client, auth, (interop_dir / "sample1.png").read_bytes())
    assert assertion(client, "image/png", response.content, "cawg.training-mining") is None


# --- sidecar output ---------------------------------------------------------------------------------


def test_sidecar_output_validates_the_untouched_original(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    original = (interop_dir / "no_manifest.jpg").read_bytes()
    response = sign(client, auth, original, params={"output": "sidecar"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/c2pa"
    assert response.headers["Hallmark-Output-SHA256"] == sha256(response.content)
    assert response.headers["Hallmark-Input-SHA256"] == sha256(original)
    sidecar = response.content
    assert sidecar
    assert not sidecar.startswith(b"\xff\xd8")

    with_sidecar = verify(client, original, sidecar)
    assert with_sidecar["outcome"] == "trusted"
    assert with_sidecar["manifest_id"] == response.headers["Hallmark-Manifest-Id"]
    assert verify(client, original)["outcome"] == "none"


def test_sidecar_for_a_file_that_already_has_credentials_is_trusted_or_refused_cleanly(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    original = (interop_dir / "C.jpg").read_bytes()
    response = sign(client, auth, original, params={"output": "sidecar"})
    if response.status_code == 200:
        report = verify(client, original, response.content)
        assert report["outcome"] == "trusted"
        assert report["ingredients"][0]["relationship"] == "parentOf"
        assert ledger_count(client) == 1
    else:
        assert 400 <= response.status_code < 500
        assert response.headers["content-type"] == "application/problem+json"
        assert ledger_count(client) == 0


def test_sidecar_does_not_validate_an_altered_file(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    original = (interop_dir / "no_manifest.jpg").read_bytes()
    sidecar = sign(client, auth, original, params={"output": "sidecar"}).content
    report = verify(client, flip_jpeg_scan_byte(original), sidecar)
    assert report["outcome"] == "invalid"
    assert report["integrity"] == "tampered"


def test_altered_signed_output_verifies_as_invalid(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    signed = sign(client, auth, (interop_dir / "no_manifest.jpg").read_bytes()).content
    report = verify(client, flip_jpeg_scan_byte(signed))
    assert report["outcome"] == "invalid"
    assert report["integrity"] == "tampered"
    assert "assertion.dataHash.mismatch" in {c["code"] for c in report["codes"]["failure"]}


# --- incoming credentials are kept as the parent ----------------------------------------------------


def test_foreign_credentials_become_the_parent_ingredient(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    foreign = (interop_dir / "C.jpg").read_bytes()
    foreign_id = verify(client, foreign)["manifest_id"]
    response = sign(client, auth, foreign)
    assert response.status_code == 200, response.text
    assert response.headers["Hallmark-Parent-Manifest-Id"] == foreign_id
    report = verify(client, response.content)
    assert report["outcome"] == "trusted"
    assert report["ingredients"][0]["relationship"] == "parentOf"
    assert report["ingredients"][0]["manifest_id"] == foreign_id


def test_resigning_our_own_output_keeps_the_first_manifest_as_parent(
    client: TestClient, auth: dict[str, str], interop_dir: Path
) -> None:
    first = sign(client, auth, (interop_dir / "sample1.png").read_bytes())
    second = sign(client, auth, first.content, digital_source_type="compositeWithTrainedAlgorithmicMedia")
    assert second.status_code == 200, second.text
    first_id = first.headers["Hallmark-Manifest-Id"]
    assert second.headers["Hallmark-Parent-Manifest-Id"] == first_id
    report = verify(client, second.content)
    assert report["manifest_id"] == second.headers["Hallmark-Manifest-Id"]
    assert report["ingredients"][0]["relationship"] == "parentOf"
    assert report["ingredients"][0]["manifest_id"] == first_id
    assert ledger_count(client) == 2


# --- authentication and scope -----------------------------------------------------------------------


def _admin_only(client: TestClient) -> str:
    _, token = client.app.state.runtime.api_keys.create("ops", {"admin"})  # type: ignore[attr-defined]
    return f"Bearer {token}"


def _revoked(client: TestClient) -> str:
    store = client.app.state.runtime.api_keys  # type: ignore[attr-defined]
    key, token = store.create("gone", {"sign"})
    store.revoke(key.id)
    return f"Bearer {token}"


AUTH_CASES = {
    "no-header": (None, 401),
    "basic-scheme": (lambda c: "Basic dXNlcjpwYXNz", 401),
    "bearer-without-token": (lambda c: "Bearer ", 401),
    "not-a-key": (lambda c: "Bearer not-a-hallmark-key", 401),
    "unknown-key": (lambda c: "Bearer hm_0123456789abcdef_" + "x" * 43, 401),
    "revoked-key": (_revoked, 401),
    "admin-scope-only": (_admin_only, 403),
}


@pytest.mark.parametrize("body_size", [0, 4 << 20], ids=["small-body", "large-body"])
@pytest.mark.parametrize("case", list(AUTH_CASES))
def test_sign_without_a_usable_sign_key_is_refused_before_signing(
    client: TestClient, interop_dir: Path, case: str, body_size: int
) -> None:
    make_header, status = AUTH_CASES[case]
    headers = {} if make_header is None else {"Authorization": make_header(client)}
    data = (interop_dir / "no_manifest.jpg").read_bytes() + b"\0" * body_size
    response = sign(client, headers, data)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert ledger_count(client) == 0


def test_api_key_is_required_behind_a_root_path(settings: Any, interop_dir: Path) -> None:
    """Behind a proxy prefix (uvicorn --root-path /api) the gate must still guard /v1/sign."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(settings), root_path="/api") as client:
        response = client.post(
            "/api/v1/sign",
            files={"file": ("a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())},
            data={"model_name": "m", "model_version": "1"},
        )
        assert response.status_code == 401
        assert client.app.state.runtime.ledger.count() == 0  # type: ignore[attr-defined]


def test_input_with_credentials_that_fail_validation_is_a_client_error(
    client: Any, auth: dict[str, str], interop_dir: Path
) -> None:
    """Broken incoming credentials cannot be kept as the parent ingredient: 422 naming why, never a 500."""
    response = client.post(
        "/v1/sign",
        headers=auth,
        files={"file": ("x.jpg", (interop_dir / "adobe-20220124-E-clm-CAICAI.jpg").read_bytes())},
        data={"model_name": "m", "model_version": "1"},
    )
    assert response.status_code == 422, response.text
    assert "credentials already in your file are damaged" in response.json()["detail"]
    assert response.json()["type"] == "/problems/damaged-credentials"
    assert client.app.state.runtime.ledger.count() == 0


# --- the download's name ----------------------------------------------------------------------------


def _jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 24), (20, 120, 200)).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("filename", "params", "disposition"),
    [
        ("photo.jpg", None, 'attachment; filename="photo.signed.jpg"'),
        ("../../photo.jpg", None, 'attachment; filename="photo.signed.jpg"'),
        ("photo.jpg", {"output": "sidecar"}, 'attachment; filename="photo.signed.c2pa"'),
        (
            "été.jpg",
            None,
            "attachment; filename=\"_t_.signed.jpg\"; filename*=UTF-8''%C3%A9t%C3%A9.signed.jpg",
        ),
    ],
    ids=["plain", "path", "sidecar", "non-ascii"],
)
def test_the_download_is_named_after_the_upload(
    client: TestClient,
    auth: dict[str, str],
    filename: str,
    params: dict[str, str] | None,
    disposition: str,
) -> None:
    response = sign(client, auth, _jpeg(), filename=filename, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Disposition"] == disposition
