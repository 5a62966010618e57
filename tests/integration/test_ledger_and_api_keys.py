"""The audit ledger and API keys behind the HTTP API (real SQLite file), and the operations endpoints."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.pki import TestPki as Pki

FORM = {"model_name": "test-diffusion", "model_version": "2.1"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def runtime(client: TestClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]


def sign(client: TestClient, token: str, data: bytes, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    return client.post("/v1/sign", headers=headers, data=FORM, files={"file": ("in", data)}, **kwargs)


def key_id_of(token: str) -> str:
    prefix, key_id, _secret = token.split("_", 2)
    assert prefix == "hm"
    return key_id


# --- the ledger -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mime", "output"),
    [
        ("no_manifest.jpg", "image/jpeg", "embedded"),
        ("sample1.wav", "audio/wav", "embedded"),
        ("sample1.png", "image/png", "sidecar"),
    ],
)
def test_each_sign_appends_exactly_one_ledger_row(
    client: TestClient, api_key: str, pki: Pki, interop_dir: Path, name: str, mime: str, output: str
) -> None:
    original = (interop_dir / name).read_bytes()
    response = sign(client, api_key, original, params={"output": output})
    assert response.status_code == 200, response.text

    ledger = runtime(client).ledger
    assert ledger.count() == 1
    (row,) = ledger.list()
    leaf = x509.load_pem_x509_certificates(pki.chain.read_bytes())[0]
    assert row.api_key_id == key_id_of(api_key)
    assert row.manifest_id == response.headers["Hallmark-Manifest-Id"]
    assert (row.model_name, row.model_version, row.provider) == ("test-diffusion", "2.1", "Example AI")
    assert row.digital_source_type.endswith("/trainedAlgorithmicMedia")
    assert row.media_type == mime
    assert row.output_mode == output
    assert row.input_sha256 == sha256(original)
    assert row.output_sha256 == sha256(response.content)
    assert row.parent_manifest_id is None
    assert row.key_id == "default"
    assert row.certificate_sha256 == sha256(leaf.public_bytes(Encoding.DER))


def test_ledger_records_the_parent_and_one_row_per_sign(
    client: TestClient, api_key: str, interop_dir: Path
) -> None:
    first = sign(client, api_key, (interop_dir / "C.jpg").read_bytes())
    second = sign(client, api_key, first.content)
    ledger = runtime(client).ledger
    assert ledger.count() == 2
    rows = {row.manifest_id: row for row in ledger.list()}
    assert (
        rows[first.headers["Hallmark-Manifest-Id"]].parent_manifest_id
        == (first.headers["Hallmark-Parent-Manifest-Id"])
    )
    assert (
        rows[second.headers["Hallmark-Manifest-Id"]].parent_manifest_id
        == (first.headers["Hallmark-Manifest-Id"])
    )


@pytest.mark.parametrize(
    "break_ledger",
    ["DROP TABLE signatures", "ALTER TABLE signatures RENAME TO signatures_moved"],
    ids=["dropped", "renamed"],
)
def test_sign_whose_ledger_write_fails_withholds_the_file(
    client: TestClient, api_key: str, interop_dir: Path, break_ledger: str
) -> None:
    with runtime(client).db.begin() as conn:
        conn.execute(sa.text(break_ledger))
    response = sign(client, api_key, (interop_dir / "no_manifest.jpg").read_bytes())
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    assert "Hallmark-Manifest-Id" not in response.headers
    problem = response.json()
    assert problem["type"] == "/problems/ledger-unavailable"
    assert "withheld" in problem["detail"]
    assert b"\xff\xd8\xff" not in response.content


# --- API keys ---------------------------------------------------------------------------------------


def test_api_keys_are_stored_hashed(client: TestClient, settings: Settings, api_key: str) -> None:
    secret = api_key.split("_", 2)[2]
    with runtime(client).db.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM api_keys")).all()
    stored = repr(rows)
    assert key_id_of(api_key) in stored
    assert secret not in stored
    assert api_key not in stored
    assert sha256(secret.encode()) in stored
    for path in settings.data_dir.glob("hallmark.db*"):  # the database file and its WAL
        assert secret.encode() not in path.read_bytes(), path


def test_revoking_a_key_takes_effect_on_the_next_request(
    client: TestClient, api_key: str, interop_dir: Path
) -> None:
    jpeg = (interop_dir / "no_manifest.jpg").read_bytes()
    assert sign(client, api_key, jpeg).status_code == 200
    assert runtime(client).api_keys.revoke(key_id_of(api_key)) is True
    response = sign(client, api_key, jpeg)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert runtime(client).ledger.count() == 1
    assert runtime(client).api_keys.revoke(key_id_of(api_key)) is False  # already revoked


JUNK_TOKENS = {
    "empty": "",
    "prefix-only": "hm_",
    "empty-parts": "hm__",
    "three-underscores": "hm___",
    "no-prefix": "0123456789abcdef_secret",
    "wrong-prefix": "xx_0123456789abcdef_secret",
    "very-long": "hm_" + "a" * 100_000,
    "non-ascii": "hm_ключ_秘密🔑",
    "nul-bytes": "hm_\x00\x00_\x00",
    "sql-ish": "hm_' OR '1'='1_x",
    "whitespace": " \t\n",
}


@pytest.mark.parametrize("token", list(JUNK_TOKENS.values()), ids=list(JUNK_TOKENS))
def test_authenticate_never_raises_on_junk(client: TestClient, token: str) -> None:
    assert runtime(client).api_keys.authenticate(token) is None


def test_authenticate_needs_the_exact_secret(client: TestClient, api_key: str) -> None:
    store = runtime(client).api_keys
    assert store.authenticate(api_key) is not None
    for wrong in (api_key + "x", api_key[:-1], api_key.upper(), api_key.replace("hm_", "HM_", 1)):
        assert store.authenticate(wrong) is None, wrong
    _, other = store.create("other", {"sign"})
    swapped = f"hm_{key_id_of(api_key)}_{other.split('_', 2)[2]}"
    assert store.authenticate(swapped) is None


@pytest.mark.parametrize(
    "header",
    [b"Bearer \xc3\xa9\xc3\xa9", b"Bearer hm_\xff_\xfe", b"Bearer " + b"hm_" + b"z" * 8000],
    ids=["utf8", "invalid-utf8", "8kb"],
)
def test_junk_bearer_header_is_401_not_500(client: TestClient, interop_dir: Path, header: bytes) -> None:
    response = client.post(
        "/v1/sign",
        headers={b"Authorization": header},
        data=FORM,
        files={"file": ("a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())},
    )
    assert response.status_code == 401
    assert runtime(client).ledger.count() == 0


# --- operations -------------------------------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_names_the_signing_key(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["key_id"] == "default"
    assert body["certificate_not_after"]


def signed_total(client: TestClient) -> float:
    text = client.get("/metrics").text
    pattern = r'^hallmark_signed_total\{media_type="image/jpeg",output="embedded"\} (\S+)$'
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def test_metrics_count_signatures(client: TestClient, api_key: str, interop_dir: Path) -> None:
    before = signed_total(client)
    assert sign(client, api_key, (interop_dir / "no_manifest.jpg").read_bytes()).status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "hallmark_signed_total" in response.text
    assert signed_total(client) == before + 1
