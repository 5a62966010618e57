"""Small certificate helpers shared by the doctor's checks and `signing.csr`, and just enough DER for the two
C2PA private extensions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from signing.oids import EKU_NAMES

_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

#: The hash each signing algorithm signs with (also what a CSR is signed with).
HASH_FOR: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "es256": hashes.SHA256,
    "es384": hashes.SHA384,
    "es512": hashes.SHA512,
    "ps256": hashes.SHA256,
    "ps384": hashes.SHA384,
    "ps512": hashes.SHA512,
}

_E = TypeVar("_E", bound=x509.ExtensionType)


def eku_names(usages: Iterable[x509.ObjectIdentifier]) -> str:
    return ", ".join(EKU_NAMES.get(oid, oid.dotted_string) for oid in usages) or "none"


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


def describe_key(public: PublicKeyTypes) -> str:
    if isinstance(public, rsa.RSAPublicKey):
        return f"RSA-{public.key_size}"
    return key_kind(public)


def missing_subject_parts(subject: x509.Name) -> list[str]:
    """Which of C, O and CN (the profile's required subject attributes) the name lacks, in that order."""
    return [
        label
        for label, oid in (
            ("C", NameOID.COUNTRY_NAME),
            ("O", NameOID.ORGANIZATION_NAME),
            ("CN", NameOID.COMMON_NAME),
        )
        if not subject.get_attributes_for_oid(oid)
    ]


def find_extension(extensions: x509.Extensions, kind: type[_E]) -> x509.Extension[_E] | None:
    try:
        return extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def ext_of(cert: x509.Certificate | None, kind: type[_E]) -> x509.Extension[_E] | None:
    if cert is None:
        return None
    return find_extension(cert.extensions, kind)


def raw_ext_of(
    cert: x509.Certificate, oid: x509.ObjectIdentifier
) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def spki_der(public: PublicKeyTypes) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def name_of(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def is_ca(cert: x509.Certificate) -> bool:
    bc = ext_of(cert, x509.BasicConstraints)
    return bc is not None and bc.value.ca


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def as_aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def days_of(delta: timedelta) -> str:
    """`825 days`, `366 days 5 min`, `9 days 23 h 59 min`: exact enough to see why a limit is missed."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} days"] + ([f"{hours} h"] if hours else []) + ([f"{mins} min"] if mins else [])
    return " ".join(parts)


# --- DER, just enough for the two C2PA private extensions -----------------------------------------------


def der_tlv(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
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


def assurance_level_value(der: bytes) -> str | None:
    """The OID inside the id-c2pa-al extension: a bare OID (also accepted: a SEQUENCE holding one)."""
    try:
        tag, body, end = der_tlv(der)
        if tag == 0x30:
            tag, body, _ = der_tlv(body)
        if tag != 0x06 or end != len(der):
            return None
        return _der_oid(body)
    except ValueError:
        return None
