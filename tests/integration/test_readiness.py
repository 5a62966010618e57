"""/readyz: ready with the key id, a warning inside the expiry window, 503 once the certificate expired."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from app.files import write_private, write_public
from app.main import create_app
from app.settings import Settings
from signing.devpki import dev_name, issue_leaf, key_pem, new_key, pem
from tests.conftest import make_data_dir
from tests.pki import TestPki as Pki


def with_leaf(tmp_path: Path, pki: Pki, not_after: datetime) -> Path:
    """A data dir whose signing key has a leaf from the test intermediate ending at `not_after`."""
    data_dir = make_data_dir(tmp_path / "var", pki)
    ca = pki.root.parent
    inter = x509.load_pem_x509_certificate((ca / "intermediate-ca.pem").read_bytes())
    inter_key = serialization.load_pem_private_key((ca / "intermediate-ca.key.pem").read_bytes(), None)
    assert isinstance(inter_key, ec.EllipticCurvePrivateKey)
    key = new_key("es256")
    leaf = issue_leaf(
        dev_name("Short-lived signer"), key, issuer=inter, issuer_key=inter_key, not_after=not_after
    )
    write_public(data_dir / "keys" / "signing-chain.pem", pem(leaf) + pem(inter))
    write_private(data_dir / "keys" / "signing-key.pem", key_pem(key))
    return data_dir


def test_ready_names_the_key_and_has_no_warning(client: TestClient) -> None:
    body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["key_id"] == "default"
    assert body["warnings"] == []


def test_warns_within_the_expiry_window(tmp_path: Path, pki: Pki) -> None:
    data_dir = with_leaf(tmp_path, pki, datetime.now(UTC) + timedelta(days=10))
    with TestClient(create_app(Settings(data_dir=data_dir, cert_expiry_warning_days=30))) as client:
        response = client.get("/readyz")
        assert response.status_code == 200
        [warning] = response.json()["warnings"]
        assert "expires on" in warning
    with TestClient(create_app(Settings(data_dir=data_dir, cert_expiry_warning_days=5))) as client:
        assert client.get("/readyz").json()["warnings"] == []


@dataclass(frozen=True)
class FixedClock:
    at: datetime

    def now(self) -> datetime:
        return self.at


def test_not_ready_once_the_certificate_expired(tmp_path: Path, pki: Pki) -> None:
    not_after = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    data_dir = with_leaf(tmp_path, pki, not_after)
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        rt = client.app.state.runtime  # type: ignore[attr-defined]
        rt.clock = FixedClock(not_after - timedelta(seconds=1))
        assert client.get("/readyz").status_code == 200  # the control: the same app a second earlier
        rt.clock = FixedClock(not_after + timedelta(seconds=1))  # the certificate expired since start-up
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["problem"] == "the signing certificate has expired"
        assert client.get("/healthz").status_code == 200  # alive, just not able to sign
        _, token = client.app.state.runtime.api_keys.create("t", {"sign"})  # type: ignore[attr-defined]
        signed = client.post(
            "/v1/sign",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("a.png", _tiny_png())},
            data={"model_name": "m", "model_version": "1"},
        )
        assert signed.status_code == 503
        assert "expired" in signed.json()["detail"]
        assert "retry-after" in signed.headers


def _tiny_png() -> bytes:
    from signing.tiny_png import tiny_png

    return tiny_png()
