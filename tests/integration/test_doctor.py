"""The key doctor against the real engine: for each credential, the static verdict ('the engine accepts
it') must equal what c2pa-rs does when it signs and verifies with it, and the test-sign callback wired to
the engine turns into the right engine-test finding.

Leaves are issued by the session test PKI's intermediate, so the `engine` fixture (trusting the test root)
validates a good one as Trusted. The engine test signs through the same path the service uses: a
`PemKeySigner` behind the engine's callback signer, then a verify with the configured trust.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

import signing
from app.pem_keys import CredentialFiles, load_pem_signer
from signing.devpki import key_pem, new_key, pem
from signing.doctor import DoctorReport, diagnose, render
from signing.keys import PrivateKey
from signing.oids import C2PA_AL1, C2PA_CLAIM_SIGNING_EKU
from tests.unit.test_doctor import _DROP, Ca, der_oid, ku, make_leaf

if TYPE_CHECKING:  # imported for annotations only: pytest would try to collect a `TestPki` class
    from tests.pki import TestPki

NOW = datetime.now(UTC)
EMAIL = ExtendedKeyUsageOID.EMAIL_PROTECTION


@dataclass(frozen=True)
class Credential:
    chain: bytes
    key: PrivateKey
    algorithm: str
    key_pem: bytes | None = None  # as stored on disk when it differs from PKCS#8 (the key-format cases)


def session_ca(pki: TestPki) -> Ca:
    """The test PKI's intermediate (its key is kept in the CA directory) and root."""
    ca_dir = pki.root.parent
    inter_key = serialization.load_pem_private_key((ca_dir / "intermediate-ca.key.pem").read_bytes(), None)
    assert isinstance(inter_key, ec.EllipticCurvePrivateKey)
    return Ca(
        root=x509.load_pem_x509_certificate(pki.root.read_bytes()),
        root_key=inter_key,  # the root's key is discarded by design (never used by these tests)
        inter=x509.load_pem_x509_certificate((ca_dir / "intermediate-ca.pem").read_bytes()),
        inter_key=inter_key,
    )


def dev(ca: Ca, key: PrivateKey, **changes: object) -> x509.Certificate:
    """A development-style leaf (what the engine accepts), with `changes`."""
    settings: dict[str, object] = {
        "days": 825,
        "key_usage": (ku("digital_signature"), True),
        "eku": (x509.ExtendedKeyUsage([EMAIL]), False),
        "policy": _DROP,
        "info_access": _DROP,
        "level": _DROP,
        "cpl": _DROP,
    }
    settings.update(changes)
    return make_leaf(ca, key, **settings)  # type: ignore[arg-type]


def _sec1(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


Build = Callable[[Ca, PrivateKey], Credential]
_rsa_1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)

# name -> (does the engine accept it?, how to build it). The expectation is asserted against the engine too.
CASES: dict[str, tuple[bool, Build]] = {
    "good development leaf": (True, lambda ca, k: Credential(pem(dev(ca, k)) + pem(ca.inter), k, "es256")),
    "perfect C2PA profile leaf": (
        True,
        lambda ca, k: Credential(pem(make_leaf(ca, k)) + pem(ca.inter), k, "es256"),
    ),
    "expiring in 10 days": (
        True,
        lambda ca, k: Credential(
            pem(dev(ca, k, not_after=NOW + timedelta(days=10))) + pem(ca.inter), k, "es256"
        ),
    ),
    "key usage nonRepudiation only": (
        True,
        lambda ca, k: Credential(
            pem(dev(ca, k, key_usage=(ku("content_commitment"), True))) + pem(ca.inter), k, "es256"
        ),
    ),
    "EKU serverAuth + emailProtection": (
        True,
        lambda ca, k: Credential(
            pem(dev(ca, k, eku=(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, EMAIL]), False)))
            + pem(ca.inter),
            k,
            "es256",
        ),
    ),
    "leaf without its intermediate": (True, lambda ca, k: Credential(pem(dev(ca, k)), k, "es256")),
    "chain out of order": (
        True,
        lambda ca, k: Credential(pem(dev(ca, k)) + pem(ca.root) + pem(ca.inter), k, "es256"),
    ),
    "EKU serverAuth only": (
        False,
        lambda ca, k: Credential(
            pem(dev(ca, k, eku=(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)))
            + pem(ca.inter),
            k,
            "es256",
        ),
    ),
    "EKU c2pa claim signing only (no trust_config)": (
        False,
        lambda ca, k: Credential(
            pem(dev(ca, k, eku=(x509.ExtendedKeyUsage([C2PA_CLAIM_SIGNING_EKU]), False))) + pem(ca.inter),
            k,
            "es256",
        ),
    ),
    "no EKU": (False, lambda ca, k: Credential(pem(dev(ca, k, eku=_DROP)) + pem(ca.inter), k, "es256")),
    "CA=true leaf": (
        False,
        lambda ca, k: Credential(
            pem(dev(ca, k, basic=(x509.BasicConstraints(ca=True, path_length=None), True))) + pem(ca.inter),
            k,
            "es256",
        ),
    ),
    "no AKI": (False, lambda ca, k: Credential(pem(dev(ca, k, aki=False)) + pem(ca.inter), k, "es256")),
    "keyCertSign usage": (
        False,
        lambda ca, k: Credential(
            pem(dev(ca, k, key_usage=(ku("digital_signature", "key_cert_sign"), True))) + pem(ca.inter),
            k,
            "es256",
        ),
    ),
    "no key usage": (
        False,
        lambda ca, k: Credential(pem(dev(ca, k, key_usage=_DROP)) + pem(ca.inter), k, "es256"),
    ),
    "expired": (
        False,
        lambda ca, k: Credential(
            pem(dev(ca, k, not_before=NOW - timedelta(days=100), not_after=NOW - timedelta(days=1)))
            + pem(ca.inter),
            k,
            "es256",
        ),
    ),
    "not yet valid": (
        False,
        lambda ca, k: Credential(
            pem(dev(ca, k, not_before=NOW + timedelta(days=2), not_after=NOW + timedelta(days=100)))
            + pem(ca.inter),
            k,
            "es256",
        ),
    ),
    "reversed chain": (False, lambda ca, k: Credential(pem(ca.inter) + pem(dev(ca, k)), k, "es256")),
    "RSA-1024": (
        False,
        lambda ca, k: Credential(pem(dev(ca, _rsa_1024)) + pem(ca.inter), _rsa_1024, "ps256"),
    ),
    "mismatched key": (
        False,
        lambda ca, k: Credential(pem(dev(ca, new_key("es256"))) + pem(ca.inter), k, "es256"),
    ),
    "P-256 key with es384": (False, lambda ca, k: Credential(pem(dev(ca, k)) + pem(ca.inter), k, "es384")),
    "critical assurance-level extension": (
        False,
        lambda ca, k: Credential(
            pem(dev(ca, k, level=(der_oid(C2PA_AL1), True))) + pem(ca.inter), k, "es256"
        ),
    ),
    "signed with SHA-224": (
        False,
        lambda ca, k: Credential(pem(dev(ca, k, hash_algorithm=hashes.SHA224())) + pem(ca.inter), k, "es256"),
    ),
}


@pytest.fixture(scope="module")
def ca(pki: TestPki) -> Ca:
    return session_ca(pki)


@pytest.fixture(scope="module")
def leaf_key() -> PrivateKey:
    return new_key("es256")


def engine_test(engine: signing.Engine, cred: Credential) -> Callable[[], str]:
    """Sign + verify through the real engine with the configured trust, as the service would."""

    def run() -> str:
        key = signing.PemKeySigner(cred.key, cred.chain, "doctor-test", cred.algorithm)
        return signing.self_test(engine, signing.NativeSigner(key), signing.ClaimGenerator("Hallmark", "t"))

    return run


def engine_verdict(test: Callable[[], str]) -> bool:
    try:
        test()
    except signing.HallmarkError:
        return False
    return True


def static(cred: Credential) -> DoctorReport:
    return diagnose(cred.chain, cred.key_pem or key_pem(cred.key), now=NOW, algorithm=cred.algorithm)


@pytest.mark.parametrize("case", list(CASES))
def test_the_static_verdict_equals_what_the_engine_does(
    case: str, ca: Ca, leaf_key: PrivateKey, engine: signing.Engine
) -> None:
    expected, build = CASES[case]
    cred = build(ca, leaf_key)
    test = engine_test(engine, cred)
    assert engine_verdict(test) is expected, f"the engine changed its mind about: {case}"
    report = static(cred)
    assert report.engine_accepts is expected, render(report)

    full = diagnose(cred.chain, key_pem(cred.key), now=NOW, algorithm=cred.algorithm, test_sign=test)
    assert full.engine_accepts is expected, render(full)
    outcome = [f for f in full.engine_findings if f.check == "engine-test"]
    if expected:
        assert outcome[0].severity in ("ok", "warning")
        assert full.test_sign in ("Trusted", "Valid")
    else:
        assert outcome[0].severity == "error"
        assert full.test_sign is None
        # No disagreement: the engine did not sign what the static checks refused.
        assert not any(f.check == "engine-test" and f.severity == "warning" for f in full.engine_findings)


def test_the_good_credential_tests_trusted(pki: TestPki, engine: signing.Engine) -> None:
    key = load_pem_signer(CredentialFiles(pki.chain, pki.key, "test-key"))

    def test() -> str:
        return signing.self_test(engine, signing.NativeSigner(key), signing.ClaimGenerator("Hallmark", "t"))

    report = diagnose(pki.chain.read_bytes(), pki.key.read_bytes(), now=NOW, test_sign=test)
    assert report.engine_accepts, render(report)
    assert report.test_sign == "Trusted"
    assert [f.severity for f in report.engine_findings if f.check == "engine-test"] == ["ok"]
    assert report.trust_list_issuable is False  # the development leaf: what the profile misses is named


def test_a_refused_eku_is_an_engine_test_error(ca: Ca, leaf_key: PrivateKey, engine: signing.Engine) -> None:
    _, build = CASES["EKU serverAuth only"]
    cred = build(ca, leaf_key)
    report = diagnose(cred.chain, key_pem(cred.key), now=NOW, test_sign=engine_test(engine, cred))
    assert report.engine_accepts is False
    by_severity = {(f.check, f.severity) for f in report.engine_findings}
    assert ("eku", "error") in by_severity
    assert ("engine-test", "error") in by_severity
    engine_said = next(f.message for f in report.engine_findings if f.check == "engine-test")
    assert "the certificate is invalid" in engine_said  # the engine's vague words; the eku finding names it


def test_a_chain_the_engine_signs_but_does_not_trust_is_valid_not_trusted(
    ca: Ca, leaf_key: PrivateKey, engine: signing.Engine
) -> None:
    _, build = CASES["chain out of order"]
    cred = build(ca, leaf_key)
    report = diagnose(cred.chain, key_pem(cred.key), now=NOW, test_sign=engine_test(engine, cred))
    assert report.engine_accepts
    assert report.test_sign == "Valid"
    assert {f.check for f in report.engine_findings if f.severity == "warning"} == {
        "chain-order",
        "engine-test",
    }


def test_an_old_key_format_is_refused_by_hallmark_loader(
    ca: Ca, leaf_key: PrivateKey, engine: signing.Engine, tmp_path: Path
) -> None:
    """The engine's callback signer never sees the key file: PKCS#8 is enforced by Hallmark's key loader
    (and by the engine's own `Signer.from_info`). The doctor's verdict follows the loader."""
    chain_path, key_path = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain_path.write_bytes(pem(dev(ca, leaf_key)) + pem(ca.inter))
    key_path.write_bytes(_sec1(leaf_key))
    key_path.chmod(0o600)

    def test() -> str:
        key = load_pem_signer(CredentialFiles(chain_path, key_path, "sec1"))
        return signing.self_test(engine, signing.NativeSigner(key), signing.ClaimGenerator("Hallmark", "t"))

    assert engine_verdict(test) is False
    report = diagnose(chain_path.read_bytes(), key_path.read_bytes(), now=NOW, test_sign=test)
    assert report.engine_accepts is False
    assert {f.check for f in report.engine_findings if f.severity == "error"} == {"key-format", "engine-test"}


def test_enough_broken_credentials_are_compared() -> None:
    refused = [name for name, (accepted, _) in CASES.items() if not accepted]
    assert len(refused) >= 5
