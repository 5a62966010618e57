"""First-run set-up for development: a dev PKI, its trust profile, the database, one API key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.dev_pki import create_dev_pki
from app.files import write_private
from app.keyadmin import LEGACY_ID_DEFAULT, ensure_keyring
from app.keysource import keyring_file
from app.settings import Settings
from app.store.apikeys import ApiKeyStore
from app.store.db import make_engine, migrate
from signing import ConfigError, KeyringError, KeyState

DEV_TRUST_PROFILE = "hallmark-dev"


@dataclass(frozen=True)
class DevInit:
    created_pki: bool
    api_key: str | None  # plaintext, only when one was created now


def init_dev_keys(settings: Settings, *, force: bool = False) -> bool:
    """Create the development PKI and trust profile unless a signing key exists. Returns True if created."""
    if settings.is_production:
        raise ConfigError("Development keys cannot be created with HALLMARK_ENV=production.")
    chain, key = settings.resolved_signing_chain, settings.resolved_signing_key
    if (chain.exists() or key.exists()) and not force:
        return False
    if force:
        _check_force_allowed(settings)
    pki = create_dev_pki(
        settings.dev_ca_dir, chain, key, provider=f"{settings.default_provider} (development)"
    )
    trust = settings.resolved_trust_dir / f"{DEV_TRUST_PROFILE}.pem"
    write_private(trust, pki.root.read_bytes())
    keyring = keyring_file(settings)
    if force and keyring.exists():
        keyring.path.unlink()
    ensure_keyring(settings)  # the new key becomes the keyring's first, active entry
    return True


def _check_force_allowed(settings: Settings) -> None:
    """`--force` rebuilds the keyring from the legacy files: allowed only while that loses nothing.

    The keyring may then hold nothing, or just the adopted legacy key (still active, still at the legacy
    paths). Any other entry (a generated, imported, retired or revoked key) would vanish without an audit
    event, and its id could be reused.
    """
    keyring = keyring_file(settings)
    if not keyring.exists():
        return
    entries = keyring.load().entries
    if not entries:
        return
    keys_dir = settings.resolved_keys_dir.resolve()
    legacy = (
        settings.signing_key_id or LEGACY_ID_DEFAULT,
        KeyState.ACTIVE,
        "pem",
        _relative(keys_dir, settings.resolved_signing_key),
        _relative(keys_dir, settings.resolved_signing_chain),
    )
    if [(e.id, e.state, e.storage, e.key_path, e.chain_path) for e in entries] == [legacy]:
        return
    listed = ", ".join(f"{e.id} ({e.state.value})" for e in entries)
    raise KeyringError(
        f"Refusing `keys init --dev --force`: the keyring {keyring.path} holds keys it would drop "
        f"without a trace: {listed}.",
        hint="Use hallmark keys generate --dev and keys activate to rotate (the keyring keeps the history).",
    )


def _relative(keys_dir: Path, path: Path) -> str:
    """A path as the keyring records it: relative to the keys directory when inside it."""
    try:
        return str(path.resolve().relative_to(keys_dir))
    except ValueError:
        return str(path.resolve())


def init_dev(settings: Settings) -> DevInit:
    """What `hallmark serve --dev` does before serving; repeated runs reuse keys, database and API keys."""
    created = init_dev_keys(settings)
    db = make_engine(settings.resolved_database_url)
    try:
        migrate(db)
        store = ApiKeyStore(db)
        token = None
        if store.count_active() == 0:
            _, token = store.create("development", {"sign"})
        return DevInit(created, token)
    finally:
        db.dispose()
