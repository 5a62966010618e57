"""Revocation (OCSP) with the real engine and a real responder on 127.0.0.1 (tests/ocsp.py).

OCSP is checked only when responders are allow-listed (`EngineConfig.ocsp_responders`, from
HALLMARK_OCSP_RESPONDERS); otherwise the report says `not_checked` and no request leaves the process.
The trust-matrix rows with timestamps use the local TSA (tests/tsa.py).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import signing
from app.main import create_app
from app.pem_keys import CredentialFiles, load_pem_signer
from app.settings import Settings
from signing.tiny_png import tiny_png
from tests.conftest import MemoryLedger, make_data_dir
from tests.ocsp import Leaf, LocalOcsp
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*
from tests.tsa import LocalTsa
from tests.waiting import wait_until_past

RevocationStatus = signing.RevocationStatus
Outcome = signing.Outcome


@pytest.fixture(scope="module")
def ocsp() -> Iterator[LocalOcsp]:
    with LocalOcsp() as responder:
        yield responder


@pytest.fixture(scope="module")
def tsa() -> Iterator[LocalTsa]:
    with LocalTsa() as local:
        yield local


def profiles(ocsp: LocalOcsp, tsa: LocalTsa | None = None) -> tuple[signing.TrustProfile, ...]:
    out = [signing.profile_from_pem("ocsp-ca", ocsp.root_pem, source="local OCSP CA")]
    if tsa is not None:
        root = signing.profile_from_pem("local-tsa", tsa.root_pem, source="local TSA")
        out.append(
            signing.TrustProfile(
                "local-tsa",
                "",
                False,
                "local TSA",
                root.sha256,
                0,
                tsa_anchors_pem=root.anchors_pem,
                tsa_anchor_count=1,
            )
        )
    return tuple(out)


def engine(ocsp: LocalOcsp, responders: tuple[str, ...] = (), tsa: LocalTsa | None = None) -> signing.Engine:
    return signing.Engine(signing.EngineConfig(trust=profiles(ocsp, tsa), ocsp_responders=responders))


def sign(leaf: Leaf, tsa_url: str | None = None) -> bytes:
    # Signing never asks the responder: the fresh-sign context has no OCSP whatever the configuration.
    signer = signing.NativeSigner(
        load_pem_signer(CredentialFiles(leaf.chain, leaf.key, "ocsp-leaf")), tsa_url
    )
    ctx = signing.SignContext(
        signing.Engine(signing.EngineConfig()),
        signer,
        MemoryLedger(),
        signing.SystemClock(),
        signing.ClaimGenerator("Hallmark", "test"),
    )
    generation = signing.validate_generation(
        model_name="test-diffusion", model_version="2.1", provider="Example AI", digital_source_type=None
    )
    out = io.BytesIO()
    signing.sign_asset(ctx, io.BytesIO(tiny_png()), out, generation)
    return out.getvalue()


def verify(eng: signing.Engine, data: bytes) -> signing.VerificationReport:
    return signing.inspect_asset(eng, io.BytesIO(data))


def codes(report: signing.VerificationReport) -> set[str]:
    return {c.code for c in (*report.codes.success, *report.codes.informational, *report.codes.failure)}


def requests_during(
    ocsp: LocalOcsp, eng: signing.Engine, data: bytes
) -> tuple[signing.VerificationReport, int]:
    before = ocsp.requests
    report = verify(eng, data)
    return report, ocsp.requests - before


# --- the allow-list ------------------------------------------------------------------------------------


def test_good_certificate(ocsp: LocalOcsp) -> None:
    data = sign(ocsp.issue("good"))
    report, asked = requests_during(ocsp, engine(ocsp, (ocsp.host,)), data)
    assert asked == 1
    assert report.outcome is Outcome.TRUSTED
    assert report.revocation is RevocationStatus.GOOD
    assert "signingCredential.ocsp.notRevoked" in codes(report)


def test_revoked_certificate(ocsp: LocalOcsp) -> None:
    leaf = ocsp.issue("revoked")
    data = sign(leaf)
    ocsp.revoke(leaf.serial)
    report, asked = requests_during(ocsp, engine(ocsp, (ocsp.host,)), data)
    assert asked == 1
    assert report.revocation is RevocationStatus.REVOKED
    assert report.outcome is Outcome.INVALID  # what the engine says: a revoked credential fails validation
    assert report.integrity is signing.Integrity.INTACT  # the content did not change
    assert report.signer is not None
    assert report.signer.trusted is False
    assert "signingCredential.ocsp.revoked" in report.summary


def test_scheme_form_of_the_allow_list(ocsp: LocalOcsp) -> None:
    data = sign(ocsp.issue("scheme"))
    report, asked = requests_during(ocsp, engine(ocsp, (f"http://{ocsp.host}",)), data)
    assert asked == 1
    assert report.revocation is RevocationStatus.GOOD


@pytest.mark.parametrize(
    "responders",
    [
        ("127.0.0.1:1",),  # another port
        ("127.0.0.1",),  # no port: the engine matches host and port, so this does not allow :PORT
        ("ocsp.example.com",),
    ],
)
def test_responder_not_allowed_is_never_contacted(ocsp: LocalOcsp, responders: tuple[str, ...]) -> None:
    leaf = ocsp.issue("not-allowed")
    data = sign(leaf)
    ocsp.revoke(leaf.serial)  # would be `revoked` if the engine asked
    report, asked = requests_during(ocsp, engine(ocsp, responders), data)
    assert asked == 0
    assert report.revocation is RevocationStatus.NOT_CHECKED
    assert report.outcome is Outcome.TRUSTED
    assert "signingCredential.ocsp.inaccessible" in codes(report)


def test_no_setting_means_not_checked_and_no_request(ocsp: LocalOcsp) -> None:
    leaf = ocsp.issue("no-setting")
    data = sign(leaf)
    ocsp.revoke(leaf.serial)
    report, asked = requests_during(ocsp, engine(ocsp), data)
    assert asked == 0
    assert report.revocation is RevocationStatus.NOT_CHECKED
    assert report.outcome is Outcome.TRUSTED
    assert "signingCredential.ocsp.skipped" in codes(report)


@pytest.mark.parametrize(
    ("responders", "asked", "revocation"),
    [("from-env", 1, "good"), (None, 0, "not_checked")],
    ids=["HALLMARK_OCSP_RESPONDERS-set", "unset"],
)
def test_the_running_app_uses_the_responders_from_its_settings(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    pki: Pki,
    ocsp: LocalOcsp,
    responders: str | None,
    asked: int,
    revocation: str,
) -> None:
    """The engine the app built from Settings asks the responder iff HALLMARK_OCSP_RESPONDERS names it."""
    if responders is None:
        monkeypatch.delenv("HALLMARK_OCSP_RESPONDERS", raising=False)
    else:
        monkeypatch.setenv("HALLMARK_OCSP_RESPONDERS", ocsp.host)
    data_dir = make_data_dir(tmp_path / "var", pki)
    (data_dir / "trust" / "ocsp-ca.pem").write_bytes(ocsp.root_pem)
    data = sign(ocsp.issue(f"app-{asked}"))
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        before = ocsp.requests
        response = client.post("/v1/verify", files={"file": ("a.png", data)})
        assert ocsp.requests - before == asked
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["outcome"] == "trusted"
    assert report["signer"]["trust_profile"] == "ocsp-ca"
    assert report["revocation"] == revocation


# --- the trust matrix with timestamps -----------------------------------------------------------------


def revoke_after_signing(ocsp: LocalOcsp, leaf: Leaf) -> None:
    """Revoke `leaf` at the first whole second after its timestamp, then wait until that is in the past.

    OCSP and the TSA both speak whole seconds (the TSA's genTime is truncated), so the next whole second
    is strictly after the signing time. The case under test is a revocation already in the past when
    verifying, so the wall clock has to pass it: wait for exactly that (at most one second), not a guess."""
    now = datetime.now(UTC)
    revoked_at = now.replace(microsecond=0) + timedelta(seconds=1)
    ocsp.revoke(leaf.serial, revoked_at)
    wait_until_past(revoked_at)


def test_revoked_before_signing_with_trusted_timestamp(ocsp: LocalOcsp, tsa: LocalTsa) -> None:
    leaf = ocsp.issue("revoked-before")
    ocsp.revoke(leaf.serial, datetime.now(UTC) - timedelta(minutes=5))
    data = sign(leaf, tsa.url)
    report = verify(engine(ocsp, (ocsp.host,), tsa), data)
    assert report.timestamp.status is signing.TimestampStatus.TRUSTED
    assert report.timestamp.trust_profile == "local-tsa"
    assert report.revocation is RevocationStatus.REVOKED
    assert report.outcome is Outcome.INVALID


def test_revoked_after_signing_with_trusted_timestamp(ocsp: LocalOcsp, tsa: LocalTsa) -> None:
    leaf = ocsp.issue("revoked-after")
    data = sign(leaf, tsa.url)
    revoke_after_signing(ocsp, leaf)
    report, asked = requests_during(ocsp, engine(ocsp, (ocsp.host,), tsa), data)
    assert asked == 1
    assert report.timestamp.status is signing.TimestampStatus.TRUSTED
    assert report.outcome is Outcome.TRUSTED  # the signature predates the revocation
    # The engine accepts the signature and says nothing about OCSP in this case (neither notRevoked nor
    # revoked), so Hallmark cannot claim `good`: it reports what it knows.
    assert report.revocation is RevocationStatus.NOT_CHECKED
    assert not {c for c in codes(report) if c.startswith("signingCredential.ocsp.")}


def test_revoked_after_signing_without_trusted_timestamp(ocsp: LocalOcsp, tsa: LocalTsa) -> None:
    leaf = ocsp.issue("revoked-after-untrusted-ts")
    data = sign(leaf, tsa.url)
    revoke_after_signing(ocsp, leaf)
    report = verify(engine(ocsp, (ocsp.host,)), data)  # the TSA is not trusted: no trusted signing time
    assert report.timestamp.status is signing.TimestampStatus.UNTRUSTED
    assert report.revocation is RevocationStatus.REVOKED
    assert report.outcome is Outcome.INVALID
