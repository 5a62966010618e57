"""Keys in hardware: a real SoftHSM2 token behind the KeySigner port, signing through the real engine."""

from __future__ import annotations

import io
import os
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from pkcs11 import Attribute, ObjectClass

import signing
from app.pkcs11 import Pkcs11Config, Pkcs11KeySigner, generate_pkcs11_key, pin_from, pkcs11_csr
from signing.devpki import PublicKey, dev_name, issue_leaf, new_key, pem
from signing.keys import PrivateKey
from signing.oids import C2PA_CLAIM_SIGNING_EKU
from tests.conftest import MemoryLedger
from tests.pki import TestPki as Pki
from tests.softhsm import SoftHsmToken, softhsm_token

WRONG_PIN = "97531864"


@dataclass(frozen=True)
class TokenKey:
    config: Pkcs11Config
    public: PublicKey
    chain: bytes


Ca = tuple[x509.Certificate, PrivateKey]


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    with softhsm_token(tmp_path_factory.mktemp("softhsm")) as made:
        yield made


@pytest.fixture(scope="module")
def ca(pki: Pki) -> Ca:
    """The session test PKI's intermediate CA (see signing.devpki.create_dev_pki for the file names)."""
    folder = pki.root.parent
    cert = x509.load_pem_x509_certificate((folder / "intermediate-ca.pem").read_bytes())
    key = serialization.load_pem_private_key((folder / "intermediate-ca.key.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def chain_for(public: PublicKey, ca: Ca) -> bytes:
    leaf = issue_leaf(dev_name("Hallmark HSM Test Signer"), public, issuer=ca[0], issuer_key=ca[1])
    return pem(leaf) + pem(ca[0])


def token_key(token: SoftHsmToken, ca: Ca, label: str, alg: str) -> TokenKey:
    config = token.config(label)
    public = generate_pkcs11_key(config, alg)
    return TokenKey(config, public, chain_for(public, ca))


@pytest.fixture(scope="module")
def p256(token: SoftHsmToken, ca: Ca) -> TokenKey:
    return token_key(token, ca, "claim-p256", "es256")


@pytest.fixture(scope="module")
def p384(token: SoftHsmToken, ca: Ca) -> TokenKey:
    """A P-384 key certified the way production does it: CSR from the token, certificate from the CA."""
    config = token.config("claim-p384")
    generated = generate_pkcs11_key(config, "es384")
    request = x509.load_pem_x509_csr(pkcs11_csr(config, dev_name("Hallmark HSM P-384"), "es384"))
    public = request.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public == generated
    return TokenKey(config, public, chain_for(public, ca))


@pytest.fixture
def p256_signer(p256: TokenKey) -> Iterator[Pkcs11KeySigner]:
    with Pkcs11KeySigner(p256.config, p256.chain, key_id="hsm-p256") as key:
        yield key


def sign_and_inspect(
    engine: signing.Engine, key: Pkcs11KeySigner, interop_dir: Path, info: signing.GenerationInfo
) -> signing.VerificationReport:
    ctx = signing.SignContext(
        engine,
        signing.NativeSigner(key),
        MemoryLedger(),
        signing.SystemClock(),
        signing.ClaimGenerator("Hallmark", "test"),
    )
    out = io.BytesIO()
    signing.sign_asset(ctx, io.BytesIO((interop_dir / "no_manifest.jpg").read_bytes()), out, info)
    return signing.inspect_asset(engine, out)


# --- signing with a token key ----------------------------------------------------------------------------


def test_token_key_signs_an_asset_that_verifies_trusted(
    engine: signing.Engine,
    p256_signer: Pkcs11KeySigner,
    interop_dir: Path,
    generation: signing.GenerationInfo,
) -> None:
    assert p256_signer.algorithm == "es256"
    report = sign_and_inspect(engine, p256_signer, interop_dir, generation)
    assert report.outcome is signing.Outcome.TRUSTED, report.summary
    assert report.signer is not None
    assert report.signer.common_name == "Hallmark HSM Test Signer"


def test_self_test_with_a_token_key(engine: signing.Engine, p256_signer: Pkcs11KeySigner) -> None:
    native = signing.NativeSigner(p256_signer)
    assert signing.self_test(engine, native, signing.ClaimGenerator("Hallmark", "test")) == "Trusted"


@pytest.mark.parametrize("alg", ["ps256", "ed25519"])
def test_rsa_pss_and_ed25519_token_keys_sign_trusted(
    engine: signing.Engine,
    token: SoftHsmToken,
    ca: Ca,
    interop_dir: Path,
    generation: signing.GenerationInfo,
    alg: str,
) -> None:
    made = token_key(token, ca, f"claim-{alg}", alg)
    with Pkcs11KeySigner(made.config, made.chain) as key:
        assert key.algorithm == alg
        report = sign_and_inspect(engine, key, interop_dir, generation)
    assert report.outcome is signing.Outcome.TRUSTED, report.summary


def test_p384_key_certified_from_its_token_csr_signs_trusted(
    engine: signing.Engine, p384: TokenKey, interop_dir: Path, generation: signing.GenerationInfo
) -> None:
    with Pkcs11KeySigner(p384.config, p384.chain) as key:
        assert key.algorithm == "es384"
        report = sign_and_inspect(engine, key, interop_dir, generation)
    assert report.outcome is signing.Outcome.TRUSTED, report.summary


def test_concurrent_signing_from_four_threads_all_verify_trusted(
    engine: signing.Engine,
    p256: TokenKey,
    p384: TokenKey,
    interop_dir: Path,
    generation: signing.GenerationInfo,
) -> None:
    source = (interop_dir / "no_manifest.jpg").read_bytes()
    with (
        Pkcs11KeySigner(p256.config, p256.chain) as k256,
        Pkcs11KeySigner(p384.config, p384.chain) as k384,
    ):
        contexts = [
            signing.SignContext(
                engine,
                signing.NativeSigner(key),
                MemoryLedger(),
                signing.SystemClock(),
                signing.ClaimGenerator("Hallmark", "test"),
            )
            for key in (k256, k384)
        ]

        def one(n: int) -> signing.Outcome:
            out = io.BytesIO()
            signing.sign_asset(contexts[n % 2], io.BytesIO(source), out, generation)
            return signing.inspect_asset(engine, out).outcome

        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(one, range(20)))
    assert outcomes == [signing.Outcome.TRUSTED] * 20


def test_signer_reconnects_when_the_token_session_is_lost(p256: TokenKey) -> None:
    with Pkcs11KeySigner(p256.config, p256.chain) as key:
        key._shared.session.close()  # what a re-plugged token or a restarted network HSM does to us
        signature = key.sign(b"claim bytes")
    assert len(signature) == 64  # raw r||s for P-256


# --- the key stays in the token ----------------------------------------------------------------------------


def test_private_key_cannot_be_read_out_of_the_token(token: SoftHsmToken, p256: TokenKey) -> None:
    lib = pkcs11.lib(str(token.module))
    with lib.get_token(token_label=token.label).open(user_pin=token.pin) as session:
        key = session.get_key(ObjectClass.PRIVATE_KEY, label=p256.config.key_label)
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[Attribute.VALUE]
        assert key[Attribute.TOKEN] is True
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.ALWAYS_SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.NEVER_EXTRACTABLE] is True


def test_generate_refuses_an_existing_label(p256: TokenKey) -> None:
    with pytest.raises(signing.KeyringError, match="already holds an object labelled 'claim-p256'"):
        generate_pkcs11_key(p256.config, "es256")


# --- errors a person understands ---------------------------------------------------------------------------


def _assert_pin_absent(exc: signing.KeyringError, pin: str) -> None:
    shown = [str(exc), repr(exc), repr(exc.diagnostics()), "".join(traceback.format_exception(exc))]
    assert not [text for text in shown if pin in text]


@pytest.mark.parametrize("logged_in", [False, True], ids=["token-idle", "token-in-use"])
def test_wrong_pin_is_refused_without_echoing_it(
    request: pytest.FixtureRequest, token: SoftHsmToken, p256: TokenKey, logged_in: bool
) -> None:
    if logged_in:  # another signer holds the token's login: the PIN is checked against that login
        request.getfixturevalue("p256_signer")
    config = token.config(p256.config.key_label, pin=WRONG_PIN)
    assert WRONG_PIN not in repr(config)
    with pytest.raises(signing.KeyringError) as caught:
        Pkcs11KeySigner(config, p256.chain)
    assert "PIN incorrect" in caught.value.message
    _assert_pin_absent(caught.value, WRONG_PIN)


def test_unknown_key_label(token: SoftHsmToken, p256: TokenKey) -> None:
    with pytest.raises(signing.KeyringError, match="No private key labelled 'no-such-key'") as caught:
        Pkcs11KeySigner(token.config("no-such-key"), p256.chain)
    _assert_pin_absent(caught.value, token.pin)


def test_unknown_token_label(token: SoftHsmToken, p256: TokenKey) -> None:
    config = Pkcs11Config(token.module, "no-such-token", "claim-p256", token.pin)
    with pytest.raises(signing.KeyringError, match="No PKCS#11 token labelled 'no-such-token'"):
        Pkcs11KeySigner(config, p256.chain)


def test_missing_module(tmp_path: Path, token: SoftHsmToken, p256: TokenKey) -> None:
    config = Pkcs11Config(tmp_path / "libnothing.so", token.label, "claim-p256", token.pin)
    with pytest.raises(signing.KeyringError, match=r"PKCS#11 module .*libnothing\.so does not exist"):
        Pkcs11KeySigner(config, p256.chain)


def test_certificate_for_another_key_is_refused(p256: TokenKey, ca: Ca) -> None:
    for other in (new_key("es256"), new_key("es384")):
        chain = chain_for(other.public_key(), ca)
        with pytest.raises(signing.CertificateProfileError, match="does not belong to the leaf certificate"):
            Pkcs11KeySigner(p256.config, chain)


def test_signer_repr_and_closed_signer(p256: TokenKey) -> None:
    key = Pkcs11KeySigner(p256.config, p256.chain, key_id="hsm")
    assert p256.config.pin not in repr(key)
    assert "claim-p256" in repr(key)
    key.close()
    key.close()  # idempotent
    with pytest.raises(signing.KeyringError, match="was closed"):
        key.sign(b"data")


# --- certificate signing requests --------------------------------------------------------------------------


def test_csr_signed_by_the_token_carries_subject_and_extensions(token: SoftHsmToken) -> None:
    config = token.config("csr-p256")
    public = generate_pkcs11_key(config, "es256")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example AI GmbH"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Example AI claim signer"),
        ]
    )
    request = x509.load_pem_x509_csr(pkcs11_csr(config, subject, "es256"))
    assert request.is_signature_valid
    assert request.subject == subject
    assert request.public_key() == public
    usage = request.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert usage.critical
    assert isinstance(usage.value, x509.KeyUsage)
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert not usage.value.content_commitment
    eku = request.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING_EKU}
    with pytest.raises(signing.KeyringError, match="cannot sign ES384"):
        pkcs11_csr(config, subject, "es384")


# --- the PIN's sources -------------------------------------------------------------------------------------


def test_pin_from_file_and_environment(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("123456\n", encoding="utf-8")
    pin_file.chmod(0o600)
    assert pin_from(pin_file, None, {}) == "123456"
    assert pin_from(None, "HSM_PIN", {"HSM_PIN": "654321"}) == "654321"
    with pytest.raises(signing.KeyringError, match=r"HSM_PIN .* is not set"):
        pin_from(None, "HSM_PIN", {})
    with pytest.raises(signing.KeyringError, match="No PIN is configured"):
        pin_from(None, None, {})
    with pytest.raises(signing.KeyringError, match="Both"):
        pin_from(pin_file, "HSM_PIN", {"HSM_PIN": "1"})
    if os.name == "posix":
        pin_file.chmod(0o644)
        with pytest.raises(signing.KeyringError, match="readable by other users") as caught:
            pin_from(pin_file, None, {})
        _assert_pin_absent(caught.value, "123456")
