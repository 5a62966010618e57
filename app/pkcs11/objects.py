"""Finding a key object on the token and reading its algorithm and public key."""

from __future__ import annotations

from typing import Any

from asn1crypto import core  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11

from app.pkcs11.config import Pkcs11Config
from app.pkcs11.schemes import CURVES, ED25519_OID, PublicKey
from signing import (
    KeyNotFoundError,
    KeyringError,
)


def find_key_object(session: Any, object_class: ObjectClass, config: Pkcs11Config) -> Any:
    what = "private key" if object_class is ObjectClass.PRIVATE_KEY else "public key"
    try:
        return session.get_key(object_class=object_class, label=config.key_label)
    except p11.NoSuchKey:
        raise KeyNotFoundError(
            f"No {what} labelled '{config.key_label}' in PKCS#11 token '{config.token_label}'.",
            hint="Check the key label (pkcs11-tool --list-objects) or generate the key first.",
        ) from None
    except p11.MultipleObjectsReturned:
        raise KeyringError(
            f"Several {what}s are labelled '{config.key_label}' in PKCS#11 token '{config.token_label}'.",
            hint="Give each key a distinct label.",
        ) from None


def _curve_oid(params: bytes) -> str:
    """The curve of CKA_EC_PARAMS: a named-curve OID, or a PrintableString such as 'edwards25519'."""
    try:
        value = core.load(params, strict=True)
    except ValueError:
        return "unknown"
    if isinstance(value, core.ObjectIdentifier):
        return str(value.dotted)
    if isinstance(value, core.PrintableString) and str(value.native) == "edwards25519":
        return ED25519_OID
    return "unknown"


def algorithm_of(key: Any, config: Pkcs11Config, requested: str | None) -> str:
    key_type = key[Attribute.KEY_TYPE]
    if key_type == KeyType.EC:
        oid = _curve_oid(bytes(key[Attribute.EC_PARAMS]))
        if oid not in CURVES:
            raise KeyringError(
                f"The token key '{config.key_label}' is on an elliptic curve C2PA cannot sign with ({oid}).",
                hint="Use P-256, P-384 or P-521.",
            )
        return CURVES[oid][0]
    if key_type == KeyType.RSA:
        bits = len(bytes(key[Attribute.MODULUS]).lstrip(b"\0")) * 8
        if bits < 2048:
            raise KeyringError(
                f"The token key '{config.key_label}' is RSA-{bits}: too weak.", hint="Use 2048+."
            )
        return requested if requested in ("ps256", "ps384", "ps512") else "ps256"
    if key_type == KeyType.EC_EDWARDS and _curve_oid(bytes(key[Attribute.EC_PARAMS])) == ED25519_OID:
        return "ed25519"
    raise KeyringError(
        f"The token key '{config.key_label}' is of a type C2PA cannot sign with.",
        hint="Use an EC (P-256/384/521), RSA (PSS) or Ed25519 key.",
    )


def public_key_of(obj: Any) -> PublicKey:
    """A token public-key object as a cryptography public key."""
    key_type = obj[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        modulus = int.from_bytes(bytes(obj[Attribute.MODULUS]), "big")
        exponent = int.from_bytes(bytes(obj[Attribute.PUBLIC_EXPONENT]), "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    oid = _curve_oid(bytes(obj[Attribute.EC_PARAMS]))
    point = _unwrap_point(bytes(obj[Attribute.EC_POINT]))
    try:
        if key_type == KeyType.EC_EDWARDS and oid == ED25519_OID:
            return ed25519.Ed25519PublicKey.from_public_bytes(point)
        if key_type == KeyType.EC and oid in CURVES:
            return ec.EllipticCurvePublicKey.from_encoded_point(CURVES[oid][1], point)
    except ValueError:
        raise KeyringError("The token returned a public key that is not a valid point.") from None
    raise KeyringError("The token public key is of a type C2PA cannot sign with.")


def _unwrap_point(value: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING around the point; a few modules store the bare point."""
    try:
        inner = bytes(core.OctetString.load(value, strict=True).native)
    except ValueError:
        return value
    # A bare uncompressed point also starts with 0x04: unwrap only when the result looks like a point.
    looks_like_point = len(inner) == 32 or (len(inner) % 2 == 1 and inner[:1] == b"\x04")
    return inner if looks_like_point else value
