"""The C2PA Soft Binding Resolution API over HTTP, on the real engine and watermark: a signed photo is found
by its watermark id, its ISCC and a stripped re-encoded copy; its stored manifest store verifies the signed
file as a sidecar; a row altered in the database is offered by no route; public access is a setting."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import iscc_core
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data

import signing
from app.settings import Settings
from signing import WATERMARK_ALGORITHM
from tests.media_samples import PDF_PAGES, pdf_with_text

API = "/sbr/v1"


def jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def photo(name: str) -> Image.Image:
    """A natural photo that ships inside scikit-image (astronaut: 512 x 512)."""
    return Image.fromarray(getattr(data, name)())


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Signed:
    content: bytes
    manifest_id: str
    watermark_id: str
    iscc: str


def sign_photo(client: TestClient, auth: dict[str, str]) -> Signed:
    original = jpeg(photo("astronaut"), 90)  # 512 x 512
    response = client.post(
        "/v1/sign",
        headers=auth,
        data={"model_name": "test-diffusion", "model_version": "2.1"},
        files={"file": ("astronaut.jpg", original)},
    )
    assert response.status_code == 200, response.text
    watermark = response.headers["Hallmark-Watermark"]
    assert watermark.startswith("embedded; id=")
    manifest_id = response.headers["Hallmark-Manifest-Id"]
    report = client.post(
        "/v1/verify", params={"detail": "full"}, files={"file": ("a.jpg", response.content)}
    ).json()
    assertions = report["manifest_store"]["manifests"][manifest_id]["assertions"]
    (binding,) = [a["data"] for a in assertions if a["label"] == "c2pa.soft-binding"]
    return Signed(
        response.content, manifest_id, watermark.removeprefix("embedded; id="), binding["blocks"][0]["value"]
    )


@pytest.fixture
def signed(client: TestClient, auth: dict[str, str]) -> Signed:
    return sign_photo(client, auth)


def stripped_copy(content: bytes) -> bytes:
    """What a platform does on upload: decode, drop every metadata segment, re-encode at JPEG 75."""
    return jpeg(Image.open(io.BytesIO(content)), 75)


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [m["manifestId"] for m in response.json()["matches"]]


def by_binding(client: TestClient, alg: str, value: str, headers: dict[str, str] | None = None) -> Any:
    return client.get(f"{API}/matches/byBinding", params={"alg": alg, "value": value}, headers=headers)


def by_content(client: TestClient, content: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        f"{API}/matches/byContent", content=content, headers={"Content-Type": "image/jpeg", **(headers or {})}
    )


def test_supported_algorithms_are_the_iscc_and_the_watermark(client: TestClient) -> None:
    response = client.get(f"{API}/services/supportedAlgorithms")
    assert response.json() == {
        "watermarks": [{"alg": WATERMARK_ALGORITHM}],
        "fingerprints": [{"alg": "io.iscc.v0"}],
    }


def test_discovery_document_points_at_the_api(client: TestClient) -> None:
    discovery = client.get("/.well-known/c2pa-soft-binding-resolution").json()
    assert discovery == {
        "apiEndpoint": "/sbr/v1",
        "c2paSpecificationVersion": "2.4.0",
        "capabilitiesEndpoint": "/sbr/v1/services/capabilities",
        "statusEndpoint": "/sbr/v1/services/status",
    }
    capabilities = client.get(discovery["capabilitiesEndpoint"]).json()
    assert capabilities == {"c2paSpecificationVersion": "2.4.0", "supportedCapabilities": ["queryByContent"]}
    assert client.get(discovery["statusEndpoint"]).json()["status"] == "ok"


def test_watermark_id_resolves_to_its_manifest(client: TestClient, signed: Signed) -> None:
    as_bytes = by_binding(client, WATERMARK_ALGORITHM, b64(bytes.fromhex(signed.watermark_id)))
    assert ids(as_bytes) == [signed.manifest_id]
    assert as_bytes.json()["matches"][0]["similarityScore"] == 100
    as_text = by_binding(client, WATERMARK_ALGORITHM, b64(signed.watermark_id.encode()))
    assert ids(as_text) == [signed.manifest_id]
    unknown = f"{(int(signed.watermark_id, 16) ^ 1):012x}"
    assert ids(by_binding(client, WATERMARK_ALGORITHM, b64(bytes.fromhex(unknown)))) == []


def test_iscc_resolves_to_its_manifest_by_get_and_post(client: TestClient, signed: Signed) -> None:
    value = b64(signed.iscc.encode())
    assert ids(by_binding(client, "io.iscc.v0", value)) == [signed.manifest_id]
    posted = client.post(f"{API}/matches/byBinding", json={"alg": "io.iscc.v0", "value": value})
    assert ids(posted) == [signed.manifest_id]
    assert posted.json()["matches"][0]["similarityScore"] == 100
    unrelated = signing.image_fingerprints(photo("coffee")).iscc
    assert ids(by_binding(client, "io.iscc.v0", b64(unrelated.encode()))) == []


def test_iscc_as_binary_unit_resolves_too(client: TestClient, signed: Signed) -> None:
    unit = iscc_core.decode_base32(signed.iscc.removeprefix("ISCC:"))
    assert ids(by_binding(client, "io.iscc.v0", b64(unit))) == [signed.manifest_id]


@pytest.mark.parametrize(
    ("alg", "value", "code"),
    [
        ("com.example.unknown", "AAAA", "unsupported-algorithm"),
        ("io.iscc.v0", "not base64!", "invalid-query"),
        ("io.iscc.v0", b64(b"ISCC:NOTACODE"), "invalid-query"),
        (WATERMARK_ALGORITHM, b64(b"\x01\x02\x03"), "invalid-query"),
    ],
)
def test_bad_queries_are_400_problems(client: TestClient, alg: str, value: str, code: str) -> None:
    response = by_binding(client, alg, value)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"/problems/{code}"


def test_malformed_parameters_are_400_not_422(client: TestClient) -> None:
    missing = client.get(f"{API}/matches/byBinding", params={"alg": "io.iscc.v0"})
    assert missing.status_code == 400
    zero = client.get(
        f"{API}/matches/byBinding", params={"alg": "io.iscc.v0", "value": "AAAA", "maxResults": 0}
    )
    assert zero.status_code == 400
    not_json = client.post(
        f"{API}/matches/byBinding", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    # The rest of the service keeps its 422 for a malformed request.
    assert client.post("/v1/verify").status_code == 422


def test_stripped_reencoded_copy_is_found_by_content(client: TestClient, signed: Signed) -> None:
    copy = stripped_copy(signed.content)
    assert client.post("/v1/verify", files={"file": ("c.jpg", copy)}).json()["outcome"] == "none"
    response = by_content(client, copy)
    assert ids(response) == [signed.manifest_id]
    assert response.json()["matches"][0]["similarityScore"] == 100  # the watermark, confirmed
    only_iscc = client.post(
        f"{API}/matches/byContent",
        params={"alg": "io.iscc.v0"},
        content=copy,
        headers={"Content-Type": "image/jpeg"},
    )
    assert ids(only_iscc) == [signed.manifest_id]


def test_unrelated_image_finds_nothing(client: TestClient, signed: Signed) -> None:
    unrelated = jpeg(photo("coffee"), 90)
    assert ids(by_content(client, unrelated)) == []
    assert ids(by_content(client, stripped_copy(signed.content))) == [signed.manifest_id]  # control


def test_a_signed_pdf_is_served_by_id_and_not_searched_by_content(
    client: TestClient, auth: dict[str, str]
) -> None:
    pdf = pdf_with_text(PDF_PAGES)
    response = client.post(
        "/v1/sign",
        headers=auth,
        data={"model_name": "test-diffusion", "model_version": "2.1"},
        files={"file": ("a.pdf", pdf)},
    )
    assert response.status_code == 200, response.text
    fetched = client.get(f"{API}/manifests/{response.headers['Hallmark-Manifest-Id']}")
    assert fetched.status_code == 200  # its stored store re-verifies without the PDF at hand
    assert by_content(client, response.content).status_code == 415  # soft bindings are for images only


def test_empty_or_undecodable_image_is_400(client: TestClient) -> None:
    truncated = jpeg(photo("astronaut"), 90)[:600]
    for body in (b"", truncated):
        response = by_content(client, body)
        assert response.status_code == 400
        assert response.json()["type"] == "/problems/invalid-query"
    assert by_content(client, jpeg(photo("astronaut"), 90)).status_code == 200  # control: the whole file


def test_stored_manifest_store_verifies_the_signed_file(client: TestClient, signed: Signed) -> None:
    response = client.get(f"{API}/manifests/{signed.manifest_id}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/c2pa"
    verified = client.post(
        "/v1/verify",
        files={"file": ("a.jpg", stripped_copy(signed.content)), "manifest": ("m.c2pa", response.content)},
    ).json()
    assert verified["manifest_id"] == signed.manifest_id  # the engine reads the store as that manifest
    as_sidecar = client.post(
        "/v1/verify", files={"file": ("a.jpg", signed.content), "manifest": ("m.c2pa", response.content)}
    ).json()
    assert as_sidecar["manifest_id"] == signed.manifest_id
    assert as_sidecar["integrity"] == "intact"
    assert verified["integrity"] != "intact"  # control: the re-encoded copy does not match its hard binding
    active = client.get(f"{API}/manifests/{signed.manifest_id}", params={"returnActiveManifest": "true"})
    assert active.content == response.content  # one manifest in the store: it is the active one


def test_unknown_manifest_is_404(client: TestClient) -> None:
    response = client.get(f"{API}/manifests/urn:c2pa:00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json()["type"] == "/problems/manifest-not-found"


def test_row_altered_in_the_database_is_offered_by_no_route(client: TestClient, signed: Signed) -> None:
    copy = stripped_copy(signed.content)
    watermark = b64(bytes.fromhex(signed.watermark_id))
    assert ids(by_binding(client, WATERMARK_ALGORITHM, watermark)) == [signed.manifest_id]  # control
    db: sa.Engine = client.app.state.runtime.db  # type: ignore[attr-defined]
    with db.begin() as conn:
        conn.execute(
            sa.text("UPDATE manifests SET key_id = 'forged' WHERE manifest_id = :id"),
            {"id": signed.manifest_id},
        )
    assert ids(by_binding(client, WATERMARK_ALGORITHM, watermark)) == []
    assert ids(by_binding(client, "io.iscc.v0", b64(signed.iscc.encode()))) == []
    assert ids(by_content(client, copy)) == []
    assert client.get(f"{API}/manifests/{signed.manifest_id}").status_code == 404


@pytest.fixture
def private_client(settings: Settings) -> Iterator[TestClient]:
    from app.main import create_app

    with TestClient(create_app(settings.model_copy(update={"sbr_public": False}))) as test_client:
        yield test_client


def test_private_api_needs_a_key_with_the_resolve_scope(private_client: TestClient) -> None:
    keys = private_client.app.state.runtime.api_keys  # type: ignore[attr-defined]
    _, sign_token = keys.create("signer", {"sign"})
    _, resolve_token = keys.create("resolver", {"resolve"})
    signed = sign_photo(private_client, {"Authorization": f"Bearer {sign_token}"})
    value = b64(signed.iscc.encode())
    assert by_binding(private_client, "io.iscc.v0", value).status_code == 401
    wrong = by_binding(private_client, "io.iscc.v0", value, {"Authorization": f"Bearer {sign_token}"})
    assert wrong.status_code == 403
    right = by_binding(private_client, "io.iscc.v0", value, {"Authorization": f"Bearer {resolve_token}"})
    assert ids(right) == [signed.manifest_id]
    manifest = f"{API}/manifests/{signed.manifest_id}"
    assert private_client.get(manifest).status_code == 401
    assert (
        private_client.get(manifest, headers={"Authorization": f"Bearer {resolve_token}"}).status_code == 200
    )
    assert by_content(private_client, stripped_copy(signed.content)).status_code == 401
    # The service routes and the discovery document stay public.
    assert private_client.get(f"{API}/services/supportedAlgorithms").status_code == 200
    assert private_client.get("/.well-known/c2pa-soft-binding-resolution").status_code == 200


def test_public_api_shares_the_public_rate_limit(settings: Settings) -> None:
    from app.main import create_app

    frozen = settings.model_copy(update={"public_rate_limit": 3})
    with TestClient(create_app(frozen, clock=lambda: 5000.0)) as client:
        statuses = [client.get(f"{API}/services/supportedAlgorithms").status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        assert client.get("/.well-known/c2pa-soft-binding-resolution").status_code == 429
        assert client.post("/v1/verify").status_code == 429  # one bucket with verify
    private = frozen.model_copy(update={"sbr_public": False})
    with TestClient(create_app(private, clock=lambda: 5000.0)) as client:
        statuses = [client.get(f"{API}/services/supportedAlgorithms").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 200]  # with keys required, the keys limit it instead


def test_active_manifest_only_drops_the_parent_manifest(
    client: TestClient, auth: dict[str, str], signed: Signed
) -> None:
    resigned = client.post(
        "/v1/sign",
        headers=auth,
        data={"model_name": "test-diffusion", "model_version": "2.2"},
        files={"file": ("again.jpg", signed.content)},
    )
    assert resigned.status_code == 200, resigned.text
    manifest_id = resigned.headers["Hallmark-Manifest-Id"]
    url = f"{API}/manifests/{manifest_id}"
    whole = client.get(url)
    active = client.get(url, params={"returnActiveManifest": "true"})
    assert whole.status_code == active.status_code == 200
    assert len(active.content) < len(whole.content)

    def manifests(store: bytes) -> list[str]:
        report = client.post(
            "/v1/verify",
            params={"detail": "full"},
            files={"file": ("a.jpg", resigned.content), "manifest": ("m.c2pa", store)},
        ).json()
        assert report["manifest_id"] == manifest_id
        return sorted(report["manifest_store"]["manifests"])

    assert manifests(whole.content) == sorted([manifest_id, signed.manifest_id])
    assert manifests(active.content) == [manifest_id]
