"""keys.py: the PEM signer, its refusals, algorithm choice, signatures and certificate validity."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from app.pem_keys import CredentialFiles, load_pem_signer
from signing import NativeSigner
from signing.devpki import dev_name, issue_ca, issue_leaf, new_key, pem
from signing.errors import CertificateProfileError, KeyNotFoundError, KeyringError
from signing.keys import PemKeySigner, algorithm_for, check_validity
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*

Ca = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


@pytest.fixture(scope="module")
def ca() -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    return issue_ca(dev_name("Unit Test CA"), key), key


def write_key(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def signer_for(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, ca: Ca, algorithm: str) -> PemKeySigner:
    leaf = issue_leaf(dev_name("Unit Signer"), key, issuer=ca[0], issuer_key=ca[1])
    return PemKeySigner(key, pem(leaf) + pem(ca[0]), "unit", algorithm)


# --- loading ---------------------------------------------------------------------------------------------


def test_from_files(pki: Pki) -> None:
    signer = load_pem_signer(CredentialFiles(pki.chain, pki.key, "test-key"))
    assert signer.algorithm == "es256"
    assert signer.key_id == "test-key"
    assert signer.chain_pem == pki.chain.read_bytes()
    first = x509.load_pem_x509_certificates(pki.chain.read_bytes())[0]
    assert signer.certificate == first
    assert (
        signer.certificate_sha256
        == hashlib.sha256(first.public_bytes(serialization.Encoding.DER)).hexdigest()
    )


def test_the_native_signer_holds_its_own_certificates_fingerprint(pki: Pki, ca: Ca) -> None:
    """Every sign records the fingerprint the NativeSigner computed once: the leaf's DER hash, per key."""
    signer = load_pem_signer(CredentialFiles(pki.chain, pki.key, "test-key"))
    native = NativeSigner(signer)
    first = x509.load_pem_x509_certificates(pki.chain.read_bytes())[0]
    der = first.public_bytes(serialization.Encoding.DER)
    assert native.certificate_sha256 == hashlib.sha256(der).hexdigest()
    assert vars(native)["certificate_sha256"] == native.certificate_sha256  # kept: not hashed again per sign
    assert native.certificate_sha256 == signer.certificate_sha256
    other = NativeSigner(signer_for(ed25519.Ed25519PrivateKey.generate(), ca, "ed25519"))
    assert other.certificate_sha256 == other.key.certificate_sha256  # type: ignore[attr-defined]
    assert other.certificate_sha256 != native.certificate_sha256  # negative control: another key, its own


def test_sign_verifies_with_certificate_key(pki: Pki) -> None:
    signer = load_pem_signer(CredentialFiles(pki.chain, pki.key))
    data = b"claim bytes to be signed"
    signature = signer.sign(data)
    public = signer.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(signature, data + b"!", ec.ECDSA(hashes.SHA256()))


def test_refuses_sec1_key(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.key.read_bytes(), None)
    sec1 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert b"BEGIN EC PRIVATE KEY" in sec1
    path = write_key(tmp_path / "sec1.pem", sec1)
    with pytest.raises(KeyringError) as caught:
        load_pem_signer(CredentialFiles(pki.chain, path))
    assert "pkcs8" in (caught.value.hint or "").lower()


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_refuses_readable_key_file(pki: Pki, tmp_path: Path, mode: int) -> None:
    path = write_key(tmp_path / "key.pem", pki.key.read_bytes(), mode)
    with pytest.raises(KeyringError) as caught:
        load_pem_signer(CredentialFiles(pki.chain, path))
    assert caught.value.hint == f"chmod 600 {path}"


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_accepts_owner_only_key_file(pki: Pki, tmp_path: Path, mode: int) -> None:
    path = write_key(tmp_path / "key.pem", pki.key.read_bytes(), mode)
    assert load_pem_signer(CredentialFiles(pki.chain, path)).algorithm == "es256"


def test_refuses_key_of_another_leaf(pki: Pki) -> None:
    with pytest.raises(CertificateProfileError):
        load_pem_signer(CredentialFiles(pki.chain, pki.untrusted_key))


def test_missing_files(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(KeyNotFoundError):
        load_pem_signer(CredentialFiles(tmp_path / "nope.pem", pki.key))
    with pytest.raises(KeyNotFoundError):
        load_pem_signer(CredentialFiles(pki.chain, tmp_path / "nope.pem"))


def test_chain_without_certificate(pki: Pki, tmp_path: Path) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_bytes(b"not a certificate\n")
    with pytest.raises(CertificateProfileError):
        load_pem_signer(CredentialFiles(chain, pki.key))


def test_encrypted_key_and_passphrase(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.key.read_bytes(), None)
    secret = b"correct horse battery staple"
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(secret),
    )
    path = write_key(tmp_path / "enc.pem", encrypted)
    files = CredentialFiles(pki.chain, path, "enc", secret)
    signer = load_pem_signer(files)
    assert signer.algorithm == "es256"
    assert secret.decode() not in repr(files)
    assert str(secret) not in repr(files)
    for wrong in (None, b"wrong passphrase"):
        with pytest.raises(KeyringError):
            load_pem_signer(CredentialFiles(pki.chain, path, "enc", wrong))


def test_repr_has_no_secrets(pki: Pki) -> None:
    files = CredentialFiles(pki.chain, pki.key, "k1", b"s3cret-passphrase")
    signer = load_pem_signer(CredentialFiles(pki.chain, pki.key, "k1"))
    key_body = pki.key.read_text().splitlines()[1]  # first base64 line of the private key
    for text in (repr(files), repr(signer), str(files)):
        assert "s3cret" not in text
        assert "PRIVATE KEY" not in text
        assert key_body not in text
    assert "k1" in repr(signer)
    assert "es256" in repr(signer)


# --- algorithms and signatures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_algorithm_for_keys(rsa2048: rsa.RSAPrivateKey) -> None:
    assert algorithm_for(ec.generate_private_key(ec.SECP256R1())) == "es256"
    assert algorithm_for(ec.generate_private_key(ec.SECP384R1())) == "es384"
    assert algorithm_for(ec.generate_private_key(ec.SECP521R1())) == "es512"
    assert algorithm_for(ed25519.Ed25519PrivateKey.generate()) == "ed25519"
    assert algorithm_for(rsa2048) == "ps256"
    assert algorithm_for(rsa2048, "ps512") == "ps512"
    assert algorithm_for(rsa2048, "es256") == "ps256"  # an RSA key cannot sign ECDSA


def test_algorithm_for_refuses_weak_or_odd_keys() -> None:
    with pytest.raises(KeyringError):
        algorithm_for(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(KeyringError):
        algorithm_for(ec.generate_private_key(ec.SECP256K1()))


def test_rsa_pss_signature(ca: Ca, rsa2048: rsa.RSAPrivateKey) -> None:
    signer = signer_for(rsa2048, ca, "ps384")
    data = b"claim"
    public = signer.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    # COSE PS384: PSS with MGF1-SHA384 and a salt as long as the digest.
    public.verify(signer.sign(data), data, padding.PSS(padding.MGF1(hashes.SHA384()), 48), hashes.SHA384())


def test_ed25519_signature(ca: Ca) -> None:
    signer = signer_for(ed25519.Ed25519PrivateKey.generate(), ca, "ed25519")
    public = signer.certificate.public_key()
    assert isinstance(public, ed25519.Ed25519PublicKey)
    public.verify(signer.sign(b"claim"), b"claim")


def test_es384_from_files(ca: Ca, tmp_path: Path) -> None:
    key = new_key("es384")
    leaf = issue_leaf(dev_name("P-384 Signer"), key, issuer=ca[0], issuer_key=ca[1])
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pem(leaf) + pem(ca[0]))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = load_pem_signer(CredentialFiles(chain, write_key(tmp_path / "k.pem", key_pem)))
    assert signer.algorithm == "es384"
    public = signer.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signer.sign(b"x"), b"x", ec.ECDSA(hashes.SHA384()))


# --- validity --------------------------------------------------------------------------------------------


def test_check_validity(ca: Ca) -> None:
    now = datetime.now(UTC)
    key = new_key("es256")
    current = issue_leaf(dev_name("Current"), key, issuer=ca[0], issuer_key=ca[1])
    check_validity(current)
    expired = issue_leaf(
        dev_name("Expired"),
        key,
        issuer=ca[0],
        issuer_key=ca[1],
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=1),
    )
    with pytest.raises(CertificateProfileError, match="expired"):
        check_validity(expired)
    future = issue_leaf(
        dev_name("Future"), key, issuer=ca[0], issuer_key=ca[1], not_before=now + timedelta(days=1)
    )
    with pytest.raises(CertificateProfileError, match="not valid before"):
        check_validity(future)
    with pytest.raises(CertificateProfileError, match="expired"):
        check_validity(current, now + timedelta(days=3650))
