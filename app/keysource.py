"""Where the active signing key comes from: the keyring (keys/keyring.json) when it exists, otherwise the
single key named by HALLMARK_SIGNING_CHAIN / HALLMARK_SIGNING_KEY (the layout before keyrings)."""

from __future__ import annotations

from app.keyring_file import KeyringFile
from app.pem_keys import CredentialFiles, load_pem_signer
from app.pkcs11 import Pkcs11Config, Pkcs11KeySigner
from app.settings import Settings
from signing import (
    ConfigError,
    KeyEntry,
    KeyNotFoundError,
    KeyringError,
    KeySigner,
    check_validity,
    is_development,
)


def keyring_file(settings: Settings) -> KeyringFile:
    return KeyringFile(settings.resolved_keys_dir)


def credential_files(settings: Settings) -> CredentialFiles:
    """The pre-keyring single key."""
    secret = settings.passphrase()
    return CredentialFiles(
        chain=settings.resolved_signing_chain,
        key=settings.resolved_signing_key,
        key_id=settings.signing_key_id,
        passphrase=secret.get_secret_value().encode() if secret else None,
    )


def signer_for_entry(settings: Settings, entry: KeyEntry) -> KeySigner:
    folder = settings.resolved_keys_dir
    if entry.chain_path is None:
        raise KeyringError(f"Key '{entry.id}' has no certificate chain yet.")
    if entry.storage == "pem" and entry.key_path:
        secret = settings.passphrase() if entry.key_encrypted else None
        files = CredentialFiles(
            chain=folder / entry.chain_path,
            key=folder / entry.key_path,
            key_id=entry.id,
            passphrase=secret.get_secret_value().encode() if secret else None,
        )
        return load_pem_signer(files, algorithm=entry.algorithm)
    if entry.storage == "pkcs11" and entry.pkcs11_token and entry.pkcs11_label:
        chain_pem = (folder / entry.chain_path).read_bytes()
        config = pkcs11_config(settings, entry.pkcs11_token, entry.pkcs11_label)
        return Pkcs11KeySigner(config, chain_pem, key_id=entry.id, algorithm=entry.algorithm)
    raise KeyringError(f"Key '{entry.id}' has an unknown storage '{entry.storage}'.")


def pkcs11_config(settings: Settings, token_label: str, key_label: str) -> Pkcs11Config:
    if settings.pkcs11_module is None:
        raise ConfigError("A key lives in a PKCS#11 token but HALLMARK_PKCS11_MODULE is not set.")
    return Pkcs11Config(settings.pkcs11_module, token_label, key_label, settings.pkcs11_pin())


def close_key(key: KeySigner) -> None:
    """Release what a key holds beyond this process's memory: a token key's share of the token's logged-in
    session (app/pkcs11/tokens.py counts them; the last one logs out and unregisters the token). A PEM key
    holds nothing. Idempotent."""
    if isinstance(key, Pkcs11KeySigner):
        key.close()


def active_key_signer(settings: Settings) -> KeySigner:
    """The key that signs now, checked against the production guardrails and its validity."""
    keyring = keyring_file(settings)
    if keyring.exists():
        entry = keyring.load().active()
        if entry is None:
            raise KeyNotFoundError(
                "The keyring has no active key.",
                hint="Activate one: hallmark keys list, then hallmark keys activate ID",
            )
        key = signer_for_entry(settings, entry)
    else:
        key = load_pem_signer(credential_files(settings))
    if settings.is_production and is_development(key.certificate):
        raise ConfigError(
            "Production refuses a development signing certificate.",
            hint="Activate a key whose chain your CA issued (hallmark keys import / activate).",
        )
    check_validity(key.certificate)
    return key
