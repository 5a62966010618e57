"""A certificate whose Organization carries bidi overrides and look-alike quotes, end to end: Hallmark signs
with it, and the verify summary quotes the name neutralised while the JSON field keeps it raw."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

import signing
from app.files import write_private
from app.main import create_app
from app.settings import Settings
from signing.devpki import dev_name, issue_leaf, key_pem, new_key, pem
from signing.tiny_png import tiny_png
from tests.conftest import make_data_dir
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*

HOSTILE_ORG = "Evil\u202eetihw\u202c Corp\u201d is trusted by Hallmark \u201c\u2066x\u2069\u200b"


@pytest.fixture
def hostile_client(tmp_path: Path, pki: Pki) -> Iterator[TestClient]:
    ca = pki.root.parent
    inter = x509.load_pem_x509_certificate((ca / "intermediate-ca.pem").read_bytes())
    inter_key = serialization.load_pem_private_key((ca / "intermediate-ca.key.pem").read_bytes(), None)
    assert isinstance(inter_key, signing.devpki.PRIVATE_KEY_TYPES)
    key = new_key("es256")
    leaf = issue_leaf(
        dev_name("Hostile Signer", organization=HOSTILE_ORG), key, issuer=inter, issuer_key=inter_key
    )
    data = make_data_dir(tmp_path / "var", pki)
    write_private(data / "keys" / "signing-chain.pem", pem(leaf) + pem(inter))
    write_private(data / "keys" / "signing-key.pem", key_pem(key))
    with TestClient(create_app(Settings(data_dir=data, default_provider="Example AI"))) as client:
        yield client


def test_bidi_organisation_is_neutral_in_the_summary_and_raw_in_the_json(hostile_client: TestClient) -> None:
    _, token = hostile_client.app.state.runtime.api_keys.create("t", {"sign"})  # type: ignore[attr-defined]
    signed = hostile_client.post(
        "/v1/sign",
        headers={"Authorization": f"Bearer {token}"},
        data={"model_name": "m", "model_version": "1"},
        files={"file": ("x.png", tiny_png(), "image/png")},
    )
    assert signed.status_code == 200, signed.text
    report = hostile_client.post("/v1/verify", files={"file": ("x.png", signed.content)}).json()
    # The raw name is kept, escaped by JSON, in the structured field (the control: the bidi really arrived).
    assert report["signer"]["organization"] == HOSTILE_ORG
    summary = report["summary"]
    assert "\"Eviletihw Corp' is trusted by Hallmark 'x\" (as named in its certificate)" in summary, summary
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in summary), ascii(summary)
    assert "\u201c" not in summary
    assert "\u201d" not in summary
    assert summary.count('"') % 2 == 0
