"""A development PKI: root CA -> intermediate CA -> claim-signing leaf, in the profile the engine accepts.

Used by `hallmark keys init --dev` and by the committed test-PKI script. Every certificate carries
`DEV_ORGANIZATION`, so production guardrails and verify reports can tell development trust apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing.certs import DEV_ORGANIZATION
from signing.keys import PrivateKey

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
T = TypeVar("T")
PRIVATE_KEY_TYPES = (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)


def new_key(alg: str = "es256") -> PrivateKey:
    if alg == "es256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "es384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "es512":
        return ec.generate_private_key(ec.SECP521R1())
    if alg == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if alg in ("ps256", "ps384", "ps512"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown algorithm {alg}")


def dev_name(common_name: str, organization: str = DEV_ORGANIZATION) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def issue_ca(
    subject: x509.Name,
    key: PrivateKey,
    *,
    issuer: x509.Certificate | None = None,
    issuer_key: PrivateKey | None = None,
    days: int = 3650,
    path_length: int | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    signing_key = issuer_key or key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False
        )
    )
    return builder.sign(signing_key, _hash_for(signing_key))


def issue_leaf(
    subject: x509.Name,
    key: PrivateKey | PublicKey,
    *,
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    extended_key_usages: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.EMAIL_PROTECTION,),
) -> x509.Certificate:
    """A claim-signing leaf: CA=false, digitalSignature only, AKI present, EKU emailProtection.

    `key` may be a public key alone: a key generated inside a token never leaves it."""
    now = datetime.now(UTC)
    public = key.public_key() if isinstance(key, PRIVATE_KEY_TYPES) else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(hours=1))
        .not_valid_after(not_after or now + timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage(list(extended_key_usages)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    return builder.sign(issuer_key, _hash_for(issuer_key))


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM; encrypted with the best available scheme when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@dataclass(frozen=True)
class DevPki(Generic[T]):
    """A development PKI: its PEM material (`DevPki[bytes]`, from `issue_dev_pki`) or the files it was
    written to (`DevPki[Path]`, from `app.dev_pki.create_dev_pki`)."""

    root: T  # the trust anchor (certificate only)
    intermediate: T
    intermediate_key: T
    chain: T  # leaf + intermediate, leaf first
    key: T  # the leaf's private key, PKCS#8 (0600 on disk)


def issue_dev_pki(*, provider: str = "Hallmark development signer", alg: str = "es256") -> DevPki[bytes]:
    """A fresh development PKI. The root's private key is discarded: nothing can issue new roots."""
    root_key = new_key("es256")
    root = issue_ca(dev_name("Hallmark Development Root CA"), root_key, days=3650, path_length=1)
    inter_key = new_key("es256")
    inter = issue_ca(
        dev_name("Hallmark Development Intermediate CA"),
        inter_key,
        issuer=root,
        issuer_key=root_key,
        days=3650,
        path_length=0,
    )
    leaf_key = new_key(alg)
    leaf = issue_leaf(dev_name(provider), leaf_key, issuer=inter, issuer_key=inter_key)
    return DevPki(
        root=pem(root),
        intermediate=pem(inter),
        intermediate_key=key_pem(inter_key),
        chain=pem(leaf) + pem(inter),
        key=key_pem(leaf_key),
    )
