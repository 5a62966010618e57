"""Reading X.509 certificates: fingerprints, names, the development marker. No private keys here."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from signing.errors import CertificateProfileError

# Every certificate the development PKI issues carries this organization; guardrails look for it.
DEV_ORGANIZATION = "Hallmark Development PKI (not for production)"


def load_chain(pem: bytes, *, source: str) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        chain = []
    if not chain:
        raise CertificateProfileError(
            f"{source} holds no PEM certificate.",
            hint="Provide the chain as PEM, leaf certificate first, then its intermediates.",
        )
    return chain


def sha256_fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def name_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attrs = name.get_attributes_for_oid(oid)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def organization(cert: x509.Certificate) -> str | None:
    return name_attribute(cert.subject, NameOID.ORGANIZATION_NAME)


def common_name(cert: x509.Certificate) -> str | None:
    return name_attribute(cert.subject, NameOID.COMMON_NAME)


def is_development(cert: x509.Certificate) -> bool:
    return (
        organization(cert) == DEV_ORGANIZATION
        or name_attribute(cert.issuer, NameOID.ORGANIZATION_NAME) == DEV_ORGANIZATION
    )


def public_key_sha256(public_key: PublicKeyTypes) -> str:
    """SHA-256 of the SubjectPublicKeyInfo: ties a key to every certificate issued for it."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
