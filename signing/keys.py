"""The `KeySigner` port and the PEM-file adapter.

Every signer reaches the engine through the same callback path (`sign(data) -> signature`), so a key in a
file and a key in a token (later) are used identically. The private key object never leaves this module's
adapter: no accessor returns it and `repr` does not show it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from signing.certs import load_chain, sha256_fingerprint
from signing.errors import CertificateProfileError, KeyringError


class KeySigner(Protocol):
    """Signs claim bytes with a private key bound to a certificate chain."""

    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> str:
        """The C2PA/COSE algorithm name: es256, es384, es512, ps256, ps384, ps512 or ed25519."""
        ...

    @property
    def chain_pem(self) -> bytes:
        """The certificate chain, leaf first, PEM."""
        ...

    @property
    def certificate(self) -> x509.Certificate: ...

    def sign(self, data: bytes) -> bytes: ...


_EC_ALGS = {
    "secp256r1": ("es256", hashes.SHA256),
    "secp384r1": ("es384", hashes.SHA384),
    "secp521r1": ("es512", hashes.SHA512),
}
_PS_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "ps256": hashes.SHA256,
    "ps384": hashes.SHA384,
    "ps512": hashes.SHA512,
}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def algorithm_for(key: PrivateKey, requested: str | None = None) -> str:
    """The signing algorithm a key implies (RSA keys sign PSS; `requested` picks the hash)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = _EC_ALGS.get(key.curve.name)
        if alg is None:
            raise KeyringError(
                f"Elliptic curve {key.curve.name} is not usable for C2PA signing.",
                hint="Use P-256, P-384 or P-521.",
            )
        return alg[0]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise KeyringError(f"RSA key of {key.key_size} bits is too weak.", hint="Use 2048 bits or more.")
        return requested if requested in _PS_HASHES else "ps256"
    raise KeyringError("Unsupported private key type.", hint="Use an EC (P-256/384/521), Ed25519 or RSA key.")


def algorithm_for_public_key(public: object) -> str:
    """The default signing algorithm for a certificate's public key (RSA: PSS with SHA-256)."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        alg = _EC_ALGS.get(public.curve.name)
        if alg is None:
            raise KeyringError(f"Elliptic curve {public.curve.name} is not usable for C2PA signing.")
        return alg[0]
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public, rsa.RSAPublicKey):
        return "ps256"
    raise KeyringError("Unsupported public key type.")


class CertifiedSigner:
    """The part of a `KeySigner` every adapter shares: its key id and its certificate chain (leaf first)."""

    def __init__(self, key_id: str, chain_pem: bytes):
        self._key_id = key_id
        self._chain_pem = chain_pem
        self._certificate = load_chain(chain_pem, source="the certificate chain")[0]
        self._certificate_sha256 = sha256_fingerprint(self._certificate)

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def chain_pem(self) -> bytes:
        return self._chain_pem

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def certificate_sha256(self) -> str:
        return self._certificate_sha256


class PemKeySigner(CertifiedSigner):
    """A private key in a PKCS#8 PEM file, with its certificate chain in another PEM file."""

    def __init__(self, key: PrivateKey, chain_pem: bytes, key_id: str, algorithm: str):
        super().__init__(key_id, chain_pem)
        self._key = key
        self._algorithm = algorithm

    def __repr__(self) -> str:
        return f"PemKeySigner(key_id={self._key_id!r}, algorithm={self._algorithm!r})"

    @classmethod
    def from_pem(
        cls,
        key_pem: bytes,
        chain_pem: bytes,
        *,
        key_id: str,
        passphrase: bytes | None = None,
        algorithm: str | None = None,
        key_source: str = "the private key",
        chain_source: str = "the certificate chain",
    ) -> PemKeySigner:
        """A signer from PEM bytes (the adapter reads the files); the chain's leaf must match the key."""
        key = load_private_key(key_pem, passphrase, source=key_source)
        chain = load_chain(chain_pem, source=chain_source)
        check_key_matches(key, chain[0])
        return cls(key, chain_pem, key_id, algorithm_for(key, algorithm))

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(_EC_ALGS[key.curve.name][1]()))
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        digest = _PS_HASHES[self._algorithm]()
        return key.sign(data, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)


def load_private_key(pem: bytes, passphrase: bytes | None, *, source: str) -> PrivateKey:
    if b"-----BEGIN PRIVATE KEY-----" not in pem and b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in pem:
        raise KeyringError(
            f"{source} is not a PKCS#8 PEM private key.",
            hint="Convert it: openssl pkcs8 -topk8 -nocrypt -in OLD.pem -out key.pem",
        )
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError:
        raise KeyringError(
            f"{source} is encrypted and no passphrase was given (or one was given for a "
            "key that is not encrypted)."
        ) from None
    except ValueError:
        raise KeyringError(
            f"{source} could not be read as a private key (wrong passphrase or damaged file)."
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyringError(f"{source} holds a key type C2PA cannot sign with.")
    return key


def check_key_matches(key: PrivateKey, leaf: x509.Certificate) -> None:
    probe = b"hallmark key/certificate match probe"
    public = leaf.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(key.sign(probe, ec.ECDSA(hashes.SHA256())), probe, ec.ECDSA(hashes.SHA256()))
            return
        if isinstance(key, ed25519.Ed25519PrivateKey) and isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(key.sign(probe), probe)
            return
        if isinstance(key, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey):
            pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
            public.verify(key.sign(probe, pss, hashes.SHA256()), probe, pss, hashes.SHA256())
            return
    except InvalidSignature:
        pass
    raise CertificateProfileError(
        "The private key does not belong to the leaf certificate.",
        hint="The first certificate in the chain file must be the one issued for this key.",
    )


def check_validity(leaf: x509.Certificate, now: datetime | None = None) -> None:
    moment = now or datetime.now(UTC)
    if moment < leaf.not_valid_before_utc:
        raise CertificateProfileError(
            f"The signing certificate is not valid before {leaf.not_valid_before_utc}."
        )
    if moment > leaf.not_valid_after_utc:
        raise CertificateProfileError(
            f"The signing certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}.",
            hint="Issue a new certificate for the key, or create a new key.",
        )
