"""Per-process state: trust, engine, signer, database, stores. Built in each worker (c2pa contexts do not
survive a fork) by the app's lifespan, and by the CLI for offline commands."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from app.settings import Settings
from app.store.apikeys import ApiKeyStore
from app.store.db import make_engine, migrate
from app.store.ledger import SqlLedger
from signing import (
    ClaimGenerator,
    ConfigError,
    CredentialFiles,
    Engine,
    EngineConfig,
    HallmarkError,
    NativeSigner,
    PemKeySigner,
    SignContext,
    SystemClock,
    TrustProfile,
    check_validity,
    is_development,
    load_trust_dir,
    self_test,
)

log = logging.getLogger("hallmark")

try:
    from importlib.metadata import version

    HALLMARK_VERSION = version("hallmark")
except Exception:  # pragma: no cover - running from a source tree without install
    HALLMARK_VERSION = "0.0.0"

GENERATOR = ClaimGenerator("Hallmark", HALLMARK_VERSION)


@dataclass
class Runtime:
    settings: Settings
    db: sa.Engine
    ledger: SqlLedger
    api_keys: ApiKeyStore
    engine: Engine
    trust: tuple[TrustProfile, ...]
    sign_ctx: (
        SignContext | None
    )  # None when the signing key is unusable: the service verifies but is not ready
    signer_problem: str | None
    cert_not_after: datetime | None


def open_database(settings: Settings) -> sa.Engine:
    db = make_engine(settings.resolved_database_url)
    migrate(db)
    return db


def load_trust(settings: Settings) -> tuple[TrustProfile, ...]:
    trust = load_trust_dir(settings.resolved_trust_dir)
    if settings.is_production:
        dev = [p.name for p in trust if p.development]
        if dev:
            raise ConfigError(
                f"Production refuses development trust profiles: {', '.join(dev)}.",
                hint=f"Remove them from {settings.resolved_trust_dir} or set HALLMARK_ENV=development.",
            )
        if not trust:
            raise ConfigError(
                "Production needs at least one trust profile (no signer could ever be reported trusted).",
                hint="Put the trust anchors PEM of your CA or the C2PA trust list in "
                f"{settings.resolved_trust_dir}.",
            )
    return trust


def credential_files(settings: Settings) -> CredentialFiles:
    secret = settings.passphrase()
    return CredentialFiles(
        chain=settings.resolved_signing_chain,
        key=settings.resolved_signing_key,
        key_id=settings.signing_key_id,
        passphrase=secret.get_secret_value().encode() if secret else None,
    )


def load_signer(settings: Settings) -> NativeSigner:
    key = PemKeySigner.from_files(credential_files(settings))
    if settings.is_production and is_development(key.certificate):
        raise ConfigError(
            "Production refuses a development signing certificate.",
            hint="Configure a key issued by your CA (HALLMARK_SIGNING_CHAIN / HALLMARK_SIGNING_KEY).",
        )
    check_validity(key.certificate)
    return NativeSigner(key, settings.tsa_url)


def build_runtime(settings: Settings, *, require_signer: bool = True) -> Runtime:
    """Everything one process needs. With `require_signer`, an unusable key is fatal (fail fast at start);
    without it (offline verify, audit) the problem is recorded and signing stays unavailable."""
    trust = load_trust(settings)
    engine = Engine(EngineConfig(trust=trust, thumbnails=settings.thumbnails))
    db = open_database(settings)
    ledger = SqlLedger(db)
    sign_ctx: SignContext | None = None
    problem: str | None = None
    not_after: datetime | None = None
    try:
        signer = load_signer(settings)
        self_test(engine, signer, GENERATOR)
        sign_ctx = SignContext(engine, signer, ledger, SystemClock(), GENERATOR)
        not_after = signer.key.certificate.not_valid_after_utc
    except HallmarkError as exc:
        if require_signer:
            raise
        problem = exc.message
    keys = ApiKeyStore(db, cache_seconds=settings.api_key_cache_seconds)
    return Runtime(settings, db, ledger, keys, engine, trust, sign_ctx, problem, not_after)
