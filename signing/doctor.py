"""The key doctor: checks a signing credential and names each broken property in plain words, with a fix.

Two separate verdicts:

* *the engine accepts it*: what c2pa-rs (as Hallmark configures it) needs of a claim signer, measured on the
  pinned engine (see C2PA-FACTS.md, "Certificates"), plus what Hallmark's key loader needs (PKCS#8);
* *a CA on the C2PA trust list could issue it*: the C2PA Certificate Policy's claim-signing leaf profile
  (cert-profiles/claimSigningLeaf.al1.cert.yaml; AL2 differs only in validity and the assurance-level value).

Pure core: cryptography only, no environment, no engine. The caller may pass `test_sign`, a callback that
signs and verifies through the real engine (e.g. `signing.self_test`), whose outcome is one more finding.
A broken credential never makes `diagnose` raise: every problem is a `Finding`.

Engine checks (slugs): chain-format, chain-order, chain-incomplete, chain-root, chain-validity, self-signed,
ca-flag, key-usage, aki, eku, validity, expiring, key-strength, key-type, signature-algorithm,
critical-extension, key-format, key-unreadable, key-mismatch, algorithm, engine-test.
Profile checks (slugs): version, serial, signature-algorithm, validity-length, subject, key-type, ski, aki,
key-usage, ca-flag, eku, policy, aia-ocsp, aia-ca-issuers, crl-dp, assurance-level, cpl-record.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
    SignatureAlgorithmOID,
)

from signing.certs import sha256_fingerprint
from signing.errors import HallmarkError
from signing.keys import KeySigner

Severity = Literal["error", "warning", "ok"]

# --- OIDs -----------------------------------------------------------------------------------------------

C2PA_CLAIM_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1")  # c2pa-kp-claimSigning
DOCUMENT_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning (RFC 9336)
C2PA_POLICY = x509.ObjectIdentifier("1.3.6.1.4.1.62558.1.1")  # c2pa-certificate-policy
C2PA_ASSURANCE_LEVEL = x509.ObjectIdentifier("1.3.6.1.4.1.62558.3")  # id-c2pa-al
C2PA_AL1 = "1.3.6.1.4.1.62558.3.10"
C2PA_AL2 = "1.3.6.1.4.1.62558.3.20"
C2PA_CPL_RECORD = x509.ObjectIdentifier("1.3.6.1.4.1.62558.4")  # c2pa-cpl-record

#: What the engine accepts as a claim signer's EKU unless its trust_config lists more.
DEFAULT_ENGINE_EKUS: tuple[str, ...] = (ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string,)

PROFILE_NAME = "C2PA Certificate Policy, claim-signing leaf profile (AL1)"
RULE_PREFIX = "C2PA policy"  # findings cite the profile rule after it
_AL_LIMITS = {C2PA_AL1: (366, "Assurance Level 1"), C2PA_AL2: (90, "Assurance Level 2")}

_EKU_NAMES = {
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
    C2PA_CLAIM_SIGNING_EKU: "c2pa-kp-claimSigning",
    DOCUMENT_SIGNING_EKU: "documentSigning",
    x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12"): "Microsoft documentSigning",
}
_SIGNATURE_ALGORITHMS = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.RSASSA_PSS: "RSASSA-PSS",
    SignatureAlgorithmOID.ED25519: "Ed25519",
}
_WEAK_SIGNATURE_ALGORITHMS = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA224: "ecdsa-with-SHA224",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA224: "sha224WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_MD5: "md5WithRSAEncryption",
    SignatureAlgorithmOID.DSA_WITH_SHA256: "dsa-with-SHA256",
    SignatureAlgorithmOID.ED448: "Ed448",
}
# Extensions the engine accepts when marked critical, measured on c2pa-rs 0.91.3; any other critical one
# (the C2PA assurance-level or CPL-record extension, OCSP no-check, TLS feature, issuer alternative name,
# subject information access, freshest CRL, subject directory attributes, ...) makes it refuse the signer.
_KNOWN_CRITICAL = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    ExtensionOID.CRL_DISTRIBUTION_POINTS,
    ExtensionOID.POLICY_CONSTRAINTS,
    ExtensionOID.INHIBIT_ANY_POLICY,
    ExtensionOID.NAME_CONSTRAINTS,
    ExtensionOID.POLICY_MAPPINGS,
    x509.ObjectIdentifier("2.16.840.1.113730.1.1"),  # Netscape certificate type
}
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_ALGORITHM_KEY = {
    "es256": "P-256",
    "es384": "P-384",
    "es512": "P-521",
    "ps256": "RSA",
    "ps384": "RSA",
    "ps512": "RSA",
    "ed25519": "Ed25519",
}
_DEFAULT_ALGORITHM = {
    "P-256": "es256",
    "P-384": "es384",
    "P-521": "es512",
    "RSA": "ps256",
    "Ed25519": "ed25519",
}
_HASH_FOR: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "es256": hashes.SHA256,
    "es384": hashes.SHA384,
    "es512": hashes.SHA512,
    "ps256": hashes.SHA256,
    "ps384": hashes.SHA384,
    "ps512": hashes.SHA512,
}
_CERT_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_CA_ISSUES_IT = (
    "Set by the issuing CA: get the certificate from a CA on the C2PA trust list, under the C2PA "
    "Certificate Policy (`hallmark keys generate` writes a CSR it accepts)."
)
_TO_PKCS8 = "openssl pkcs8 -topk8 -nocrypt -in OLD.pem -out key.pem"

_E = TypeVar("_E", bound=x509.ExtensionType)


# --- results --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One checked property: `check` is a stable slug, `message` plain words, `fix` how to repair it."""

    check: str
    severity: Severity
    message: str
    fix: str = ""


@dataclass(frozen=True)
class DoctorReport:
    engine_accepts: bool
    engine_findings: tuple[Finding, ...]
    trust_list_issuable: bool
    profile_findings: tuple[Finding, ...]
    test_sign: str | None  # the validation state of the test sign + verify; None when it did not run/pass
    subject: str | None
    issuer: str | None
    not_after: datetime | None
    fingerprint: str | None  # SHA-256 of the leaf certificate (DER)


# --- small helpers shared with signing.csr --------------------------------------------------------------


def eku_names(usages: Iterable[x509.ObjectIdentifier]) -> str:
    return ", ".join(_EKU_NAMES.get(oid, oid.dotted_string) for oid in usages) or "none"


def key_usage_bits(ku: x509.KeyUsage) -> set[str]:
    bits = {
        "digitalSignature": ku.digital_signature,
        "nonRepudiation": ku.content_commitment,
        "keyEncipherment": ku.key_encipherment,
        "dataEncipherment": ku.data_encipherment,
        "keyAgreement": ku.key_agreement,
        "keyCertSign": ku.key_cert_sign,
        "cRLSign": ku.crl_sign,
    }
    if ku.key_agreement:
        bits["encipherOnly"] = ku.encipher_only
        bits["decipherOnly"] = ku.decipher_only
    return {name for name, on in bits.items() if on}


def key_kind(public: PublicKeyTypes) -> str:
    """ "P-256", "P-384", "P-521", "RSA", "Ed25519", or a description of an unusable key."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        return _CURVES.get(public.curve.name, f"EC {public.curve.name}")
    if isinstance(public, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(public).__name__.removeprefix("_").replace("PublicKey", "")


def key_type_problem(public: PublicKeyTypes) -> str | None:
    """Why this public key cannot sign C2PA claims (None when it can): RSA >= 2048, P-256/384/521, Ed25519."""
    kind = key_kind(public)
    if isinstance(public, rsa.RSAPublicKey):
        return (
            None if public.key_size >= 2048 else f"the RSA key has only {public.key_size} bits (needs 2048+)"
        )
    if kind in ("P-256", "P-384", "P-521", "Ed25519"):
        return None
    return f"the key is {kind}; only RSA (2048+ bits), EC P-256/P-384/P-521 and Ed25519 are allowed"


def _ext(cert: x509.Certificate | None, kind: type[_E]) -> x509.Extension[_E] | None:
    if cert is None:
        return None
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _raw_ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def _spki(public: PublicKeyTypes) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _is_ca(cert: x509.Certificate) -> bool:
    bc = _ext(cert, x509.BasicConstraints)
    return bc is not None and bc.value.ca


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _days(delta: timedelta) -> str:
    """`825 days`, `366 days 5 min`, `9 days 23 h 59 min`: exact enough to see why a limit is missed."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} days"] + ([f"{hours} h"] if hours else []) + ([f"{mins} min"] if mins else [])
    return " ".join(parts)


# --- DER, just enough for the two C2PA private extensions -----------------------------------------------


def _der_tlv(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    if pos + 2 > len(data):
        raise ValueError("truncated")
    tag, length, pos = data[pos], data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad length")
        length, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
    if pos + length > len(data):
        raise ValueError("truncated")
    return tag, data[pos : pos + length], pos + length


def _der_oid(body: bytes) -> str:
    if not body:
        raise ValueError("empty OID")
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if body[-1] & 0x80:
        raise ValueError("truncated OID")
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def _assurance_level_value(der: bytes) -> str | None:
    """The OID inside the id-c2pa-al extension: a bare OID (also accepted: a SEQUENCE holding one)."""
    try:
        tag, body, end = _der_tlv(der)
        if tag == 0x30:
            tag, body, _ = _der_tlv(body)
        if tag != 0x06 or end != len(der):
            return None
        return _der_oid(body)
    except ValueError:
        return None


# --- the diagnosis --------------------------------------------------------------------------------------


def diagnose(
    chain_pem: bytes,
    key_pem: bytes | None = None,
    *,
    passphrase: bytes | None = None,
    public_key_only: KeySigner | None = None,
    now: datetime,
    expiring_within_days: int = 30,
    test_sign: Callable[[], str] | None = None,
    algorithm: str | None = None,
    allowed_ekus: Iterable[str | x509.ObjectIdentifier] = DEFAULT_ENGINE_EKUS,
) -> DoctorReport:
    """Check a chain (leaf first, PEM) and its private key (PKCS#8 PEM), or a `KeySigner` whose key lives
    in a token (`public_key_only`). `algorithm` is the configured signing algorithm (es256, ps384, ...);
    `allowed_ekus` the EKUs the engine's trust_config adds (the trust profiles' `allowed_ekus`; the
    engine always accepts emailProtection)."""
    now = _aware(now)
    # emailProtection always works (measured: also when trust_config lists other EKUs).
    allowed = {o.dotted_string if isinstance(o, x509.ObjectIdentifier) else o for o in allowed_ekus}
    allowed |= set(DEFAULT_ENGINE_EKUS)
    engine: list[Finding] = []
    profile: list[Finding] = []

    chain = _guarded("chain-format", engine, lambda: _read_chain(chain_pem, engine)) or []
    key: PrivateKeyTypes | None = None
    if key_pem is not None:
        key = _guarded("key-format", engine, lambda: _read_key(key_pem, passphrase, engine))
    elif public_key_only is None:
        engine.append(
            Finding(
                "key-format",
                "warning",
                "No private key was given: the key format and the key/certificate match were not checked.",
                "Pass the key file too (--key FILE), or the key id of a configured key.",
            )
        )
    if algorithm is None and public_key_only is not None:
        algorithm = public_key_only.algorithm

    leaf: x509.Certificate | None = None
    if chain:
        key_public = key.public_key() if key is not None else None
        ordered = _guarded("chain-order", engine, lambda: _order(chain, key_public, engine)) or chain
        leaf = ordered[0]
        issuer = ordered[1] if len(ordered) > 1 and _issued_by(leaf, ordered[1]) else None
        _run_checks(engine, _engine_checks(leaf, ordered, now, expiring_within_days, allowed))
        _run_checks(engine, _key_checks(leaf, ordered, key, public_key_only, algorithm))
        _run_checks(profile, _profile_checks(leaf, issuer))
    else:
        profile.append(
            Finding(
                "chain-format",
                "error",
                "There is no readable certificate to compare with the profile.",
                "Provide the certificate chain as PEM, leaf first.",
            )
        )

    state: str | None = None
    if test_sign is not None:
        static_errors = [f.check for f in engine if f.severity == "error"]
        state, finding = _run_test_sign(test_sign, static_errors)
        engine.append(finding)
        if state is not None and static_errors:
            engine.append(
                Finding(
                    "engine-test",
                    "warning",
                    f"The engine signed with this credential although these checks failed: "
                    f"{', '.join(static_errors)}. This engine build is more lenient than Hallmark's rules "
                    "(or the test used another key); other validators may refuse the result.",
                    "Fix the errors above anyway.",
                )
            )

    subject, issuer_name, not_after, fingerprint = _identity(leaf)
    return DoctorReport(
        engine_accepts=not any(f.severity == "error" for f in engine),
        engine_findings=_without_contradictions(engine),
        trust_list_issuable=not any(f.severity == "error" for f in profile),
        profile_findings=_without_contradictions(profile),
        test_sign=state,
        subject=subject,
        issuer=issuer_name,
        not_after=not_after,
        fingerprint=fingerprint,
    )


def _without_contradictions(findings: list[Finding]) -> tuple[Finding, ...]:
    """Drop an "ok" for a check that also found a problem (e.g. the links of a chain that had to be
    reordered first)."""
    flagged = {f.check for f in findings if f.severity != "ok"}
    return tuple(f for f in findings if f.severity != "ok" or f.check not in flagged)


def _identity(leaf: x509.Certificate | None) -> tuple[str | None, str | None, datetime | None, str | None]:
    if leaf is None:
        return None, None, None, None
    return (
        _safe(lambda: leaf.subject.rfc4514_string()),  # noqa: PLW0108 (the attribute access may raise)
        _safe(lambda: leaf.issuer.rfc4514_string()),  # noqa: PLW0108
        _safe(lambda: leaf.not_valid_after_utc),
        _safe(lambda: sha256_fingerprint(leaf)),
    )


_T = TypeVar("_T")
Check = tuple[str, Callable[[], Finding | list[Finding] | None]]


def _safe(fn: Callable[[], _T]) -> _T | None:
    try:
        return fn()
    except Exception:
        return None


def _guarded(slug: str, out: list[Finding], fn: Callable[[], _T]) -> _T | None:
    try:
        return fn()
    except Exception as exc:
        out.append(_uncheckable(slug, exc))
        return None


def _uncheckable(slug: str, exc: Exception) -> Finding:
    detail = exc.message if isinstance(exc, HallmarkError) else f"{type(exc).__name__}: {exc}"
    return Finding(
        slug,
        "error",
        f"This could not be checked: the certificate or key is malformed ({detail[:200]}).",
        "Re-export the certificate chain and key from their source (PEM, leaf first).",
    )


def _run_checks(out: list[Finding], checks: Sequence[Check]) -> None:
    for slug, check in checks:
        try:
            result = check()
        except Exception as exc:
            out.append(_uncheckable(slug, exc))
            continue
        if isinstance(result, Finding):
            out.append(result)
        elif result:
            out.extend(result)


# --- reading the inputs ---------------------------------------------------------------------------------


def _read_chain(pem: bytes, out: list[Finding]) -> list[x509.Certificate]:
    blocks = _CERT_BLOCK.findall(pem)
    chain: list[x509.Certificate] = []
    for number, block in enumerate(blocks, 1):
        try:
            chain.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            out.append(
                Finding(
                    "chain-format",
                    "error",
                    f"Certificate block {number} of the chain file is damaged and cannot be read.",
                    "Export the chain again from your CA's download (PEM, leaf first).",
                )
            )
    if b"PRIVATE KEY-----" in pem:
        out.append(
            Finding(
                "chain-format",
                "warning",
                "The chain file also holds a private key: anyone who may read the chain can read the key.",
                "Keep the key in its own file, readable by the service only (chmod 600).",
            )
        )
    if blocks:
        if chain and not any(f.check == "chain-format" and f.severity == "error" for f in out):
            out.append(
                Finding("chain-format", "ok", f"The chain file holds {len(chain)} PEM certificate(s).")
            )
        return chain
    try:
        der = x509.load_der_x509_certificate(pem)
    except ValueError:
        out.append(
            Finding(
                "chain-format",
                "error",
                "The chain file holds no certificate (no -----BEGIN CERTIFICATE----- block).",
                "Provide the certificate chain as PEM: the leaf first, then its intermediate CA(s).",
            )
        )
        return []
    out.append(
        Finding(
            "chain-format",
            "error",
            "The certificate is in binary DER form; Hallmark needs PEM.",
            "Convert it: openssl x509 -inform DER -in cert.der -out chain.pem (then append the "
            "intermediate CA certificates in PEM).",
        )
    )
    return [der]


def _read_key(pem: bytes, passphrase: bytes | None, out: list[Finding]) -> PrivateKeyTypes | None:
    if b"-----BEGIN PRIVATE KEY-----" in pem or b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem:
        encrypted = b"ENCRYPTED PRIVATE KEY" in pem
        out.append(
            Finding(
                "key-format", "ok", "The private key is PKCS#8 PEM" + (" (encrypted)." if encrypted else ".")
            )
        )
    elif b"-----BEGIN EC PRIVATE KEY-----" in pem or b"-----BEGIN RSA PRIVATE KEY-----" in pem:
        kind, header = (
            ("EC (SEC1)", "BEGIN EC PRIVATE KEY")
            if b"BEGIN EC PRIVATE KEY" in pem
            else ("RSA (PKCS#1)", "BEGIN RSA PRIVATE KEY")
        )
        legacy_encrypted = b"Proc-Type: 4,ENCRYPTED" in pem
        out.append(
            Finding(
                "key-format",
                "error",
                f"The private key is in the old {kind} format ('{header}'); the engine and Hallmark read "
                "only PKCS#8 ('BEGIN PRIVATE KEY').",
                "Convert it: "
                + (
                    "openssl pkcs8 -topk8 -in OLD.pem -out key.pem (asks for the old passphrase; "
                    "add -nocrypt to store it unencrypted)"
                    if legacy_encrypted
                    else _TO_PKCS8
                ),
            )
        )
    elif b"-----BEGIN OPENSSH PRIVATE KEY-----" in pem:
        out.append(
            Finding(
                "key-format",
                "error",
                "The private key is an OpenSSH key; the engine and Hallmark read only PKCS#8 PEM.",
                "Convert a copy: ssh-keygen -p -m PKCS8 -f COPY_OF_KEY (rewrites the file in place).",
            )
        )
        return _load(lambda: serialization.load_ssh_private_key(pem, passphrase), out)
    elif b"-----BEGIN CERTIFICATE-----" in pem and b"PRIVATE KEY" not in pem:
        out.append(
            Finding(
                "key-format",
                "error",
                "The key file holds a certificate, not a private key (were the two files swapped?).",
                "Pass the private key file (-----BEGIN PRIVATE KEY-----) as the key.",
            )
        )
        return None
    elif pem[:1] == b"\x30":
        out.append(
            Finding(
                "key-format",
                "error",
                "The private key is binary DER; Hallmark reads PKCS#8 PEM.",
                "Convert it: openssl pkey -inform DER -in key.der -out key.pem",
            )
        )
        return _load(lambda: serialization.load_der_private_key(pem, passphrase), out)
    else:
        out.append(
            Finding(
                "key-format",
                "error",
                "The key file holds no PEM private key.",
                "Pass the private key as PKCS#8 PEM (-----BEGIN PRIVATE KEY-----).",
            )
        )
        return None
    return _load(lambda: serialization.load_pem_private_key(pem, passphrase), out)


def _load(fn: Callable[[], PrivateKeyTypes], out: list[Finding]) -> PrivateKeyTypes | None:
    try:
        key = fn()
    except TypeError as exc:
        given = "not encrypted" in str(exc)
        out.append(
            Finding(
                "key-unreadable",
                "error",
                "A passphrase was given, but the key is not encrypted."
                if given
                else "The private key is encrypted and no passphrase was given.",
                "Drop the passphrase setting."
                if given
                else "Set the key's passphrase (HALLMARK_KEY_PASSPHRASE).",
            )
        )
        return None
    except (ValueError, UnsupportedAlgorithm):
        out.append(
            Finding(
                "key-unreadable",
                "error",
                "The private key cannot be read: wrong passphrase, damaged file, or unsupported key type.",
                "Check the passphrase; export the key again as PKCS#8 PEM.",
            )
        )
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        out.append(
            Finding(
                "key-type",
                "error",
                f"The private key is {key_kind(key.public_key())}: C2PA signs only with EC, RSA or Ed25519.",
                "Generate a P-256 key: hallmark keys generate --alg es256",
            )
        )
    return key


def _order(
    chain: list[x509.Certificate], key_public: PublicKeyTypes | None, out: list[Finding]
) -> list[x509.Certificate]:
    """The chain with the leaf first. A leaf found elsewhere is reported (reversed chain, leaf not first)."""
    index: int | None = None
    if key_public is not None:
        # The certificate of the key is the leaf, unless it is a CA further down (a mismatched key).
        spki = _spki(key_public)
        index = next(
            (i for i, c in enumerate(chain) if _spki(c.public_key()) == spki and (i == 0 or not _is_ca(c))),
            None,
        )
    if index is None:
        issuers = {
            i for i, c in enumerate(chain) for other in chain if other is not c and _issued_by(other, c)
        }
        index = next((i for i, c in enumerate(chain) if not _is_ca(c) and i not in issuers), 0)
    if index == 0:
        return chain
    leaf = chain[index]
    rest = [c for i, c in enumerate(chain) if i != index]
    ordered = [leaf]
    while True:
        parent = next((c for c in rest if _issued_by(ordered[-1], c) and c is not ordered[-1]), None)
        if parent is None:
            break
        ordered.append(parent)
        rest.remove(parent)
    ordered.extend(rest)
    reversed_chain = index == len(chain) - 1 and ordered == chain[::-1]
    out.append(
        Finding(
            "chain-order",
            "error",
            (
                f"The chain is in reverse order: the leaf certificate ({_name(leaf)}) is last and the CA "
                "certificates come first. The engine takes the first certificate as the signer."
                if reversed_chain
                else f"The leaf certificate ({_name(leaf)}) is number {index + 1} in the chain, not first. "
                "The engine takes the first certificate as the signer."
            ),
            "Reorder the chain file: the leaf first, then the CA that issued it, then that CA's issuer "
            "(e.g. cat leaf.pem intermediate.pem > chain.pem).",
        )
    )
    return ordered


# --- what the engine needs ------------------------------------------------------------------------------


def _engine_checks(
    leaf: x509.Certificate,
    ordered: list[x509.Certificate],
    now: datetime,
    expiring_within_days: int,
    allowed: set[str],
) -> list[Check]:
    return [
        ("chain-order", lambda: _chain_links(ordered)),
        ("chain-validity", lambda: _chain_validity(ordered, now)),
        ("ca-flag", lambda: _engine_ca_flag(leaf)),
        ("key-usage", lambda: _engine_key_usage(leaf)),
        ("aki", lambda: _engine_aki(leaf)),
        ("eku", lambda: _engine_eku(leaf, allowed)),
        ("validity", lambda: _engine_validity(leaf, now, expiring_within_days)),
        ("key-strength", lambda: _engine_key_strength(leaf)),
        ("signature-algorithm", lambda: _signature_algorithm(leaf, profile=False)),
        ("critical-extension", lambda: _engine_critical(leaf)),
    ]


def _path(ordered: list[x509.Certificate]) -> list[int]:
    """Indices of the certificates on the path up from the leaf, each issued by the next."""
    path = [0]
    while True:
        parent = next(
            (j for j, c in enumerate(ordered) if j not in path and _issued_by(ordered[path[-1]], c)), None
        )
        if parent is None:
            return path
        path.append(parent)


def _chain_links(ordered: list[x509.Certificate]) -> list[Finding]:
    out: list[Finding] = []
    broken = [i for i in range(len(ordered) - 1) if not _issued_by(ordered[i], ordered[i + 1])]
    if broken:
        path = _path(ordered)
        stray = [i for i in range(len(ordered)) if i not in path]
        parts = []
        if path != list(range(len(path))):
            parts.append(
                "the chain is out of order (the path up from the leaf is certificates "
                + ", ".join(str(i + 1) for i in path)
                + ")"
            )
        if stray:
            parts.append(
                "; ".join(f"certificate {i + 1} ({_name(ordered[i])})" for i in stray)
                + (" is" if len(stray) == 1 else " are")
                + " not on the leaf's path"
            )
        first = broken[0]
        out.append(
            Finding(
                "chain-order",
                "warning",
                f"Certificate {first + 2} did not issue certificate {first + 1} ({_name(ordered[first])}): "
                f"{'; '.join(parts)}. The engine signs, but validators cannot build the path to a trust "
                "anchor: credentials show as untrusted.",
                "List each certificate followed by the one that issued it (leaf, intermediate(s)) and drop "
                "certificates that are not on the path.",
            )
        )
    last = ordered[-1]
    self_issued = last.issuer == last.subject and _issued_by(last, last)
    if len(ordered) == 1 and self_issued:
        out.append(
            Finding(
                "self-signed",
                "warning",
                "The certificate is self-signed: signatures validate but show as untrusted everywhere except "
                "where this very certificate is configured as a trust anchor.",
                "Use a certificate issued by a CA (`hallmark keys init --dev` for development).",
            )
        )
    elif not self_issued and not any(_issued_by(last, c) for c in ordered):
        if len(ordered) == 1:
            out.append(
                Finding(
                    "chain-incomplete",
                    "warning",
                    f"The chain file holds only the leaf; its issuer ({last.issuer.rfc4514_string()}) is "
                    "missing. Validators can build the path only if they hold that CA as a trust anchor.",
                    "Append the intermediate CA certificate(s) after the leaf in the chain file.",
                )
            )
    elif len(ordered) > 1 and self_issued and _is_ca(last):
        out.append(
            Finding(
                "chain-root",
                "warning",
                f"The chain ends with the self-signed root ({_name(last)}). C2PA signers leave the trust "
                "anchor out: validators take it from their trust list, and it only adds bytes to every file.",
                "Remove the root certificate from the chain file.",
            )
        )
    if not out:
        out.append(
            Finding(
                "chain-order",
                "ok",
                f"Leaf first; each of the {len(ordered)} certificates is issued by the next."
                if len(ordered) > 1
                else "The chain is the leaf alone.",
            )
        )
    return out


def _chain_validity(ordered: list[x509.Certificate], now: datetime) -> list[Finding]:
    out: list[Finding] = []
    for number, cert in enumerate(ordered[1:], 2):
        if now > cert.not_valid_after_utc:
            problem = f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        elif now < cert.not_valid_before_utc:
            problem = f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        else:
            continue
        out.append(
            Finding(
                "chain-validity",
                "warning",
                f"CA certificate {number} ({_name(cert)}) {problem}: the engine signs, but validators "
                "cannot build a valid path, so credentials show as untrusted.",
                "Download the current CA certificates from your CA and rebuild the chain file.",
            )
        )
    return out


def _engine_ca_flag(leaf: x509.Certificate) -> Finding:
    if _is_ca(leaf):
        return Finding(
            "ca-flag",
            "error",
            "The signing certificate is a CA certificate (basicConstraints CA:TRUE); the engine refuses a "
            "CA as a claim signer.",
            "Sign with an end-entity certificate (CA:FALSE) issued by the CA, never with the CA itself.",
        )
    return Finding("ca-flag", "ok", "The signing certificate is not a CA (CA:FALSE).")


def _engine_key_usage(leaf: x509.Certificate) -> Finding:
    ku = _ext(leaf, x509.KeyUsage)
    fix = (
        "Ask the CA for key usage digitalSignature (+ nonRepudiation), critical, and nothing like "
        "keyCertSign."
    )
    if ku is None:
        return Finding(
            "key-usage",
            "error",
            "The certificate has no Key Usage extension; the engine needs one with digitalSignature.",
            fix,
        )
    bits = key_usage_bits(ku.value)
    if "keyCertSign" in bits:
        return Finding(
            "key-usage",
            "error",
            "The key usage includes keyCertSign (may issue certificates); the engine refuses it on a claim "
            "signer.",
            fix,
        )
    if not bits & {"digitalSignature", "nonRepudiation"}:
        return Finding(
            "key-usage",
            "error",
            f"The key usage ({', '.join(sorted(bits)) or 'empty'}) does not allow digital signatures.",
            fix,
        )
    if "digitalSignature" not in bits:
        return Finding(
            "key-usage",
            "warning",
            "The key usage has nonRepudiation but not digitalSignature: this engine accepts it, but the C2PA "
            "specification requires digitalSignature and other validators may refuse it.",
            fix,
        )
    return Finding("key-usage", "ok", f"Key usage: {', '.join(sorted(bits))}.")


def _engine_aki(leaf: x509.Certificate) -> Finding:
    if _ext(leaf, x509.AuthorityKeyIdentifier) is None:
        return Finding(
            "aki",
            "error",
            "The certificate has no Authority Key Identifier; the engine refuses signers without one.",
            "Ask the CA to reissue it with authorityKeyIdentifier = keyid (every CA under the C2PA policy "
            "adds it).",
        )
    return Finding("aki", "ok", "The Authority Key Identifier is present.")


def _engine_eku(leaf: x509.Certificate, allowed: set[str]) -> Finding:
    eku = _ext(leaf, x509.ExtendedKeyUsage)
    want = (
        " or ".join(_EKU_NAMES.get(x509.ObjectIdentifier(o), o) + f" ({o})" for o in sorted(allowed))
        or "(nothing configured)"
    )
    fix = (
        "Ask the CA for EKU c2pa-kp-claimSigning (1.3.6.1.4.1.62558.2.1) + emailProtection "
        "(1.3.6.1.5.5.7.3.4): the engine accepts it and it fits the C2PA policy."
    )
    if eku is None:
        return Finding(
            "eku", "error", f"The certificate has no Extended Key Usage; the engine needs {want}.", fix
        )
    usages = list(eku.value)
    have = eku_names(usages)
    if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages:
        return Finding(
            "eku", "error", f"The EKU ({have}) includes anyExtendedKeyUsage, which the engine refuses.", fix
        )
    mixed = [
        n
        for o, n in (
            (ExtendedKeyUsageOID.TIME_STAMPING, "timeStamping"),
            (ExtendedKeyUsageOID.OCSP_SIGNING, "OCSPSigning"),
        )
        if o in usages
    ]
    if mixed:
        return Finding(
            "eku",
            "error",
            f"The EKU ({have}) also allows {' and '.join(mixed)}: a claim signer may not double as a "
            "time-stamping or OCSP signer, and the engine refuses it.",
            fix,
        )
    if not {o.dotted_string for o in usages} & allowed:
        extra = ""
        if C2PA_CLAIM_SIGNING_EKU in usages or DOCUMENT_SIGNING_EKU in usages:
            extra = (
                " Its c2pa-kp-claimSigning/documentSigning usage works only when the engine's trust "
                "configuration lists it on both the signing and the verifying side."
            )
        return Finding("eku", "error", f"The EKU is {have}; the engine needs {want}.{extra}", fix)
    return Finding("eku", "ok", f"Extended key usage: {have}.")


def _engine_validity(leaf: x509.Certificate, now: datetime, within: int) -> Finding:
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    renew = "Renew it: a new certificate for the key (or a new key + CSR: `hallmark keys generate`)."
    if now > end:
        return Finding(
            "validity",
            "error",
            f"The certificate expired on {end:%Y-%m-%d %H:%M} UTC; the engine refuses to sign with it.",
            renew,
        )
    if now < start:
        return Finding(
            "validity",
            "error",
            f"The certificate is not valid yet: it starts {start:%Y-%m-%d %H:%M} UTC (now "
            f"{now:%Y-%m-%d %H:%M} UTC); the engine refuses to sign with it.",
            "Check this machine's clock, or wait until the start date.",
        )
    left = end - now
    if left <= timedelta(days=within):
        return Finding(
            "expiring",
            "warning",
            f"The certificate expires on {end:%Y-%m-%d} UTC, in {_days(left)} (within {within} days). "
            "Without a time-stamp every file it signed turns invalid then.",
            renew + " Sign with a time-stamp authority so signed files stay valid.",
        )
    return Finding("validity", "ok", f"Valid from {start:%Y-%m-%d} to {end:%Y-%m-%d} UTC.")


def _engine_key_strength(leaf: x509.Certificate) -> Finding:
    public = leaf.public_key()
    problem = key_type_problem(public)
    if problem is None:
        return Finding("key-strength", "ok", f"The certificate's key is {_describe(public)}.")
    slug = "key-strength" if isinstance(public, rsa.RSAPublicKey) else "key-type"
    return Finding(
        slug,
        "error",
        f"The engine refuses this certificate: {problem}.",
        "Generate a new key (P-256: `hallmark keys generate --alg es256`) and get a certificate for it.",
    )


def _describe(public: PublicKeyTypes) -> str:
    if isinstance(public, rsa.RSAPublicKey):
        return f"RSA-{public.key_size}"
    return key_kind(public)


def _signature_algorithm(cert: x509.Certificate, *, profile: bool) -> Finding:
    oid = cert.signature_algorithm_oid
    if oid in _SIGNATURE_ALGORITHMS:
        return Finding(
            "signature-algorithm", "ok", f"The CA signed the certificate with {_SIGNATURE_ALGORITHMS[oid]}."
        )
    name = _WEAK_SIGNATURE_ALGORITHMS.get(oid, oid.dotted_string)
    rule = (
        _rule("Signature Algorithm: RSA (PSS or SHA2 variants), ECDSA (SHA2 variants), or Ed25519")
        if profile
        else "The engine accepts certificates signed with SHA-256/384/512 (ECDSA, RSA, RSA-PSS) or Ed25519"
    )
    return Finding(
        "signature-algorithm",
        "error",
        f"{rule}; this one is signed with {name}.",
        "Ask the CA to reissue the certificate signed with SHA-256 or stronger.",
    )


def _engine_critical(leaf: x509.Certificate) -> Finding:
    unknown = [e.oid.dotted_string for e in leaf.extensions if e.critical and e.oid not in _KNOWN_CRITICAL]
    if unknown:
        return Finding(
            "critical-extension",
            "error",
            f"The certificate marks extension(s) {', '.join(unknown)} critical; the engine does not know "
            "them and refuses the certificate. (The C2PA assurance-level and CPL-record extensions must be "
            "non-critical.)",
            "Ask the CA to reissue the certificate with these extensions non-critical.",
        )
    return Finding("critical-extension", "ok", "No unknown critical extension.")


# --- the key --------------------------------------------------------------------------------------------


def _key_checks(
    leaf: x509.Certificate,
    ordered: list[x509.Certificate],
    key: PrivateKeyTypes | None,
    token: KeySigner | None,
    algorithm: str | None,
) -> list[Check]:
    checks: list[Check] = []
    signer_kind = key_kind(key.public_key()) if key is not None else key_kind(leaf.public_key())
    checks.append(("algorithm", lambda: _algorithm(algorithm, signer_kind)))
    if key is not None:
        checks.append(("key-mismatch", lambda: _key_mismatch(key.public_key(), leaf, ordered)))
    elif token is not None:
        algorithm_ok = algorithm is not None and _ALGORITHM_KEY.get(algorithm) == signer_kind
        if algorithm_ok and algorithm is not None:
            alg = algorithm
            checks.append(("key-mismatch", lambda: _token_probe(token, alg, leaf)))
    return checks


def _algorithm(algorithm: str | None, kind: str) -> Finding | None:
    default = _DEFAULT_ALGORITHM.get(kind)
    if default is None:
        return None  # an unusable key: the key-type finding says why
    if algorithm is None:
        return Finding("algorithm", "ok", f"The {kind} key signs with {default}.")
    needs = _ALGORITHM_KEY.get(algorithm)
    if needs is None:
        return Finding(
            "algorithm",
            "error",
            f"Unknown signing algorithm {algorithm!r}.",
            f"Use one of {', '.join(_ALGORITHM_KEY)}" + (f" ({default} for this key)." if default else "."),
        )
    if needs != kind:
        return Finding(
            "algorithm",
            "error",
            f"The algorithm {algorithm} needs {'an' if needs[0] in 'RE' else 'a'} {needs} key, but the key "
            f"is {kind}; the engine refuses the signature.",
            (f"Configure the algorithm {default} for this key" if default else "Use a supported key")
            + f", or generate a {needs} key for {algorithm}.",
        )
    return Finding("algorithm", "ok", f"The algorithm {algorithm} fits the {kind} key.")


def _key_mismatch(public: PublicKeyTypes, leaf: x509.Certificate, ordered: list[x509.Certificate]) -> Finding:
    spki = _spki(public)
    if _spki(leaf.public_key()) == spki:
        return Finding("key-mismatch", "ok", "The private key belongs to the leaf certificate.")
    owner = next((i for i, c in enumerate(ordered) if _spki(c.public_key()) == spki), None)
    where = (
        f" It belongs to certificate {owner + 1} of the chain ({_name(ordered[owner])})."
        if owner is not None
        else ""
    )
    return Finding(
        "key-mismatch",
        "error",
        f"The private key does not belong to the leaf certificate ({_name(leaf)}).{where} The engine refuses "
        "the signature.",
        "Use the key the certificate was issued for (compare `openssl pkey -in key.pem -pubout` with "
        "`openssl x509 -in chain.pem -noout -pubkey`), or get a certificate for this key.",
    )


def _token_probe(token: KeySigner, algorithm: str, leaf: x509.Certificate) -> Finding:
    probe = b"hallmark key doctor probe"
    try:
        signature = token.sign(probe)
    except Exception as exc:
        detail = exc.message if isinstance(exc, HallmarkError) else type(exc).__name__
        return Finding(
            "key-unreadable",
            "error",
            f"The key could not sign a probe ({detail}).",
            "Check that the token is present and unlocked (PIN) and that the key id is right.",
        )
    if _verifies(leaf.public_key(), algorithm, signature, probe):
        return Finding("key-mismatch", "ok", "The key in the token signs for the leaf certificate.")
    return Finding(
        "key-mismatch",
        "error",
        f"A probe signed by the key does not verify with the leaf certificate ({_name(leaf)}): the key and "
        "the certificate do not belong together.",
        "Select the token key the certificate was issued for, or get a certificate for this key.",
    )


def _verifies(public: PublicKeyTypes, algorithm: str, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, data)
        elif isinstance(public, rsa.RSAPublicKey):
            digest = _HASH_FOR[algorithm]()
            public.verify(signature, data, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            scheme = ec.ECDSA(_HASH_FOR[algorithm]())
            try:
                public.verify(signature, data, scheme)
            except InvalidSignature:
                size = (public.curve.key_size + 7) // 8
                if len(signature) != 2 * size:
                    raise
                r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
                public.verify(encode_dss_signature(r, s), data, scheme)
        else:
            return False
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


# --- the C2PA Certificate Policy's claim-signing leaf profile -------------------------------------------


def _profile_checks(leaf: x509.Certificate, issuer: x509.Certificate | None) -> list[Check]:
    return [
        ("version", lambda: _p_version(leaf)),
        ("serial", lambda: _p_serial(leaf)),
        ("signature-algorithm", lambda: _signature_algorithm(leaf, profile=True)),
        ("validity-length", lambda: _p_validity_length(leaf)),
        ("subject", lambda: _p_subject(leaf)),
        ("key-type", lambda: _p_key_type(leaf)),
        ("ski", lambda: _p_ski(leaf)),
        ("aki", lambda: _p_aki(leaf, issuer)),
        ("key-usage", lambda: _p_key_usage(leaf)),
        ("ca-flag", lambda: _p_basic_constraints(leaf)),
        ("eku", lambda: _p_eku(leaf)),
        ("policy", lambda: _p_policy(leaf)),
        ("aia-ocsp", lambda: _p_aia(leaf)),
        ("crl-dp", lambda: _p_crl_dp(leaf)),
        ("assurance-level", lambda: _p_assurance_level(leaf)),
        ("cpl-record", lambda: _p_cpl_record(leaf)),
    ]


def _rule(text: str) -> str:
    return f"{RULE_PREFIX}, {text}"


def _p_version(leaf: x509.Certificate) -> Finding:
    if leaf.version is x509.Version.v3:
        return Finding("version", "ok", "X.509 version 3.")
    return Finding("version", "error", _rule("Version: v3; this certificate is v1."), _CA_ISSUES_IT)


def _p_serial(leaf: x509.Certificate) -> Finding:
    serial = leaf.serial_number
    if serial > 0 and serial.bit_length() <= 159:
        return Finding("serial", "ok", "Serial number: a positive integer of at most 20 octets.")
    return Finding(
        "serial",
        "error",
        _rule("Serial Number: positive integer up to 20 octets; ")
        + ("this one is not positive." if serial <= 0 else f"this one has {serial.bit_length()} bits."),
        _CA_ISSUES_IT,
    )


def _declared_level(leaf: x509.Certificate) -> str | None:
    ext = _raw_ext(leaf, C2PA_ASSURANCE_LEVEL)
    if ext is None or not isinstance(ext.value, x509.UnrecognizedExtension):
        return None
    return _assurance_level_value(ext.value.value)


def _p_validity_length(leaf: x509.Certificate) -> Finding:
    level = _declared_level(leaf)
    limit, label = _AL_LIMITS.get(level or C2PA_AL1, _AL_LIMITS[C2PA_AL1])
    length = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    if length > timedelta(days=limit):
        return Finding(
            "validity-length",
            "error",
            _rule(
                f"Validity Period: max {limit} days ({label}); this certificate is valid for {_days(length)}."
            ),
            f"Certificates under the C2PA policy live at most {limit} days: plan automatic renewal. "
            + _CA_ISSUES_IT,
        )
    return Finding("validity-length", "ok", f"Validity period {_days(length)} (max {limit}, {label}).")


def _p_subject(leaf: x509.Certificate) -> Finding:
    missing = [
        label
        for label, oid in (
            ("C", NameOID.COUNTRY_NAME),
            ("O", NameOID.ORGANIZATION_NAME),
            ("CN", NameOID.COMMON_NAME),
        )
        if not leaf.subject.get_attributes_for_oid(oid)
    ]
    if missing:
        return Finding(
            "subject",
            "error",
            _rule(
                f"Subject Name: requires C, O and CN (matching the CPL entry); {', '.join(missing)} missing."
            ),
            "Request the certificate with country (C), organization (O) and common name (CN) exactly as in "
            "your Conforming Products List entry (`hallmark keys generate --org ... --cn ...`).",
        )
    return Finding(
        "subject",
        "ok",
        f"Subject {_name(leaf)} has C, O and CN (it must also match your CPL entry; not checked here).",
    )


def _p_key_type(leaf: x509.Certificate) -> Finding:
    problem = key_type_problem(leaf.public_key())
    if problem:
        return Finding(
            "key-type",
            "error",
            _rule(f"Subject Public Key Info: RSA 2048+ bits, EC P-256/P-384/P-521 or Ed25519; {problem}."),
            "Generate a new key (`hallmark keys generate --alg es256`) and request a certificate for it.",
        )
    return Finding("key-type", "ok", f"Public key {_describe(leaf.public_key())}.")


def _criticality(ext: x509.Extension[x509.ExtensionType], critical: bool) -> str | None:
    if ext.critical == critical:
        return None
    return "it is marked critical" if ext.critical else "it is not marked critical"


def _p_ski(leaf: x509.Certificate) -> Finding:
    rule = "Subject Key Identifier: MUST, non-critical, SHA-1 of the public key (RFC 5280 method 1)"
    ski = _ext(leaf, x509.SubjectKeyIdentifier)
    if ski is None:
        return Finding("ski", "error", _rule(f"{rule}; it is missing."), _CA_ISSUES_IT)
    problems = [p for p in [_criticality(ski, False)] if p]
    if ski.value.digest != x509.SubjectKeyIdentifier.from_public_key(leaf.public_key()).digest:
        problems.append("its value is not the method-1 hash of the public key")
    if problems:
        return Finding("ski", "error", _rule(f"{rule}; {'; '.join(problems)}."), _CA_ISSUES_IT)
    return Finding("ski", "ok", "Subject Key Identifier present (method 1).")


def _p_aki(leaf: x509.Certificate, issuer: x509.Certificate | None) -> Finding:
    rule = "Authority Key Identifier: MUST, non-critical, keyIdentifier matching the issuing CA's SKI"
    aki = _ext(leaf, x509.AuthorityKeyIdentifier)
    if aki is None:
        return Finding("aki", "error", _rule(f"{rule}; it is missing."), _CA_ISSUES_IT)
    problems = [p for p in [_criticality(aki, False)] if p]
    if aki.value.key_identifier is None:
        problems.append("it has no keyIdentifier (only issuer/serial)")
    elif issuer is not None:
        issuer_ski = _ext(issuer, x509.SubjectKeyIdentifier)
        expected = (
            issuer_ski.value.digest
            if issuer_ski is not None
            else x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest
        )
        if aki.value.key_identifier != expected:
            problems.append(f"its keyIdentifier does not match the SKI of the issuer ({_name(issuer)})")
    if problems:
        return Finding("aki", "error", _rule(f"{rule}; {'; '.join(problems)}."), _CA_ISSUES_IT)
    return Finding(
        "aki",
        "ok",
        "Authority Key Identifier matches the issuing CA."
        if issuer is not None
        else "Authority Key Identifier present (the issuing CA is not in the chain to compare).",
    )


def _p_key_usage(leaf: x509.Certificate) -> Finding:
    rule = "Key Usage: MUST, critical, digitalSignature and nonRepudiation (contentCommitment)"
    ku = _ext(leaf, x509.KeyUsage)
    if ku is None:
        return Finding("key-usage", "error", _rule(f"{rule}; it is missing."), _CA_ISSUES_IT)
    bits = key_usage_bits(ku.value)
    problems = [p for p in [_criticality(ku, True)] if p]
    missing = [b for b in ("digitalSignature", "nonRepudiation") if b not in bits]
    if missing:
        problems.append(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set")
    extra = sorted(bits - {"digitalSignature", "nonRepudiation"})
    if extra:
        problems.append(f"it also allows {', '.join(extra)}")
    if problems:
        return Finding("key-usage", "error", _rule(f"{rule}; {'; '.join(problems)}."), _CA_ISSUES_IT)
    return Finding("key-usage", "ok", "Key usage digitalSignature + nonRepudiation, critical.")


def _p_basic_constraints(leaf: x509.Certificate) -> Finding:
    rule = "Basic Constraints: MUST, critical, cA=FALSE"
    bc = _ext(leaf, x509.BasicConstraints)
    if bc is None:
        return Finding("ca-flag", "error", _rule(f"{rule}; it is missing."), _CA_ISSUES_IT)
    problems = [p for p in [_criticality(bc, True)] if p]
    if bc.value.ca:
        problems.append("cA is TRUE")
    if problems:
        return Finding("ca-flag", "error", _rule(f"{rule}; {'; '.join(problems)}."), _CA_ISSUES_IT)
    return Finding("ca-flag", "ok", "Basic constraints cA=FALSE, critical.")


def _p_eku(leaf: x509.Certificate) -> Finding:
    rule = (
        "Extended Key Usage: MUST, non-critical, c2pa-kp-claimSigning (1.3.6.1.4.1.62558.2.1) plus "
        "emailProtection or documentSigning"
    )
    eku = _ext(leaf, x509.ExtendedKeyUsage)
    if eku is None:
        return Finding("eku", "error", _rule(f"{rule}; it is missing."), _CA_ISSUES_IT)
    usages = list(eku.value)
    problems = [p for p in [_criticality(eku, False)] if p]
    if C2PA_CLAIM_SIGNING_EKU not in usages:
        problems.append("c2pa-kp-claimSigning is missing")
    if ExtendedKeyUsageOID.EMAIL_PROTECTION not in usages and DOCUMENT_SIGNING_EKU not in usages:
        problems.append("neither emailProtection nor documentSigning is present")
    if problems:
        return Finding(
            "eku",
            "error",
            _rule(f"{rule}; it has {eku_names(usages)}: {'; '.join(problems)}."),
            _CA_ISSUES_IT,
        )
    return Finding("eku", "ok", f"Extended key usage {eku_names(usages)}.")


def _p_policy(leaf: x509.Certificate) -> Finding:
    rule = (
        "Certificate Policies: MUST, non-critical, containing 1.3.6.1.4.1.62558.1.1 (c2pa-certificate-policy)"
    )
    policies = _ext(leaf, x509.CertificatePolicies)
    if policies is None:
        return Finding("policy", "error", _rule(f"{rule}; the extension is missing."), _CA_ISSUES_IT)
    problems = [p for p in [_criticality(policies, False)] if p]
    ids = [p.policy_identifier for p in policies.value]
    if C2PA_POLICY not in ids:
        problems.append(f"it lists {', '.join(o.dotted_string for o in ids) or 'no policy'}")
    if problems:
        return Finding("policy", "error", _rule(f"{rule}; {'; '.join(problems)}."), _CA_ISSUES_IT)
    return Finding("policy", "ok", "Certificate policy 1.3.6.1.4.1.62558.1.1 (C2PA) present.")


def _uri(name: x509.GeneralName) -> str | None:
    return name.value if isinstance(name, x509.UniformResourceIdentifier) else None


def _p_aia(leaf: x509.Certificate) -> list[Finding]:
    rule = (
        "Authority Information Access: MUST, non-critical, with an id-ad-ocsp entry whose location is an "
        "HTTP URI"
    )
    aia = _ext(leaf, x509.AuthorityInformationAccess)
    if aia is None:
        return [Finding("aia-ocsp", "error", _rule(f"{rule}; the extension is missing."), _CA_ISSUES_IT)]
    problems = [p for p in [_criticality(aia, False)] if p]
    ocsp = [
        _uri(d.access_location) for d in aia.value if d.access_method == AuthorityInformationAccessOID.OCSP
    ]
    issuers = [
        _uri(d.access_location)
        for d in aia.value
        if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
    ]
    if not ocsp:
        problems.append("it has no OCSP entry")
    elif not any(u and u.lower().startswith("http://") for u in ocsp):
        problems.append(f"the OCSP location is not an http:// URI ({', '.join(str(u) for u in ocsp)})")
    out = [
        Finding("aia-ocsp", "error", _rule(f"{rule}; {'; '.join(problems)}."), _CA_ISSUES_IT)
        if problems
        else Finding("aia-ocsp", "ok", f"OCSP responder {next(u for u in ocsp if u)}.")
    ]
    if not issuers:
        out.append(
            Finding(
                "aia-ca-issuers",
                "warning",
                _rule(
                    "Authority Information Access: SHOULD include an id-ad-caIssuers entry; there is none."
                ),
                _CA_ISSUES_IT,
            )
        )
    elif not all(u and u.lower().startswith("http://") for u in issuers):
        out.append(
            Finding(
                "aia-ca-issuers",
                "error",
                _rule(
                    "Authority Information Access: accessLocation must be an HTTP URI; the caIssuers "
                    f"entry is {', '.join(str(u) for u in issuers)}."
                ),
                _CA_ISSUES_IT,
            )
        )
    return out


def _p_crl_dp(leaf: x509.Certificate) -> Finding | None:
    cdp = _ext(leaf, x509.CRLDistributionPoints)
    if cdp is None:
        return None  # optional
    rule = "CRL Distribution Points (optional): non-critical, with an HTTP URI"
    problems = [p for p in [_criticality(cdp, False)] if p]
    uris = [_uri(n) for dp in cdp.value for n in (dp.full_name or [])]
    if not any(u and u.lower().startswith("http://") for u in uris):
        problems.append("it has no http:// URI")
    if problems:
        return Finding("crl-dp", "error", _rule(f"{rule}; {'; '.join(problems)}."), _CA_ISSUES_IT)
    return Finding("crl-dp", "ok", "CRL distribution point over HTTP.")


def _p_assurance_level(leaf: x509.Certificate) -> Finding:
    rule = (
        "C2PA Assurance Level (1.3.6.1.4.1.62558.3): MUST, non-critical, value 1.3.6.1.4.1.62558.3.10 (AL1)"
    )
    ext = _raw_ext(leaf, C2PA_ASSURANCE_LEVEL)
    if ext is None:
        return Finding("assurance-level", "error", _rule(f"{rule}; the extension is missing."), _CA_ISSUES_IT)
    problems = [p for p in [_criticality(ext, False)] if p]
    value = (
        _assurance_level_value(ext.value.value) if isinstance(ext.value, x509.UnrecognizedExtension) else None
    )
    if value is None:
        problems.append("its value is not a DER-encoded OID")
    elif value not in _AL_LIMITS:
        problems.append(f"its value {value} is not a C2PA assurance level")
    if problems:
        return Finding("assurance-level", "error", _rule(f"{rule}; {'; '.join(problems)}."), _CA_ISSUES_IT)
    assert value is not None
    return Finding("assurance-level", "ok", f"Assurance level {value} ({_AL_LIMITS[value][1]}).")


def _p_cpl_record(leaf: x509.Certificate) -> Finding:
    rule = (
        "C2PA CPL Record ID (1.3.6.1.4.1.62558.4): MUST, non-critical, UTF8String of 36 characters "
        "(the CPL UUID)"
    )
    ext = _raw_ext(leaf, C2PA_CPL_RECORD)
    if ext is None:
        return Finding(
            "cpl-record",
            "error",
            _rule(f"{rule}; the extension is missing."),
            "Get your product listed on the Conforming Products List; the CA copies its record id into the "
            "certificate. " + _CA_ISSUES_IT,
        )
    problems = [p for p in [_criticality(ext, False)] if p]
    text: str | None = None
    if isinstance(ext.value, x509.UnrecognizedExtension):
        try:
            tag, body, end = _der_tlv(ext.value.value)
            if tag == 0x0C and end == len(ext.value.value):
                text = body.decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            text = None
    if text is None:
        problems.append("its value is not a DER UTF8String")
    else:
        try:
            canonical = str(uuid.UUID(text)) == text.lower() and len(text) == 36
        except ValueError:
            canonical = False
        if not canonical:
            problems.append(f"{text!r} is not a 36-character UUID")
    if problems:
        return Finding("cpl-record", "error", _rule(f"{rule}; {'; '.join(problems)}."), _CA_ISSUES_IT)
    return Finding("cpl-record", "ok", f"CPL record id {text}.")


# --- the engine test ------------------------------------------------------------------------------------


def _run_test_sign(test_sign: Callable[[], str], static_errors: list[str]) -> tuple[str | None, Finding]:
    first_fix = "Fix the errors above, then run the doctor again." if static_errors else None
    try:
        state = test_sign()
    except HallmarkError as exc:
        said = exc.details.get("engine")
        return None, Finding(
            "engine-test",
            "error",
            f"The test sign + verify through the engine failed: {exc.message}"
            + (f" (the engine said: {said})" if said else ""),
            first_fix or exc.hint or "Check the certificate chain and key against the findings above.",
        )
    except Exception as exc:
        return None, Finding(
            "engine-test",
            "error",
            f"The test sign + verify through the engine failed unexpectedly ({type(exc).__name__}).",
            first_fix or "Report this with the doctor's output.",
        )
    if state == "Trusted":
        return state, Finding(
            "engine-test", "ok", "Signed and verified a test image: Trusted by the configured trust anchors."
        )
    if state == "Valid":
        return state, Finding(
            "engine-test",
            "warning",
            "Signed and verified a test image: Valid, but not Trusted: the chain does not lead to a "
            "configured trust anchor.",
            "Add the chain's root (or issuing CA) to the trust configuration, or complete the chain with its "
            "intermediate CA(s).",
        )
    return None, Finding(
        "engine-test",
        "error",
        f"The test image signed with this credential validates as {state!r}.",
        first_fix or "Check the certificate chain and key against the findings above.",
    )


# --- text for the CLI -----------------------------------------------------------------------------------

_MARK = {"error": "ERROR", "warning": "WARN ", "ok": "ok   "}


def render(report: DoctorReport) -> str:
    """A readable multi-line report: the two verdicts, the certificate, then the findings with fixes."""

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    lines = [
        f"Engine accepts this credential: {yes(report.engine_accepts)}",
        f"A CA on the C2PA trust list could issue it: {yes(report.trust_list_issuable)}",
        "",
        f"  Certificate  {report.subject or '-'}",
        f"  Issuer       {report.issuer or '-'}",
        f"  Expires      {report.not_after:%Y-%m-%d %H:%M} UTC" if report.not_after else "  Expires      -",
        f"  SHA-256      {report.fingerprint or '-'}",
        f"  Test sign    {(report.test_sign or 'failed') if _ran_test(report) else 'not run'}",
    ]
    sections = (
        ("What the engine needs (c2pa-rs as Hallmark runs it)", report.engine_findings),
        (f"What a CA on the C2PA trust list issues ({PROFILE_NAME})", report.profile_findings),
    )
    for title, findings in sections:
        lines += ["", f"{title}:"]
        for severity in ("error", "warning", "ok"):
            for f in findings:
                if f.severity != severity:
                    continue
                lines.append(f"  {_MARK[severity]} {f.check}: {f.message}")
                if f.fix and severity != "ok":
                    lines.append(f"         fix: {f.fix}")
        if not findings:
            lines.append("  (nothing checked)")
    return "\n".join(lines) + "\n"


def _ran_test(report: DoctorReport) -> bool:
    return any(f.check == "engine-test" for f in report.engine_findings)
