"""Revocation (OCSP) with the real engine and a real responder on 127.0.0.1 (tests/ocsp.py).

OCSP is checked only when responders are allow-listed (`EngineConfig.ocsp_responders`, from
HALLMARK_OCSP_RESPONDERS); otherwise the report says `not_checked` and no request leaves the process.
The trust-matrix rows with timestamps use the local TSA (tests/tsa.py).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import signing
from signing.selftest import tiny_png
from tests.conftest import MemoryLedger
from tests.ocsp import Leaf, LocalOcsp
from tests.tsa import LocalTsa

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
        signing.PemKeySigner.from_files(signing.CredentialFiles(leaf.chain, leaf.key, "ocsp-leaf")), tsa_url
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


def test_settings_feed_the_engine_config(monkeypatch: pytest.MonkeyPatch, ocsp: LocalOcsp) -> None:
    from app.settings import Settings

    monkeypatch.setenv("HALLMARK_OCSP_RESPONDERS", ocsp.host)
    config = signing.EngineConfig(trust=profiles(ocsp), ocsp_responders=tuple(Settings().ocsp_responders))
    data = sign(ocsp.issue("from-settings"))
    report, asked = requests_during(ocsp, signing.Engine(config), data)
    assert asked == 1
    assert report.revocation is RevocationStatus.GOOD


# --- the trust matrix with timestamps -----------------------------------------------------------------


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
    ocsp.revoke(leaf.serial, datetime.now(UTC) + timedelta(seconds=1))
    time.sleep(1.5)  # the revocation is now in the past, but after the trusted signing time
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
    ocsp.revoke(leaf.serial, datetime.now(UTC) + timedelta(seconds=1))
    time.sleep(1.5)
    report = verify(engine(ocsp, (ocsp.host,)), data)  # the TSA is not trusted: no trusted signing time
    assert report.timestamp.status is signing.TimestampStatus.UNTRUSTED
    assert report.revocation is RevocationStatus.REVOKED
    assert report.outcome is Outcome.INVALID
