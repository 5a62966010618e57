"""The key: does the configured algorithm fit it, and does it (a key file or a key in a token) belong to the
leaf certificate."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from signing.doctor.findings import Check, Finding
from signing.doctor.x509util import HASH_FOR, key_kind, name_of, spki_der
from signing.errors import HallmarkError
from signing.keys import KeySigner

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


def key_checks_for(
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
    spki = spki_der(public)
    if spki_der(leaf.public_key()) == spki:
        return Finding("key-mismatch", "ok", "The private key belongs to the leaf certificate.")
    owner = next((i for i, c in enumerate(ordered) if spki_der(c.public_key()) == spki), None)
    where = (
        f" It belongs to certificate {owner + 1} of the chain ({name_of(ordered[owner])})."
        if owner is not None
        else ""
    )
    return Finding(
        "key-mismatch",
        "error",
        f"The private key does not belong to the leaf certificate ({name_of(leaf)}).{where} "
        "The engine refuses the signature.",
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
        f"A probe signed by the key does not verify with the leaf certificate ({name_of(leaf)}): the key and "
        "the certificate do not belong together.",
        "Select the token key the certificate was issued for, or get a certificate for this key.",
    )


def _verifies(public: PublicKeyTypes, algorithm: str, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, data)
        elif isinstance(public, rsa.RSAPublicKey):
            digest = HASH_FOR[algorithm]()
            public.verify(signature, data, padding.PSS(padding.MGF1(digest), digest.digest_size), digest)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            scheme = ec.ECDSA(HASH_FOR[algorithm]())
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
