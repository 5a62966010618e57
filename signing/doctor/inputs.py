"""Reading the inputs: the chain file (PEM, leaf first), the private key file (PKCS#8 PEM), and the chain put
leaf first. Each problem found on the way is a finding."""

from __future__ import annotations

import re
from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from signing.doctor.findings import Finding
from signing.doctor.x509util import is_ca, issued_by, key_kind, name_of, spki_der

_CERT_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)

_TO_PKCS8 = "openssl pkcs8 -topk8 -nocrypt -in OLD.pem -out key.pem"


def read_chain(pem: bytes, out: list[Finding]) -> list[x509.Certificate]:
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


def read_key(pem: bytes, passphrase: bytes | None, out: list[Finding]) -> PrivateKeyTypes | None:
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
        return _load(
            lambda: serialization.load_ssh_private_key(pem, passphrase), out, given=passphrase is not None
        )
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
        return _load(
            lambda: serialization.load_der_private_key(pem, passphrase), out, given=passphrase is not None
        )
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
    return _load(
        lambda: serialization.load_pem_private_key(pem, passphrase), out, given=passphrase is not None
    )


def _load(fn: Callable[[], PrivateKeyTypes], out: list[Finding], *, given: bool) -> PrivateKeyTypes | None:
    try:
        key = fn()
    except TypeError:
        # cryptography's TypeError has two causes, told apart by whether a passphrase was passed (not by
        # its message): one given for a plain key, or none for an encrypted key.
        out.append(
            Finding(
                "key-unreadable",
                "error",
                "A passphrase was given, but the key is not encrypted."
                if given
                else "The private key is encrypted and no passphrase was given.",
                "Drop the passphrase setting."
                if given
                else "Put the key's passphrase in a file only you can read (chmod 600) and set "
                "HALLMARK_SIGNING_KEY_PASSPHRASE_FILE to its path.",
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


def order_chain(
    chain: list[x509.Certificate], key_public: PublicKeyTypes | None, out: list[Finding]
) -> list[x509.Certificate]:
    """The chain with the leaf first. A leaf found elsewhere is reported (reversed chain, leaf not first)."""
    index: int | None = None
    if key_public is not None:
        # The certificate of the key is the leaf, unless it is a CA further down (a mismatched key).
        spki = spki_der(key_public)
        index = next(
            (i for i, c in enumerate(chain) if spki_der(c.public_key()) == spki and (i == 0 or not is_ca(c))),
            None,
        )
    if index is None:
        issuers = {
            i for i, c in enumerate(chain) for other in chain if other is not c and issued_by(other, c)
        }
        index = next((i for i, c in enumerate(chain) if not is_ca(c) and i not in issuers), 0)
    if index == 0:
        return chain
    leaf = chain[index]
    rest = [c for i, c in enumerate(chain) if i != index]
    ordered = [leaf]
    while True:
        parent = next((c for c in rest if issued_by(ordered[-1], c) and c is not ordered[-1]), None)
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
                f"The chain is in reverse order: the leaf certificate ({name_of(leaf)}) is last and the CA "
                "certificates come first. The engine takes the first certificate as the signer."
                if reversed_chain
                else f"The leaf certificate ({name_of(leaf)}) is number {index + 1} in the chain, not first. "
                "The engine takes the first certificate as the signer."
            ),
            "Reorder the chain file: the leaf first, then the CA that issued it, then that CA's issuer "
            "(e.g. cat leaf.pem intermediate.pem > chain.pem).",
        )
    )
    return ordered
