"""Operator actions on the keyring: generate, import, activate, retire, revoke. Every change is written to
the keyring atomically and to the audit ledger; running workers pick up a newly active key by themselves."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from app.files import write_private
from app.keysource import close_key, keyring_file, pkcs11_config, signer_for_entry
from app.pem_keys import CredentialFiles, load_pem_signer
from app.pkcs11 import generate_pkcs11_key, pkcs11_csr
from app.runtime import GENERATOR, engine_config, load_trust, open_database
from app.settings import Settings
from app.store.ledger import SqlKeyEventLog
from signing import (
    CertificateProfileError,
    DoctorReport,
    Engine,
    KeyEntry,
    KeyEvent,
    Keyring,
    KeyringError,
    KeyState,
    NativeSigner,
    algorithm_for_public_key,
    build_csr,
    certificate_pem,
    check_validity,
    dev_name,
    diagnose,
    is_development,
    issue_leaf,
    key_pem,
    new_key,
    public_key_sha256,
    self_test,
    sha256_fingerprint,
)
from signing import keyring_rules as transitions

ALGORITHMS = ("es256", "es384", "ed25519", "ps256")
LEGACY_ID_DEFAULT = "default"


@dataclass(frozen=True)
class Outcome:
    ring: Keyring
    events: list[KeyEvent]
    dry_run: bool


def now() -> datetime:
    return datetime.now(UTC)


def _relative(settings: Settings, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(settings.resolved_keys_dir.resolve()))
    except ValueError:
        return str(path.resolve())


def _record(settings: Settings, ring: Keyring, events: list[KeyEvent]) -> None:
    certs = {e.id: e.certificate_sha256 for e in ring.entries}
    db = open_database(settings)
    try:
        SqlKeyEventLog(db).record(events, certs)
    finally:
        db.dispose()


def _apply(settings: Settings, change: Callable[[Keyring], transitions.Change], dry_run: bool) -> Outcome:
    ring, events = keyring_file(settings).update(change, dry_run=dry_run)
    if not dry_run:
        _record(settings, ring, events)
    return Outcome(ring, events, dry_run)


def _chain_facts(chain_pem: bytes) -> tuple[x509.Certificate, dict[str, str | bool]]:
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    return leaf, {
        "certificate_sha256": sha256_fingerprint(leaf),
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "development": is_development(leaf),
    }


def ensure_keyring(settings: Settings) -> None:
    """Adopt the pre-keyring single key (signing-chain.pem / signing-key.pem) as the active entry."""
    file = keyring_file(settings)
    if file.exists():
        return
    chain, key = settings.resolved_signing_chain, settings.resolved_signing_key
    if not (chain.is_file() and key.is_file()):
        file.update(lambda ring: (ring, []))  # an empty keyring
        return
    leaf, facts = _chain_facts(chain.read_bytes())
    entry = KeyEntry(
        id=settings.signing_key_id or LEGACY_ID_DEFAULT,
        algorithm=algorithm_for_public_key(leaf.public_key()),
        state=KeyState.ACTIVE,
        storage="pem",
        created_at=now().isoformat(timespec="seconds"),
        public_key_sha256=public_key_sha256(leaf.public_key()),
        key_path=_relative(settings, key),
        key_encrypted=settings.signing_key_passphrase_file is not None,
        chain_path=_relative(settings, chain),
        certificate_sha256=str(facts["certificate_sha256"]),
        subject=str(facts["subject"]),
        issuer=str(facts["issuer"]),
        not_after=str(facts["not_after"]),
        development=bool(facts["development"]),
        activated_at=now().isoformat(timespec="seconds"),
    )
    _apply(settings, lambda ring: transitions.add(ring, entry, now()), dry_run=False)


def generate(
    settings: Settings,
    *,
    alg: str,
    dev: bool,
    key_id: str | None = None,
    organization: str | None = None,
    common_name: str | None = None,
    country: str = "US",
    pkcs11: bool = False,
    encrypt: bool = False,
) -> tuple[KeyEntry, Path, Path | None]:
    """A new key with a CSR for a CA: a PKCS#8 file (0600), or with `pkcs11` a key made inside the token
    (it never leaves it). With `dev`, also a chain from the development CA. The entry starts pending.
    Returns the entry, the CSR path and the chain path (dev only)."""
    if alg not in ALGORITHMS:
        raise KeyringError(f"Unknown algorithm '{alg}'.", hint=f"Use one of {', '.join(ALGORITHMS)}.")
    if dev and settings.is_production:
        raise KeyringError("Development certificates cannot be issued with HALLMARK_ENV=production.")
    ensure_keyring(settings)
    stamp = now()
    kid = transitions.check_key_id(key_id or f"{alg}-{stamp:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}")
    folder = settings.resolved_keys_dir / kid
    if folder.exists():
        raise KeyringError(f"A key folder for '{kid}' exists already: {folder}.")
    org = organization or settings.default_provider
    cn = common_name or f"{org} C2PA claim signer"
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    token = settings.pkcs11_token_label
    public: PublicKeyTypes
    if pkcs11:
        if not token:
            raise KeyringError("Set HALLMARK_PKCS11_TOKEN_LABEL (and the module and PIN) for token keys.")
        config = pkcs11_config(settings, token, kid)
        public = generate_pkcs11_key(config, alg)
        csr = pkcs11_csr(config, subject, alg)
        private = None
    else:
        private = new_key(alg)
        public = private.public_key()
        secret = settings.passphrase() if encrypt else None
        if encrypt and secret is None:
            raise KeyringError(
                "--encrypt needs HALLMARK_SIGNING_KEY_PASSPHRASE_FILE (the passphrase to use)."
            )
        write_private(
            folder / "key.pem", key_pem(private, secret.get_secret_value().encode() if secret else None)
        )
        csr = build_csr(private, country=country, organization=org, common_name=cn, algorithm=alg)
    csr_path = folder / "request.csr.pem"
    write_private(csr_path, csr)
    chain_path: Path | None = None
    facts: dict[str, str | bool] = {}
    if dev:
        chain_path = folder / "chain.pem"
        write_private(chain_path, _dev_chain(settings, public, org))
        _, facts = _chain_facts(chain_path.read_bytes())
    entry = KeyEntry(
        id=kid,
        algorithm=alg,
        state=KeyState.PENDING,
        storage="pkcs11" if pkcs11 else "pem",
        created_at=stamp.isoformat(timespec="seconds"),
        public_key_sha256=public_key_sha256(public),
        key_path=None if pkcs11 else _relative(settings, folder / "key.pem"),
        key_encrypted=encrypt and not pkcs11,
        pkcs11_token=token if pkcs11 else None,
        pkcs11_label=kid if pkcs11 else None,
        chain_path=_relative(settings, chain_path) if chain_path else None,
        certificate_sha256=str(facts["certificate_sha256"]) if facts else None,
        subject=str(facts["subject"]) if facts else None,
        issuer=str(facts["issuer"]) if facts else None,
        not_after=str(facts["not_after"]) if facts else None,
        development=bool(facts.get("development", False)),
    )
    _apply(settings, lambda ring: transitions.add(ring, entry, stamp), dry_run=False)
    return entry, csr_path, chain_path


def _dev_chain(settings: Settings, public: PublicKeyTypes, org: str) -> bytes:
    ca_dir = settings.dev_ca_dir
    inter_key_path, inter_path = ca_dir / "intermediate-ca.key.pem", ca_dir / "intermediate-ca.pem"
    if not inter_key_path.is_file():
        raise KeyringError("No development CA to issue from.", hint="Run `hallmark keys init --dev` first.")
    inter = x509.load_pem_x509_certificate(inter_path.read_bytes())
    inter_key = serialization.load_pem_private_key(inter_key_path.read_bytes(), None)
    if not isinstance(inter_key, ec.EllipticCurvePrivateKey):
        raise KeyringError("The development intermediate key is not an EC key.")
    if not isinstance(public, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise KeyringError("Unsupported public key type for a development certificate.")
    leaf = issue_leaf(dev_name(f"{org} (development)"), public, issuer=inter, issuer_key=inter_key)
    return certificate_pem(leaf) + certificate_pem(inter)


def test_sign(settings: Settings, entry: KeyEntry) -> str:
    """Sign and verify a tiny image with the key through the real engine and the configured trust."""
    key = signer_for_entry(settings, entry)
    try:
        check_validity(key.certificate)
        engine = Engine(engine_config(settings, load_trust(settings)))
        return self_test(engine, NativeSigner(key), GENERATOR)
    finally:
        close_key(key)  # a token key's share of the token's session


def import_chain(settings: Settings, key_id: str, chain_file: Path, *, dry_run: bool = False) -> Outcome:
    ensure_keyring(settings)
    entry = keyring_file(settings).load().get(key_id)
    if entry.state is not KeyState.PENDING:  # before anything is written: never replace a used key's chain
        raise KeyringError(
            f"Key '{key_id}' is {entry.state.value}: a chain can only be imported for a pending key.",
            hint="Generate a new key for a new certificate.",
        )
    chain_pem = chain_file.read_bytes()
    try:
        leaf, facts = _chain_facts(chain_pem)
    except ValueError:
        raise CertificateProfileError(f"{chain_file} holds no PEM certificate chain.") from None
    if public_key_sha256(leaf.public_key()) != entry.public_key_sha256:
        raise CertificateProfileError(
            f"The first certificate in {chain_file} was not issued for key '{key_id}'.",
            hint="The chain must start with the certificate the CA issued for this key's CSR.",
        )
    if settings.is_production and facts["development"]:
        raise CertificateProfileError("Production refuses a development certificate.")
    target = settings.resolved_keys_dir / key_id / "chain.pem"
    candidate = replace(entry, chain_path=_relative(settings, chain_file))
    test_sign(settings, candidate)  # the engine must accept it before it enters the keyring

    def change(ring: Keyring) -> transitions.Change:
        return transitions.import_chain(
            ring,
            key_id,
            chain_path=_relative(settings, target),
            certificate_sha256=str(facts["certificate_sha256"]),
            subject=str(facts["subject"]),
            issuer=str(facts["issuer"]),
            not_after=str(facts["not_after"]),
            development=bool(facts["development"]),
            at=now(),
        )

    outcome = _apply(settings, change, dry_run)  # refuses (nothing written) if the key stopped being pending
    if not dry_run:
        write_private(target, chain_pem)
    return outcome


def activate(settings: Settings, key_id: str, *, dry_run: bool = False) -> Outcome:
    ensure_keyring(settings)
    entry = keyring_file(settings).load().get(key_id)
    if settings.is_production and entry.development:
        raise KeyringError(
            f"Key '{key_id}' has a development certificate; production refuses it.",
            hint="Import a chain issued by your CA for a new key, then activate that key.",
        )
    if entry.chain_path is not None:
        test_sign(settings, entry)  # never activate a key that cannot sign
    return _apply(settings, lambda ring: transitions.activate(ring, key_id, now()), dry_run)


def retire(settings: Settings, key_id: str, *, dry_run: bool = False) -> Outcome:
    ensure_keyring(settings)
    return _apply(settings, lambda ring: transitions.retire(ring, key_id, now()), dry_run)


def revoke(settings: Settings, key_id: str, reason: str, *, dry_run: bool = False) -> Outcome:
    ensure_keyring(settings)
    return _apply(settings, lambda ring: transitions.revoke(ring, key_id, reason, now()), dry_run)


# --- doctor ---------------------------------------------------------------------------------------------


def _allowed_ekus(settings: Settings) -> list[str]:
    return sorted({eku for p in load_trust(settings) for eku in p.allowed_ekus})


def doctor_for_entry(
    settings: Settings, key_id: str | None, *, now: datetime, expiring_within_days: int
) -> DoctorReport:
    """Diagnose a keyring entry (default: the active key), with a test sign through the engine."""
    if keyring_file(settings).exists() or settings.resolved_signing_key.exists():
        ensure_keyring(settings)
    ring = keyring_file(settings).load()
    entry = ring.get(key_id) if key_id else ring.active()
    if entry is None:
        raise KeyringError("There is no active key to check.", hint="Name a key: hallmark keys doctor ID")
    if entry.chain_path is None:
        raise KeyringError(f"Key '{entry.id}' has no certificate chain yet: nothing to check.")
    folder = settings.resolved_keys_dir
    chain_pem = (folder / entry.chain_path).read_bytes()
    common = {
        "now": now,
        "expiring_within_days": expiring_within_days,
        "algorithm": entry.algorithm,
        "allowed_ekus": _allowed_ekus(settings),
        "test_sign": lambda: test_sign(settings, entry),
    }
    if entry.storage == "pkcs11":
        token_key = signer_for_entry(settings, entry)
        try:
            return diagnose(chain_pem, public_key_only=token_key, **common)  # type: ignore[arg-type]
        finally:
            close_key(token_key)
    key_pem = (folder / entry.key_path).read_bytes() if entry.key_path else None
    secret = settings.passphrase() if entry.key_encrypted else None
    passphrase = secret.get_secret_value().encode() if secret else None
    return diagnose(chain_pem, key_pem, passphrase=passphrase, **common)  # type: ignore[arg-type]


def doctor_for_files(
    settings: Settings, chain: Path, key: Path, *, now: datetime, expiring_within_days: int
) -> DoctorReport:
    """Diagnose a chain and key that are not in the keyring yet (e.g. straight from a CA)."""

    def sign_test() -> str:
        signer = load_pem_signer(CredentialFiles(chain, key, "doctor"))
        engine = Engine(engine_config(settings, load_trust(settings)))
        return self_test(engine, NativeSigner(signer), GENERATOR)

    return diagnose(
        chain.read_bytes(),
        key.read_bytes(),
        now=now,
        expiring_within_days=expiring_within_days,
        allowed_ekus=_allowed_ekus(settings),
        test_sign=sign_test,
    )
