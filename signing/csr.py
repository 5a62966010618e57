"""Certificate signing requests a CA on the C2PA trust list can accept, and a check of any CSR against the
claim-signing leaf profile of the C2PA Certificate Policy (see `signing.doctor` for the certificate side).

A CSR carries what the subscriber decides: the subject (C/O/CN, which must match the Conforming Products
List entry), the public key, and the extensions it asks for (KeyUsage, ExtendedKeyUsage). The certificate
policy, AIA/OCSP, assurance level, CPL record id and key identifiers are added by the CA.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from signing.doctor import (
    RULE_PREFIX,
    Finding,
    eku_names,
    key_type_problem,
    key_usage_bits,
)
from signing.doctor.x509util import HASH_FOR, find_extension, missing_subject_parts
from signing.errors import KeyringError
from signing.keys import PrivateKey
from signing.oids import C2PA_CLAIM_SIGNING_EKU, DOCUMENT_SIGNING_EKU, EMAIL_PROTECTION_EKU

_CURVE_FOR = {"es256": "secp256r1", "es384": "secp384r1", "es512": "secp521r1"}
_SHA2 = ("sha256", "sha384", "sha512")


def build_csr(
    private_key: PrivateKey, *, country: str, organization: str, common_name: str, algorithm: str
) -> bytes:
    """A PEM PKCS#10 request with subject C/O/CN, KeyUsage digitalSignature+nonRepudiation (critical) and
    EKU c2pa-kp-claimSigning + emailProtection, signed with the key (`algorithm` picks the hash)."""
    _check_algorithm(private_key, algorithm)
    if len(country) != 2 or not country.isalpha():
        raise KeyringError(
            f"Country {country!r} is not a two-letter ISO 3166 code.", hint="Use e.g. US, DE, JP."
        )
    for what, value in (("organization", organization), ("common name", common_name)):
        if not value.strip():
            raise KeyringError(f"The {what} of the certificate request is empty.")
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, country.upper()),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([C2PA_CLAIM_SIGNING_EKU, EMAIL_PROTECTION_EKU]),
            critical=False,
        )
    )
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        csr = builder.sign(private_key, None)
    elif isinstance(private_key, rsa.RSAPrivateKey):
        # Proof of possession only: PKCS#1 v1.5 is what every CA accepts on a request.
        csr = builder.sign(private_key, HASH_FOR[algorithm](), rsa_padding=padding.PKCS1v15())
    else:
        csr = builder.sign(private_key, HASH_FOR[algorithm]())
    return csr.public_bytes(serialization.Encoding.PEM)


def _check_algorithm(key: PrivateKey, algorithm: str) -> None:
    ok = (
        (isinstance(key, ec.EllipticCurvePrivateKey) and _CURVE_FOR.get(algorithm) == key.curve.name)
        or (isinstance(key, ed25519.Ed25519PrivateKey) and algorithm == "ed25519")
        or (isinstance(key, rsa.RSAPrivateKey) and algorithm in ("ps256", "ps384", "ps512"))
    )
    if not ok:
        raise KeyringError(
            f"The algorithm {algorithm!r} does not fit this {_describe(key)} key.",
            hint="es256 needs P-256, es384 P-384, es512 P-521, ps256/384/512 RSA, ed25519 Ed25519.",
        )
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise KeyringError(f"An RSA key of {key.key_size} bits is too weak.", hint="Use 2048 bits or more.")


def _describe(key: PrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA-{key.key_size}"
    return "Ed25519"


def check_csr(pem: bytes) -> list[Finding]:
    """Does this CSR ask for what the claim-signing leaf profile needs? Never raises on a bad request."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError:
        return [
            Finding(
                "csr-format",
                "error",
                "This is not a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----).",
                "Generate one with `hallmark keys generate` or `openssl req -new -key key.pem -out req.csr`.",
            )
        ]
    findings: list[Finding] = [_csr_signature(csr), _csr_subject(csr)]
    try:
        problem = key_type_problem(csr.public_key())
    except (ValueError, UnsupportedAlgorithm):
        problem = "the request's public key cannot be read"
    findings.append(
        Finding(
            "key-type",
            "error",
            f"{RULE_PREFIX}, Subject Public Key Info: {problem}.",
            "Generate a P-256/P-384/P-521, Ed25519 or RSA (>= 2048 bits) key and a new request.",
        )
        if problem
        else Finding("key-type", "ok", "The public key type and size fit the profile.", "")
    )
    findings.extend(_csr_extensions(csr))
    findings.append(
        Finding(
            "ca-added",
            "ok",
            "The CA adds the certificate policy 1.3.6.1.4.1.62558.1.1, AIA with OCSP, the assurance level "
            "(1.3.6.1.4.1.62558.3), the CPL record id (1.3.6.1.4.1.62558.4) and the key identifiers.",
            "",
        )
    )
    return findings


def _csr_signature(csr: x509.CertificateSigningRequest) -> Finding:
    try:
        valid = csr.is_signature_valid
        hash_name = csr.signature_hash_algorithm.name if csr.signature_hash_algorithm else None
    except (ValueError, UnsupportedAlgorithm):
        valid, hash_name = False, "unknown"
    if not valid:
        return Finding(
            "csr-signature",
            "error",
            "The request's self-signature does not verify: it was altered or signed with another key.",
            "Generate the request again with the key it names.",
        )
    if hash_name is not None and hash_name not in _SHA2:
        return Finding(
            "csr-signature",
            "error",
            f"The request is signed with {hash_name}; CAs under the C2PA policy expect SHA-256/384/512.",
            "Generate the request again (`openssl req -new -sha256 ...`).",
        )
    return Finding("csr-signature", "ok", "The request's self-signature verifies.", "")


def _csr_subject(csr: x509.CertificateSigningRequest) -> Finding:
    missing = missing_subject_parts(csr.subject)
    if missing:
        return Finding(
            "subject",
            "error",
            f"{RULE_PREFIX}, Subject Name: requires C, O and CN; the request lacks {', '.join(missing)}.",
            "Request a subject with country (C), organization (O) and common name (CN) exactly as in your "
            "Conforming Products List entry.",
        )
    return Finding(
        "subject",
        "ok",
        f"Subject {csr.subject.rfc4514_string()} has C, O and CN (it must match your CPL entry exactly).",
        "",
    )


def _csr_extensions(csr: x509.CertificateSigningRequest) -> list[Finding]:
    try:
        extensions = csr.extensions
    except ValueError:
        return [
            Finding(
                "csr-format",
                "error",
                "The request's extensions cannot be parsed.",
                "Generate the request again.",
            )
        ]
    out: list[Finding] = []
    ku = find_extension(extensions, x509.KeyUsage)
    if ku is None:
        out.append(
            Finding(
                "key-usage",
                "error",
                f"{RULE_PREFIX}, Key Usage (critical: digitalSignature, nonRepudiation): the request does "
                "not ask for a key usage.",
                "Add keyUsage = critical, digitalSignature, nonRepudiation to the request.",
            )
        )
    else:
        bits = key_usage_bits(ku.value)
        problems = []
        if not ku.critical:
            problems.append("it is not marked critical")
        missing = [b for b in ("digitalSignature", "nonRepudiation") if b not in bits]
        if missing:
            problems.append(f"it lacks {' and '.join(missing)}")
        extra = sorted(bits - {"digitalSignature", "nonRepudiation"})
        if extra:
            problems.append(f"it also asks for {', '.join(extra)}")
        out.append(
            Finding(
                "key-usage",
                "error",
                f"{RULE_PREFIX}, Key Usage (critical: digitalSignature, nonRepudiation): "
                + "; ".join(problems)
                + ".",
                "Ask for keyUsage = critical, digitalSignature, nonRepudiation and nothing else.",
            )
            if problems
            else Finding("key-usage", "ok", "Key usage digitalSignature + nonRepudiation, critical.", "")
        )
    eku = find_extension(extensions, x509.ExtendedKeyUsage)
    usages = list(eku.value) if eku is not None else []
    has_claim = C2PA_CLAIM_SIGNING_EKU in usages
    has_companion = EMAIL_PROTECTION_EKU in usages or DOCUMENT_SIGNING_EKU in usages
    if eku is None or not has_claim or not has_companion or eku.critical:
        have = eku_names(usages) if usages else "none"
        out.append(
            Finding(
                "eku",
                "error",
                f"{RULE_PREFIX}, Extended Key Usage (non-critical): must contain c2pa-kp-claimSigning "
                f"(1.3.6.1.4.1.62558.2.1) and emailProtection or documentSigning; the request asks for {have}"
                + (" and marks it critical" if eku is not None and eku.critical else "")
                + ".",
                "Ask for extendedKeyUsage = 1.3.6.1.4.1.62558.2.1, emailProtection (non-critical).",
            )
        )
    else:
        out.append(Finding("eku", "ok", f"Extended key usage {eku_names(usages)}.", ""))
    bc = find_extension(extensions, x509.BasicConstraints)
    if bc is not None and bc.value.ca:
        out.append(
            Finding(
                "ca-flag",
                "error",
                f"{RULE_PREFIX}, Basic Constraints: cA=FALSE; the request asks for a CA certificate.",
                "Remove basicConstraints CA:TRUE from the request.",
            )
        )
    return out
