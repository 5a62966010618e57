"""The key doctor, static checks only: each broken property of a credential yields exactly its finding, the
two verdicts are right for the development leaf and for a leaf shaped like the C2PA policy's profile, and no
input makes it raise. The engine's own behaviour is compared in tests/integration/test_doctor.py."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from signing import KeyringError, PemKeySigner, SigningError
from signing.csr import build_csr, check_csr
from signing.devpki import dev_name, issue_ca, issue_leaf, key_pem, new_key, pem
from signing.doctor import DoctorReport, Finding, diagnose, render
from signing.keys import PrivateKey
from signing.oids import C2PA_AL1, C2PA_AL2, C2PA_CLAIM_SIGNING_EKU, DOCUMENT_SIGNING_EKU
from tests.pki import TestPki as PkiFiles

NOW = datetime.now(UTC)
EMAIL = ExtendedKeyUsageOID.EMAIL_PROTECTION
POLICY_OID = x509.ObjectIdentifier("1.3.6.1.4.1.62558.1.1")
AL_OID = x509.ObjectIdentifier("1.3.6.1.4.1.62558.3")
CPL_OID = x509.ObjectIdentifier("1.3.6.1.4.1.62558.4")
CPL_UUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


# --- building credentials -------------------------------------------------------------------------------


def der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk, rest = [arc & 0x7F], arc >> 7
        while rest:
            chunk.insert(0, 0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(chunk)
    return bytes([0x06, len(body)]) + bytes(body)


def utf8(text: str, tag: int = 0x0C) -> bytes:
    raw = text.encode()
    return bytes([tag, len(raw)]) + raw


def ku(*bits: str) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{n: n in bits for n in names})


def aia(
    ocsp: str | None = "http://ocsp.example.com/c2pa", issuers: str | None = "http://pki.example.com/ca.der"
) -> x509.AuthorityInformationAccess:
    descriptions = []
    if ocsp:
        descriptions.append(
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp))
        )
    if issuers:
        descriptions.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(issuers)
            )
        )
    return x509.AuthorityInformationAccess(descriptions)


@dataclass(frozen=True)
class Ca:
    root: x509.Certificate
    root_key: PrivateKey
    inter: x509.Certificate
    inter_key: PrivateKey


@dataclass(frozen=True)
class Cred:
    chain: bytes
    key: bytes
    algorithm: str | None = None


_DROP = None  # leave the extension out
Ext = tuple[x509.ExtensionType, bool]  # an extension and whether it is critical
PROFILE_BASIC: Ext = (x509.BasicConstraints(ca=False, path_length=None), True)
PROFILE_KEY_USAGE: Ext = (ku("digital_signature", "content_commitment"), True)
PROFILE_EKU: Ext = (x509.ExtendedKeyUsage([C2PA_CLAIM_SIGNING_EKU, EMAIL]), False)
PROFILE_POLICY: Ext = (x509.CertificatePolicies([x509.PolicyInformation(POLICY_OID, None)]), False)
PROFILE_AIA: Ext = (aia(), False)


def make_leaf(
    ca: Ca,
    key: PrivateKey,
    *,
    subject: x509.Name | None = None,
    days: float = 365,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    basic: Ext | None = PROFILE_BASIC,
    key_usage: Ext | None = PROFILE_KEY_USAGE,
    eku: Ext | None = PROFILE_EKU,
    ski: bool = True,
    aki: bool | x509.AuthorityKeyIdentifier = True,
    policy: Ext | None = PROFILE_POLICY,
    info_access: Ext | None = PROFILE_AIA,
    level: tuple[bytes, bool] | None = (der_oid(C2PA_AL1), False),
    cpl: tuple[bytes, bool] | None = (utf8(CPL_UUID), False),
    extra: tuple[Ext, ...] = (),
    hash_algorithm: hashes.SHA224 | hashes.SHA256 | None = None,
) -> x509.Certificate:
    """By default a leaf shaped exactly like the C2PA claim-signing leaf profile (AL1)."""
    public = key.public_key()
    start = not_before or NOW - timedelta(hours=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or dev_name("Doctor Test Signer"))
        .issuer_name(ca.inter.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + timedelta(days=days))
    )
    for value in (basic, key_usage, eku, policy, info_access):
        if value is not None:
            builder = builder.add_extension(value[0], critical=value[1])
    if ski is True:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    if aki is True:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.inter_key.public_key()), critical=False
        )
    elif isinstance(aki, x509.AuthorityKeyIdentifier):
        builder = builder.add_extension(aki, critical=False)
    for oid, raw in ((AL_OID, level), (CPL_OID, cpl)):
        if raw is not None:
            builder = builder.add_extension(x509.UnrecognizedExtension(oid, raw[0]), critical=raw[1])
    for ext, critical in extra:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(ca.inter_key, hash_algorithm or hashes.SHA256())


def dev_leaf(ca: Ca, key: PrivateKey, **kwargs: object) -> x509.Certificate:
    """A leaf as the development PKI issues it (what the engine accepts), with one property changed."""
    defaults: dict[str, object] = {
        "days": 825,
        "key_usage": (ku("digital_signature"), True),
        "eku": (x509.ExtendedKeyUsage([EMAIL]), False),
        "policy": _DROP,
        "info_access": _DROP,
        "level": _DROP,
        "cpl": _DROP,
    }
    defaults.update(kwargs)
    return make_leaf(ca, key, **defaults)  # type: ignore[arg-type]


def make_ca() -> Ca:
    root_key = new_key("es256")
    root = issue_ca(dev_name("Doctor Test Root CA"), root_key, path_length=1)
    inter_key = new_key("es256")
    inter = issue_ca(
        dev_name("Doctor Test Issuing CA"), inter_key, issuer=root, issuer_key=root_key, path_length=0
    )
    return Ca(root, root_key, inter, inter_key)


@pytest.fixture(scope="module")
def ca() -> Ca:
    return make_ca()


@pytest.fixture(scope="module")
def leaf_key() -> PrivateKey:
    return new_key("es256")


def sec1(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def run(cred: Cred, **kwargs: object) -> DoctorReport:
    return diagnose(cred.chain, cred.key, now=NOW, algorithm=cred.algorithm, **kwargs)  # type: ignore[arg-type]


def errors(findings: tuple[Finding, ...]) -> list[str]:
    return [f.check for f in findings if f.severity == "error"]


def warnings(findings: tuple[Finding, ...]) -> list[str]:
    return [f.check for f in findings if f.severity == "warning"]


# --- broken for the engine: one property each --------------------------------------------------------

_rsa_1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
_rsa_2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_ed = ed25519.Ed25519PrivateKey.generate()
_k1 = ec.generate_private_key(ec.SECP256K1())


def _ca_leaf(ca: Ca, k: PrivateKey) -> Cred:
    return Cred(
        pem(dev_leaf(ca, k, basic=(x509.BasicConstraints(ca=True, path_length=None), True))) + pem(ca.inter),
        key_pem(k),
    )


ENGINE_BROKEN: dict[str, tuple[str, Callable[[Ca, PrivateKey], Cred]]] = {
    "CA=true leaf": ("ca-flag", _ca_leaf),
    "no AKI": ("aki", lambda ca, k: Cred(pem(dev_leaf(ca, k, aki=False)) + pem(ca.inter), key_pem(k))),
    "EKU serverAuth only": (
        "eku",
        lambda ca, k: Cred(
            pem(dev_leaf(ca, k, eku=(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)))
            + pem(ca.inter),
            key_pem(k),
        ),
    ),
    "no EKU": ("eku", lambda ca, k: Cred(pem(dev_leaf(ca, k, eku=_DROP)) + pem(ca.inter), key_pem(k))),
    "EKU with anyExtendedKeyUsage": (
        "eku",
        lambda ca, k: Cred(
            pem(
                dev_leaf(
                    ca,
                    k,
                    eku=(x509.ExtendedKeyUsage([EMAIL, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]), False),
                )
            )
            + pem(ca.inter),
            key_pem(k),
        ),
    ),
    "EKU email + timeStamping": (
        "eku",
        lambda ca, k: Cred(
            pem(
                dev_leaf(
                    ca, k, eku=(x509.ExtendedKeyUsage([EMAIL, ExtendedKeyUsageOID.TIME_STAMPING]), False)
                )
            )
            + pem(ca.inter),
            key_pem(k),
        ),
    ),
    "keyCertSign usage": (
        "key-usage",
        lambda ca, k: Cred(
            pem(dev_leaf(ca, k, key_usage=(ku("digital_signature", "key_cert_sign"), True))) + pem(ca.inter),
            key_pem(k),
        ),
    ),
    "no key usage": (
        "key-usage",
        lambda ca, k: Cred(pem(dev_leaf(ca, k, key_usage=_DROP)) + pem(ca.inter), key_pem(k)),
    ),
    "keyEncipherment only": (
        "key-usage",
        lambda ca, k: Cred(
            pem(dev_leaf(ca, k, key_usage=(ku("key_encipherment"), True))) + pem(ca.inter), key_pem(k)
        ),
    ),
    "expired": (
        "validity",
        lambda ca, k: Cred(
            pem(dev_leaf(ca, k, not_before=NOW - timedelta(days=100), not_after=NOW - timedelta(days=1)))
            + pem(ca.inter),
            key_pem(k),
        ),
    ),
    "not yet valid": (
        "validity",
        lambda ca, k: Cred(
            pem(dev_leaf(ca, k, not_before=NOW + timedelta(days=2), not_after=NOW + timedelta(days=200)))
            + pem(ca.inter),
            key_pem(k),
        ),
    ),
    "reversed chain": ("chain-order", lambda ca, k: Cred(pem(ca.inter) + pem(dev_leaf(ca, k)), key_pem(k))),
    "reversed three-certificate chain": (
        "chain-order",
        lambda ca, k: Cred(pem(ca.root) + pem(ca.inter) + pem(dev_leaf(ca, k)), key_pem(k)),
    ),
    "RSA-1024": (
        "key-strength",
        lambda ca, k: Cred(pem(dev_leaf(ca, _rsa_1024)) + pem(ca.inter), key_pem(_rsa_1024), "ps256"),
    ),
    "SEC1 key": ("key-format", lambda ca, k: Cred(pem(dev_leaf(ca, k)) + pem(ca.inter), sec1(k))),
    "PKCS#1 RSA key": (
        "key-format",
        lambda ca, k: Cred(pem(dev_leaf(ca, _rsa_2048)) + pem(ca.inter), sec1(_rsa_2048), "ps256"),
    ),
    "mismatched key": (
        "key-mismatch",
        lambda ca, k: Cred(pem(dev_leaf(ca, k)) + pem(ca.inter), key_pem(new_key("es256"))),
    ),
    "P-256 key with es384": (
        "algorithm",
        lambda ca, k: Cred(pem(dev_leaf(ca, k)) + pem(ca.inter), key_pem(k), "es384"),
    ),
    "Ed25519 key with es256": (
        "algorithm",
        lambda ca, k: Cred(pem(dev_leaf(ca, _ed)) + pem(ca.inter), key_pem(_ed), "es256"),
    ),
    "critical assurance-level extension": (
        "critical-extension",
        lambda ca, k: Cred(pem(dev_leaf(ca, k, level=(der_oid(C2PA_AL1), True))) + pem(ca.inter), key_pem(k)),
    ),
    "signed with SHA-224": (
        "signature-algorithm",
        lambda ca, k: Cred(pem(dev_leaf(ca, k, hash_algorithm=hashes.SHA224())) + pem(ca.inter), key_pem(k)),
    ),
    "secp256k1 key": (
        "key-type",
        lambda ca, k: Cred(pem(dev_leaf(ca, _k1)) + pem(ca.inter), key_pem(_k1), "es256"),
    ),
}


@pytest.mark.parametrize("case", sorted(ENGINE_BROKEN))
def test_each_broken_property_yields_exactly_its_finding(case: str, ca: Ca, leaf_key: PrivateKey) -> None:
    slug, build = ENGINE_BROKEN[case]
    report = run(build(ca, leaf_key))
    assert errors(report.engine_findings) == [slug], render(report)
    assert report.engine_accepts is False
    [finding] = [f for f in report.engine_findings if f.severity == "error"]
    assert finding.message, finding
    assert finding.fix, finding


def test_the_good_development_leaf_has_no_engine_finding(ca: Ca, leaf_key: PrivateKey) -> None:
    report = run(Cred(pem(dev_leaf(ca, leaf_key)) + pem(ca.inter), key_pem(leaf_key)))
    assert report.engine_accepts
    assert errors(report.engine_findings) == warnings(report.engine_findings) == []


def test_messages_name_the_property_in_plain_words(ca: Ca, leaf_key: PrivateKey) -> None:
    def message(case: str) -> str:
        slug, build = ENGINE_BROKEN[case]
        return next(f for f in run(build(ca, leaf_key)).engine_findings if f.check == slug).message

    def fix(case: str) -> str:
        slug, build = ENGINE_BROKEN[case]
        return next(f for f in run(build(ca, leaf_key)).engine_findings if f.check == slug).fix

    assert "reverse order" in message("reversed chain")
    assert "CA certificate" in message("CA=true leaf")
    assert "serverAuth" in message("EKU serverAuth only")
    assert "emailProtection" in message("EKU serverAuth only")
    assert "expired" in message("expired")
    assert "not valid yet" in message("not yet valid")
    assert "1024" in message("RSA-1024")
    assert "SEC1" in message("SEC1 key")
    assert "openssl pkcs8 -topk8" in fix("SEC1 key")
    assert "PKCS#1" in message("PKCS#1 RSA key")
    assert "openssl pkcs8 -topk8" in fix("PKCS#1 RSA key")
    assert "does not belong" in message("mismatched key")
    assert "es384" in message("P-256 key with es384")
    assert "P-384" in message("P-256 key with es384")
    assert "es256" in fix("P-256 key with es384")
    assert "keyCertSign" in message("keyCertSign usage")
    assert "Authority Key Identifier" in message("no AKI")
    assert "1.3.6.1.4.1.62558.3" in message("critical assurance-level extension")


def test_a_mismatched_key_that_belongs_to_the_intermediate_is_named(ca: Ca, leaf_key: PrivateKey) -> None:
    report = run(Cred(pem(dev_leaf(ca, leaf_key)) + pem(ca.inter), key_pem(ca.inter_key)))
    assert errors(report.engine_findings) == ["key-mismatch"]
    [finding] = [f for f in report.engine_findings if f.check == "key-mismatch"]
    assert "certificate 2" in finding.message
    assert "Issuing CA" in finding.message


# --- accepted by the engine, with a warning ----------------------------------------------------------


def test_expiring_within_n_days_is_a_warning(ca: Ca, leaf_key: PrivateKey) -> None:
    cred = Cred(
        pem(dev_leaf(ca, leaf_key, not_after=NOW + timedelta(days=10))) + pem(ca.inter), key_pem(leaf_key)
    )
    report = run(cred)
    assert report.engine_accepts
    assert errors(report.engine_findings) == []
    assert warnings(report.engine_findings) == ["expiring"]
    assert not warnings(run(cred, expiring_within_days=5).engine_findings)


@pytest.mark.parametrize(
    ("case", "slug"),
    [
        ("nonRepudiation only", "key-usage"),
        ("out of order", "chain-order"),
        ("unrelated certificate", "chain-order"),
        ("leaf alone", "chain-incomplete"),
        ("root included", "chain-root"),
        ("expired intermediate", "chain-validity"),
        ("self-signed leaf", "self-signed"),
        ("key inside the chain file", "chain-format"),
    ],
)
def test_accepted_with_a_warning(case: str, slug: str, ca: Ca, leaf_key: PrivateKey) -> None:
    leaf = dev_leaf(ca, leaf_key)
    chain = {
        "nonRepudiation only": lambda: (
            pem(dev_leaf(ca, leaf_key, key_usage=(ku("content_commitment"), True))) + pem(ca.inter)
        ),
        "out of order": lambda: pem(leaf) + pem(ca.root) + pem(ca.inter),
        "unrelated certificate": lambda: pem(leaf) + pem(make_ca().inter),
        "leaf alone": lambda: pem(leaf),
        "root included": lambda: pem(leaf) + pem(ca.inter) + pem(ca.root),
        "expired intermediate": lambda: pem(leaf) + pem(_expired_copy(ca)),
        "self-signed leaf": lambda: pem(_self_signed(leaf_key)),
        "key inside the chain file": lambda: pem(leaf) + pem(ca.inter) + key_pem(leaf_key),
    }[case]()
    report = run(Cred(chain, key_pem(leaf_key)))
    assert report.engine_accepts, render(report)
    assert warnings(report.engine_findings) == [slug], render(report)


def _expired_copy(ca: Ca) -> x509.Certificate:
    """The intermediate re-issued (same key and name) with a validity that ended yesterday."""
    return (
        x509.CertificateBuilder()
        .subject_name(ca.inter.subject)
        .issuer_name(ca.root.subject)
        .public_key(ca.inter_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=400))
        .not_valid_after(NOW - timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(ku("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca.inter_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.root_key.public_key()), critical=False
        )
        .sign(ca.root_key, hashes.SHA256())
    )


def _self_signed(key: PrivateKey) -> x509.Certificate:
    name = dev_name("Self-signed signer")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(NOW + timedelta(days=100))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(ku("digital_signature"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([EMAIL]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def test_allowed_ekus_follow_the_engine_trust_config(ca: Ca, leaf_key: PrivateKey) -> None:
    only_claim = dev_leaf(ca, leaf_key, eku=(x509.ExtendedKeyUsage([C2PA_CLAIM_SIGNING_EKU]), False))
    cred = Cred(pem(only_claim) + pem(ca.inter), key_pem(leaf_key))
    refused = run(cred)
    assert errors(refused.engine_findings) == ["eku"]
    assert "trust configuration" in next(f.message for f in refused.engine_findings if f.check == "eku")
    assert run(cred, allowed_ekus=["1.3.6.1.4.1.62558.2.1"]).engine_accepts
    # emailProtection keeps working when the trust configuration adds other EKUs (measured).
    email = Cred(pem(dev_leaf(ca, leaf_key)) + pem(ca.inter), key_pem(leaf_key))
    assert run(email, allowed_ekus=[C2PA_CLAIM_SIGNING_EKU]).engine_accepts


# --- the two verdicts -----------------------------------------------------------------------------------


def test_the_dev_leaf_of_the_test_pki_is_engine_ready_but_not_trust_list_issuable(pki: PkiFiles) -> None:
    report = diagnose(pki.chain.read_bytes(), pki.key.read_bytes(), now=NOW)
    assert report.engine_accepts is True
    assert report.trust_list_issuable is False
    assert set(errors(report.profile_findings)) == {
        "validity-length",
        "key-usage",
        "eku",
        "policy",
        "aia-ocsp",
        "assurance-level",
        "cpl-record",
    }
    by_check = {f.check: f for f in report.profile_findings}
    assert "366 days" in by_check["validity-length"].message
    assert "825 days" in by_check["validity-length"].message
    assert "nonRepudiation" in by_check["key-usage"].message
    assert "c2pa-kp-claimSigning" in by_check["eku"].message
    assert "1.3.6.1.4.1.62558.1.1" in by_check["policy"].message
    assert "1.3.6.1.4.1.62558.3" in by_check["assurance-level"].message
    assert "1.3.6.1.4.1.62558.4" in by_check["cpl-record"].message
    assert all(f.fix for f in report.profile_findings if f.severity == "error")
    assert report.subject == "CN=Hallmark Test Signer,O=Hallmark Development PKI (not for production),C=US"
    assert report.fingerprint
    assert len(report.fingerprint) == 64
    assert report.test_sign is None


def test_the_perfect_profile_leaf_passes_both_verdicts(ca: Ca, leaf_key: PrivateKey) -> None:
    report = run(Cred(pem(make_leaf(ca, leaf_key)) + pem(ca.inter), key_pem(leaf_key)))
    assert report.engine_accepts is True
    assert report.trust_list_issuable is True, render(report)
    assert errors(report.engine_findings) == warnings(report.engine_findings) == []
    assert errors(report.profile_findings) == warnings(report.profile_findings) == []
    checked = {f.check for f in report.profile_findings}
    assert checked >= {
        "validity-length",
        "subject",
        "key-usage",
        "eku",
        "policy",
        "aia-ocsp",
        "assurance-level",
        "cpl-record",
        "aki",
        "ski",
        "ca-flag",
    }


def test_the_profile_applies_to_every_key_type(ca: Ca) -> None:
    for alg in ("es384", "es512", "ed25519", "ps256"):
        key = new_key(alg) if alg != "ps256" else _rsa_2048
        report = run(Cred(pem(make_leaf(ca, key)) + pem(ca.inter), key_pem(key), alg))
        assert report.engine_accepts, render(report)
        assert report.trust_list_issuable, render(report)


_CPL_NOT_UUID = utf8("not-a-uuid-but-exactly-36-characters")
PROFILE_BROKEN: dict[str, tuple[str, dict[str, object]]] = {
    "validity 400 days": ("validity-length", {"days": 400}),
    "AL2 with 365 days": ("validity-length", {"level": (der_oid(C2PA_AL2), False)}),
    "no C in the subject": (
        "subject",
        {
            "subject": x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example AI"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "Example claim signer"),
                ]
            )
        },
    ),
    "key usage without nonRepudiation": ("key-usage", {"key_usage": (ku("digital_signature"), True)}),
    "key usage not critical": (
        "key-usage",
        {"key_usage": (ku("digital_signature", "content_commitment"), False)},
    ),
    "key usage with keyEncipherment": (
        "key-usage",
        {"key_usage": (ku("digital_signature", "content_commitment", "key_encipherment"), True)},
    ),
    "EKU emailProtection only": ("eku", {"eku": (x509.ExtendedKeyUsage([EMAIL]), False)}),
    "EKU critical": ("eku", {"eku": (x509.ExtendedKeyUsage([C2PA_CLAIM_SIGNING_EKU, EMAIL]), True)}),
    "no certificate policy": ("policy", {"policy": _DROP}),
    "other certificate policy": (
        "policy",
        {
            "policy": (
                x509.CertificatePolicies(
                    [x509.PolicyInformation(x509.ObjectIdentifier("2.23.140.1.2.1"), None)]
                ),
                False,
            )
        },
    ),
    "no AIA": ("aia-ocsp", {"info_access": _DROP}),
    "AIA without OCSP": ("aia-ocsp", {"info_access": (aia(ocsp=None), False)}),
    "OCSP over https": ("aia-ocsp", {"info_access": (aia(ocsp="https://ocsp.example.com"), False)}),
    "no assurance level": ("assurance-level", {"level": _DROP}),
    "unknown assurance level": ("assurance-level", {"level": (der_oid("1.3.6.1.4.1.62558.3.99"), False)}),
    "assurance level not an OID": ("assurance-level", {"level": (utf8("AL1"), False)}),
    "no CPL record": ("cpl-record", {"cpl": _DROP}),
    "CPL record not a UUID": ("cpl-record", {"cpl": (_CPL_NOT_UUID, False)}),
    "CPL record as PrintableString": ("cpl-record", {"cpl": (utf8(CPL_UUID, tag=0x13), False)}),
    "no SKI": ("ski", {"ski": False}),
    "AKI without keyIdentifier": ("aki", {"aki": x509.AuthorityKeyIdentifier(None, None, None)}),
    "AKI of another CA": ("aki", {"aki": x509.AuthorityKeyIdentifier(b"\x01" * 20, None, None)}),
    "no basic constraints": ("ca-flag", {"basic": _DROP}),
    "basic constraints not critical": (
        "ca-flag",
        {"basic": (x509.BasicConstraints(ca=False, path_length=None), False)},
    ),
}


@pytest.mark.parametrize("case", sorted(PROFILE_BROKEN))
def test_each_profile_rule_yields_exactly_its_finding(case: str, ca: Ca, leaf_key: PrivateKey) -> None:
    slug, changes = PROFILE_BROKEN[case]
    report = run(Cred(pem(make_leaf(ca, leaf_key, **changes)) + pem(ca.inter), key_pem(leaf_key)))  # type: ignore[arg-type]
    assert errors(report.profile_findings) == [slug], render(report)
    assert report.trust_list_issuable is False
    # None of these bother the engine: the two verdicts are independent.
    assert report.engine_accepts is True, render(report)
    [finding] = [f for f in report.profile_findings if f.severity == "error"]
    assert finding.message.startswith("C2PA policy, ")
    assert finding.fix


def test_an_al2_leaf_of_90_days_fits(ca: Ca, leaf_key: PrivateKey) -> None:
    leaf = make_leaf(ca, leaf_key, days=90, level=(der_oid(C2PA_AL2), False))
    report = run(Cred(pem(leaf) + pem(ca.inter), key_pem(leaf_key)))
    assert report.trust_list_issuable, render(report)


def test_aia_without_ca_issuers_is_a_profile_warning(ca: Ca, leaf_key: PrivateKey) -> None:
    leaf = make_leaf(ca, leaf_key, info_access=(aia(issuers=None), False))
    report = run(Cred(pem(leaf) + pem(ca.inter), key_pem(leaf_key)))
    assert report.trust_list_issuable
    assert warnings(report.profile_findings) == ["aia-ca-issuers"]


# --- keys: formats, passphrases, keys in tokens ----------------------------------------------------------


def test_an_encrypted_pkcs8_key_needs_its_passphrase(ca: Ca, leaf_key: PrivateKey) -> None:
    encrypted = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse"),
    )
    chain = pem(dev_leaf(ca, leaf_key)) + pem(ca.inter)
    missing = diagnose(chain, encrypted, now=NOW)
    assert errors(missing.engine_findings) == ["key-unreadable"]
    wrong = diagnose(chain, encrypted, passphrase=b"wrong", now=NOW)
    assert errors(wrong.engine_findings) == ["key-unreadable"]
    right = diagnose(chain, encrypted, passphrase=b"correct horse", now=NOW)
    assert right.engine_accepts, render(right)


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        (b"", "no PEM private key"),
        (b"garbage", "no PEM private key"),
        (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "certificate, not a private key"),
        (b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", "OpenSSH"),
    ],
)
def test_unusable_key_files_are_named(key: bytes, needle: str, ca: Ca, leaf_key: PrivateKey) -> None:
    report = diagnose(pem(dev_leaf(ca, leaf_key)) + pem(ca.inter), key, now=NOW)
    assert not report.engine_accepts
    assert any(needle in f.message for f in report.engine_findings if f.severity == "error"), render(report)


def test_a_der_key_is_named_and_still_checked(ca: Ca, leaf_key: PrivateKey) -> None:
    der = leaf_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    report = diagnose(pem(dev_leaf(ca, leaf_key)) + pem(ca.inter), der, now=NOW)
    assert errors(report.engine_findings) == ["key-format"]
    assert "openssl pkey" in next(f.fix for f in report.engine_findings if f.check == "key-format")


def test_without_a_key_the_key_checks_are_skipped_with_a_warning(ca: Ca, leaf_key: PrivateKey) -> None:
    report = diagnose(pem(dev_leaf(ca, leaf_key)) + pem(ca.inter), now=NOW)
    assert report.engine_accepts
    assert warnings(report.engine_findings) == ["key-format"]


class RawTokenSigner:
    """A stand-in for a key in a token: signs, never shows the key; ECDSA signatures raw r||s as PKCS#11."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, chain: bytes, *, fail: bool = False):
        self._key, self._chain, self._fail = key, chain, fail

    key_id = "token-key"
    algorithm = "es256"

    @property
    def chain_pem(self) -> bytes:
        return self._chain

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self._chain)[0]

    def sign(self, data: bytes) -> bytes:
        if self._fail:
            raise SigningError("The token is not present.")
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_a_key_in_a_token_is_matched_by_a_probe_signature(ca: Ca) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    chain = pem(dev_leaf(ca, key)) + pem(ca.inter)
    ok = diagnose(chain, public_key_only=RawTokenSigner(key, chain), now=NOW)
    assert ok.engine_accepts, render(ok)
    assert any(f.check == "key-mismatch" and f.severity == "ok" for f in ok.engine_findings)
    other = diagnose(
        chain, public_key_only=RawTokenSigner(ec.generate_private_key(ec.SECP256R1()), chain), now=NOW
    )
    assert errors(other.engine_findings) == ["key-mismatch"]
    absent = diagnose(chain, public_key_only=RawTokenSigner(key, chain, fail=True), now=NOW)
    assert errors(absent.engine_findings) == ["key-unreadable"]
    assert "token is not present" in next(f.message for f in absent.engine_findings if f.severity == "error")
    # A file signer works through the same port (DER ECDSA signatures).
    pem_signer = PemKeySigner(key, chain, "pem", "es256")
    assert diagnose(chain, public_key_only=pem_signer, now=NOW).engine_accepts
    assert errors(
        diagnose(chain, public_key_only=pem_signer, algorithm="es384", now=NOW).engine_findings
    ) == ["algorithm"]


# --- the engine test callback ---------------------------------------------------------------------------


def test_the_engine_test_outcome_is_a_finding(ca: Ca, leaf_key: PrivateKey) -> None:
    good = Cred(pem(dev_leaf(ca, leaf_key)) + pem(ca.inter), key_pem(leaf_key))
    trusted = run(good, test_sign=lambda: "Trusted")
    assert trusted.engine_accepts
    assert trusted.test_sign == "Trusted"
    assert [f.severity for f in trusted.engine_findings if f.check == "engine-test"] == ["ok"]

    valid = run(good, test_sign=lambda: "Valid")
    assert valid.engine_accepts
    assert valid.test_sign == "Valid"
    assert warnings(valid.engine_findings) == ["engine-test"]

    def refuse() -> str:
        raise SigningError(
            "The engine refused the signing credential.",
            details={"engine": "Signature: the certificate is invalid"},
        )

    refused = run(good, test_sign=refuse)
    assert not refused.engine_accepts
    assert refused.test_sign is None
    [finding] = [f for f in refused.engine_findings if f.severity == "error"]
    assert finding.check == "engine-test"
    assert "the certificate is invalid" in finding.message

    def crash() -> str:
        raise RuntimeError("boom")

    assert errors(run(good, test_sign=crash).engine_findings) == ["engine-test"]


def test_an_engine_more_lenient_than_the_static_checks_is_reported(ca: Ca, leaf_key: PrivateKey) -> None:
    broken = Cred(pem(dev_leaf(ca, leaf_key, aki=False)) + pem(ca.inter), key_pem(leaf_key))
    report = run(broken, test_sign=lambda: "Trusted")
    assert not report.engine_accepts
    assert "engine-test" in warnings(report.engine_findings)
    assert "aki" in next(f.message for f in report.engine_findings if f.severity == "warning")


# --- robustness: nothing makes it raise ------------------------------------------------------------------


@pytest.mark.parametrize(
    "chain",
    [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        b"\x30\x03\x02\x01",
    ],
)
def test_an_unreadable_chain_is_a_finding(chain: bytes, leaf_key: PrivateKey) -> None:
    report = diagnose(chain, key_pem(leaf_key), now=NOW, test_sign=lambda: "Trusted")
    assert not report.engine_accepts
    assert not report.trust_list_issuable
    assert "chain-format" in errors(report.engine_findings)
    assert report.subject is None
    assert report.fingerprint is None
    render(report)


def test_a_der_certificate_is_named(ca: Ca, leaf_key: PrivateKey) -> None:
    der = dev_leaf(ca, leaf_key).public_bytes(serialization.Encoding.DER)
    report = diagnose(der, key_pem(leaf_key), now=NOW)
    assert "chain-format" in errors(report.engine_findings)
    assert "openssl x509 -inform DER" in next(
        f.fix for f in report.engine_findings if f.check == "chain-format"
    )
    assert report.subject is not None  # still analysed


def test_mutated_certificates_never_make_it_raise(ca: Ca, leaf_key: PrivateKey) -> None:
    import base64

    der = bytearray(make_leaf(ca, leaf_key).public_bytes(serialization.Encoding.DER))
    rng = random.Random(20260801)
    for _ in range(300):
        mutated = bytearray(der)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        block = base64.encodebytes(bytes(mutated))
        chain = b"-----BEGIN CERTIFICATE-----\n" + block + b"-----END CERTIFICATE-----\n" + pem(ca.inter)
        report = diagnose(chain, key_pem(leaf_key), now=NOW)
        assert isinstance(report, DoctorReport)
        render(report)


def test_a_naive_now_is_taken_as_utc(ca: Ca, leaf_key: PrivateKey) -> None:
    cred = Cred(pem(dev_leaf(ca, leaf_key)) + pem(ca.inter), key_pem(leaf_key))
    assert diagnose(cred.chain, cred.key, now=NOW.replace(tzinfo=None)).engine_accepts


# --- rendering ------------------------------------------------------------------------------------------


def test_render_puts_the_two_verdicts_first_and_every_fix_under_its_finding(pki: PkiFiles) -> None:
    report = diagnose(pki.chain.read_bytes(), pki.key.read_bytes(), now=NOW, test_sign=lambda: "Trusted")
    text = render(report)
    lines = text.splitlines()
    assert lines[0] == "Engine accepts this credential: yes"
    assert lines[1] == "A CA on the C2PA trust list could issue it: no"
    assert "Test sign    Trusted" in text
    for finding in report.profile_findings:
        if finding.severity == "error":
            at = lines.index(f"  ERROR {finding.check}: {finding.message}")
            assert lines[at + 1] == f"         fix: {finding.fix}"
    engine_at = next(i for i, line in enumerate(lines) if line.startswith("What the engine needs"))
    profile_at = next(
        i for i, line in enumerate(lines) if line.startswith("What a CA on the C2PA trust list")
    )
    assert engine_at < profile_at


def test_render_of_a_refused_credential(ca: Ca, leaf_key: PrivateKey) -> None:
    slug, build = ENGINE_BROKEN["reversed chain"]
    text = render(run(build(ca, leaf_key)))
    assert text.startswith("Engine accepts this credential: no\n")
    assert f"  ERROR {slug}: The chain is in reverse order" in text
    assert "Test sign    not run" in text


# --- certificate signing requests -----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["es256", "es384", "es512", "ed25519", "ps256"])
def test_build_csr_fits_the_claim_signing_profile(alg: str) -> None:
    key = new_key(alg) if alg != "ps256" else _rsa_2048
    csr_pem = build_csr(
        key, country="US", organization="Example AI", common_name="Example claim signer", algorithm=alg
    )
    assert csr_pem.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    findings = check_csr(csr_pem)
    assert [f.check for f in findings if f.severity != "ok"] == [], findings
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=Example claim signer,O=Example AI,C=US"
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.content_commitment
    eku = csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == [C2PA_CLAIM_SIGNING_EKU, EMAIL]


def test_build_csr_refuses_an_algorithm_that_does_not_fit_the_key() -> None:
    with pytest.raises(KeyringError):
        build_csr(new_key("es256"), country="US", organization="O", common_name="CN", algorithm="es384")
    with pytest.raises(KeyringError):
        build_csr(new_key("es256"), country="USA", organization="O", common_name="CN", algorithm="es256")


def test_a_ca_issuing_from_our_csr_yields_a_profile_leaf(ca: Ca) -> None:
    """What `keys generate` writes is what a CA under the C2PA policy needs: it adds only its own fields."""
    key = new_key("es256")
    csr = x509.load_pem_x509_csr(
        build_csr(
            key, country="DE", organization="Example AI", common_name="Example signer", algorithm="es256"
        )
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.inter.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=366))  # the limit itself
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.inter_key.public_key()), critical=False
        )
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(POLICY_OID, None)]), critical=False)
        .add_extension(aia(), critical=False)
        .add_extension(x509.UnrecognizedExtension(AL_OID, der_oid(C2PA_AL1)), critical=False)
        .add_extension(x509.UnrecognizedExtension(CPL_OID, utf8(CPL_UUID)), critical=False)
    )
    for requested in csr.extensions:
        builder = builder.add_extension(requested.value, critical=requested.critical)
    leaf = builder.sign(ca.inter_key, hashes.SHA256())
    report = diagnose(pem(leaf) + pem(ca.inter), key_pem(key), now=NOW)
    assert report.engine_accepts, render(report)
    assert report.trust_list_issuable, render(report)


def test_check_csr_names_what_a_plain_request_lacks() -> None:
    key = new_key("es256")
    plain = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "only a CN")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    bad = {f.check for f in check_csr(plain) if f.severity == "error"}
    assert bad == {"subject", "key-usage", "eku"}
    with_ca = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(dev_name("x"))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ku("digital_signature", "content_commitment"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([C2PA_CLAIM_SIGNING_EKU, DOCUMENT_SIGNING_EKU]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    assert {f.check for f in check_csr(with_ca) if f.severity == "error"} == {"ca-flag"}
    assert [f.check for f in check_csr(b"nonsense")] == ["csr-format"]


def test_issue_leaf_from_devpki_with_a_public_key_only(ca: Ca) -> None:
    """Token keys: the leaf is issued for a public key; the doctor still checks it (without a key)."""
    key = new_key("es256")
    leaf = issue_leaf(dev_name("token"), key.public_key(), issuer=ca.inter, issuer_key=ca.inter_key)
    report = diagnose(pem(leaf) + pem(ca.inter), now=NOW)
    assert report.engine_accepts
    assert errors(report.engine_findings) == []


# --- severities by environment ------------------------------------------------------------------------


def _report(engine: tuple[Finding, ...], profile: tuple[Finding, ...]) -> DoctorReport:
    return DoctorReport(
        engine_accepts=not any(f.severity == "error" for f in engine),
        engine_findings=engine,
        trust_list_issuable=not any(f.severity == "error" for f in profile),
        profile_findings=profile,
        test_sign="Trusted",
        subject=None,
        issuer=None,
        not_after=None,
        fingerprint=None,
    )


def test_profile_errors_are_warnings_in_development_and_errors_in_production() -> None:
    from signing import graded_doctor_report

    profile = (Finding("policy", "error", "no policy"), Finding("serial", "ok", "fine"))
    report = _report((Finding("ca-flag", "ok", "fine"),), profile)
    assert report.has_errors
    dev = graded_doctor_report(report, production=False)
    assert [f.severity for f in dev.profile_findings] == ["warning", "ok"]
    assert not dev.has_errors
    assert dev.trust_list_issuable is False  # the verdict stays: a C2PA CA could not issue it
    prod = graded_doctor_report(report, production=True)
    assert prod == report
    assert prod.has_errors


def test_engine_errors_stay_errors_in_development() -> None:
    from signing import graded_doctor_report

    report = _report((Finding("ca-flag", "error", "a CA certificate"),), ())
    dev = graded_doctor_report(report, production=False)
    assert dev.has_errors
    assert [f.severity for f in dev.engine_findings] == ["error"]
