"""How each C2PA signing algorithm maps onto a PKCS#11 mechanism, and checking what a token signed.

ECDSA and RSA-PSS digests are computed on the host and the token signs the digest (SoftHSM 2.6 and most
HSMs offer plain CKM_ECDSA and CKM_RSA_PKCS_PSS); CKM_EDDSA signs the message itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from pkcs11 import MGF, Mechanism
from pkcs11.util.ec import encode_ecdsa_signature

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

GENERATED_ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
RSA_GENERATED_BITS = 3072

ED25519_OID = "1.3.101.112"
CURVES: dict[str, tuple[str, ec.EllipticCurve, str]] = {  # OID -> (algorithm, curve, asn1crypto name)
    "1.2.840.10045.3.1.7": ("es256", ec.SECP256R1(), "secp256r1"),
    "1.3.132.0.34": ("es384", ec.SECP384R1(), "secp384r1"),
    "1.3.132.0.35": ("es512", ec.SECP521R1(), "secp521r1"),
}
ALG_CURVE = {alg: oid for oid, (alg, _, _) in CURVES.items()}
_HASHES = {"256": "sha256", "384": "sha384", "512": "sha512"}
_P11_HASH = {"sha256": Mechanism.SHA256, "sha384": Mechanism.SHA384, "sha512": Mechanism.SHA512}
_P11_MGF = {"sha256": MGF.SHA256, "sha384": MGF.SHA384, "sha512": MGF.SHA512}
_CRYPTO_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class Scheme:
    """How one C2PA algorithm maps onto a token mechanism."""

    algorithm: str
    mechanism: Mechanism
    digest: str | None  # hashed on the host before the token signs; None: the token signs the message

    @property
    def mechanism_param(self) -> tuple[Mechanism, MGF, int] | None:
        if self.mechanism is not Mechanism.RSA_PKCS_PSS or self.digest is None:
            return None
        return (_P11_HASH[self.digest], _P11_MGF[self.digest], hashlib.new(self.digest).digest_size)

    def payload(self, data: bytes) -> bytes:
        return hashlib.new(self.digest, data).digest() if self.digest else data


def scheme_for(algorithm: str) -> Scheme:
    if algorithm.startswith("es"):
        return Scheme(algorithm, Mechanism.ECDSA, _HASHES[algorithm[2:]])
    if algorithm.startswith("ps"):
        return Scheme(algorithm, Mechanism.RSA_PKCS_PSS, _HASHES[algorithm[2:]])
    return Scheme(algorithm, Mechanism.EDDSA, None)


MECHANISM_NAMES = {
    Mechanism.ECDSA: "CKM_ECDSA",
    Mechanism.RSA_PKCS_PSS: "CKM_RSA_PKCS_PSS",
    Mechanism.EDDSA: "CKM_EDDSA",
    Mechanism.EC_KEY_PAIR_GEN: "CKM_EC_KEY_PAIR_GEN",
    Mechanism.RSA_PKCS_KEY_PAIR_GEN: "CKM_RSA_PKCS_KEY_PAIR_GEN",
    Mechanism.EC_EDWARDS_KEY_PAIR_GEN: "CKM_EC_EDWARDS_KEY_PAIR_GEN",
}


def raw_sign(key: Any, scheme: Scheme, data: bytes) -> bytes:
    signature: bytes = key.sign(
        scheme.payload(data), mechanism=scheme.mechanism, mechanism_param=scheme.mechanism_param
    )
    return signature


def verifies(public: object, scheme: Scheme, signature: bytes, data: bytes) -> bool:
    """Does `signature` (as the token returns it) verify under `public`?"""
    try:
        if scheme.mechanism is Mechanism.ECDSA and isinstance(public, ec.EllipticCurvePublicKey):
            assert scheme.digest is not None
            algorithm = ec.ECDSA(_CRYPTO_HASH[scheme.digest]())
            public.verify(encode_ecdsa_signature(signature), data, algorithm)
            return True
        if scheme.mechanism is Mechanism.RSA_PKCS_PSS and isinstance(public, rsa.RSAPublicKey):
            assert scheme.digest is not None
            digest = _CRYPTO_HASH[scheme.digest]()
            public.verify(signature, data, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
            return True
        if scheme.mechanism is Mechanism.EDDSA and isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, data)
            return True
    except InvalidSignature:
        pass
    return False
