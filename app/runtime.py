"""Per-process state: trust, engine, signer, database, stores. Built in each worker (c2pa contexts do not
survive a fork) by the app's lifespan, and by the CLI for offline commands."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import sqlalchemy as sa

from app.keywatch import SignerWatch
from app.settings import Settings
from app.store.apikeys import ApiKeyStore
from app.store.db import make_engine, migrate
from app.store.idempotency import IdempotencyStore
from app.store.intents import SqlSignIntents
from app.store.key_limits import KeyLimits
from app.store.ledger import SqlLedger
from app.trust.directory import load_trust_dir
from app.trustwatch import TrustWatch
from app.tsa import CircuitBreaker, TsaRelay
from app.watermark_keyring import WatermarkKeyringFile, WatermarkKeyWatch
from signing import (
    ClaimGenerator,
    Clock,
    ConfigError,
    Engine,
    EngineConfig,
    HallmarkError,
    SignContext,
    SystemClock,
    TimestampGuard,
    TimestampPolicy,
    TrustProfile,
)

# The manifest repository (faiss, iscc-core) and the watermark (numpy, scipy) take about half a second to
# import: they load when a runtime is built or a watermark made, not for every CLI command that opens the
# database or reads the keyring through this module.
if TYPE_CHECKING:
    from app.store.manifests import SqlManifestRepository
    from signing import SoftBinder, SpreadSpectrumWatermark

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
    trust_watch: TrustWatch
    signer_watch: SignerWatch
    manifests: SqlManifestRepository
    watermarks: WatermarkKeyWatch
    idempotency: IdempotencyStore | None = None
    key_limits: KeyLimits | None = None
    intents: SqlSignIntents | None = None  # sign intents (app/store/intents.py); None: none are written
    # What "now" is for certificate expiry at request time (readiness, sign); tests set a later one.
    clock: Clock = field(default_factory=SystemClock)

    @property
    def engine(self) -> Engine:
        """The engine with this moment's trust profiles (reloaded when the trust directory changes)."""
        return self.trust_watch.current()[1]

    @property
    def trust(self) -> tuple[TrustProfile, ...]:
        return self.trust_watch.current()[0]

    @property
    def sign_ctx(self) -> SignContext | None:
        """The signing context of the active key (None when no key can sign); take it once per request.
        It carries this moment's watermark key and the manifest repository."""
        self.trust_watch.current()  # a trust change rebuilds the signing context too
        ctx = self.signer_watch.current()
        if ctx is None:
            return None
        return replace(ctx, soft_binder=self.soft_binder(), repository=self.manifests)

    def soft_binder(self) -> SoftBinder | None:
        if not self.settings.soft_binding:
            return None
        from signing import SoftBinder  # noqa: PLC0415 - numpy and scipy load on first use

        ring = self.watermarks.current()
        return SoftBinder(
            engine=watermark_engine(),
            key=ring.active if self.settings.watermark else None,
            detection_keys=ring.detection_keys,
            repository=self.manifests,
            max_pixels=self.settings.soft_binding_max_pixels,
            png_compress_level=self.settings.png_compress_level,
        )

    def close(self) -> None:
        """At shutdown: close the signer (its keys; a token key releases the token's session) and the
        database's connections. The runtime signs nothing afterwards."""
        try:
            self.signer_watch.close()
        finally:
            self.db.dispose()

    @property
    def signer_problem(self) -> str | None:
        """For the operator (logs, CLI): may name files and paths."""
        return self.signer_watch.problem

    @property
    def public_signer_problem(self) -> str | None:
        """For public endpoints: says that, not where (the detail is in the server log)."""
        if self.signer_watch.problem is None:
            return None
        return "the signing key cannot be used (details in the server log; run `hallmark keys doctor`)"


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
        # A TSA-only profile trusts timestamps, never a signer: it does not count.
        if not any(p.anchor_count > 0 for p in trust):
            tsa_only = [p.name for p in trust if p.tsa_anchor_count > 0]
            also = f" ({', '.join(tsa_only)} only trust timestamp authorities)" if tsa_only else ""
            raise ConfigError(
                "Production needs at least one trust profile with signer anchors (no signer could ever be "
                f"reported trusted){also}.",
                hint="Put the trust anchors PEM of your CA or the C2PA trust list in "
                f"{settings.resolved_trust_dir} (hallmark trust update c2pa --sha256 ...).",
            )
    return trust


def load_trust_and_engine(settings: Settings) -> tuple[tuple[TrustProfile, ...], Engine]:
    trust = load_trust(settings)
    return trust, Engine(engine_config(settings, trust))


def engine_config(settings: Settings, trust: tuple[TrustProfile, ...]) -> EngineConfig:
    return EngineConfig(
        trust=trust, thumbnails=settings.thumbnails, ocsp_responders=tuple(settings.ocsp_responders)
    )


def timestamping(settings: Settings) -> tuple[TsaRelay, TimestampGuard] | None:
    """Per process: a loopback relay that gives every TSA request a deadline, and the circuit breaker."""
    if not settings.tsa_url:
        return None
    breaker = CircuitBreaker(settings.tsa_breaker_failures, settings.tsa_breaker_open_seconds)
    guard = TimestampGuard(TimestampPolicy(settings.tsa_policy), breaker)
    return TsaRelay(settings.tsa_url, settings.tsa_deadline_seconds), guard


def build_runtime(settings: Settings, *, require_signer: bool = True) -> Runtime:
    """Everything one process needs. With `require_signer`, an unusable key is fatal (fail fast at start);
    without it (offline verify, audit) the problem is recorded and signing stays unavailable."""
    from app.store.manifests import SqlManifestRepository  # noqa: PLC0415 - faiss loads on first use

    trust, engine = load_trust_and_engine(settings)
    trust_watch = TrustWatch(settings, trust, engine, load_trust_and_engine)
    db = open_database(settings)
    ledger = SqlLedger(db)
    watch = SignerWatch(settings, engine, ledger, GENERATOR, timestamping=timestamping(settings))
    trust_watch.on_change(watch.use_engine)  # signing (edits quote their parent's trust) follows it too
    try:
        try:
            watch.start()
        except HallmarkError as exc:
            if require_signer:
                raise
            watch.problem = exc.message
        keys = ApiKeyStore(db, cache_seconds=settings.api_key_cache_seconds)
        watermarks = WatermarkKeyWatch(watermark_keyring(settings), settings.keyring_poll_seconds)
        idempotency = IdempotencyStore(
            db, ttl_seconds=settings.idempotency_ttl_seconds, lease_seconds=settings.idempotency_lease_seconds
        )
        return Runtime(
            settings, db, ledger, keys, trust_watch, watch, SqlManifestRepository(db), watermarks,
            idempotency=idempotency, key_limits=KeyLimits(db), intents=SqlSignIntents(db),
        )  # fmt: skip
    except BaseException:
        # A failed start releases what it opened: the TSA relay, the key (a token's session), the database.
        watch.close()
        db.dispose()
        raise


@functools.cache
def watermark_engine() -> SpreadSpectrumWatermark:
    """One per process, made on first use (importing it loads numpy and scipy)."""
    from signing import SpreadSpectrumWatermark  # noqa: PLC0415 - numpy and scipy load on first use

    return SpreadSpectrumWatermark()


def watermark_keyring(settings: Settings) -> WatermarkKeyringFile:
    """The keyring file; development creates a first key when there is none, production refuses to mark
    without one it was given (a key made silently on one worker would differ from the next one's)."""
    file = WatermarkKeyringFile(settings.resolved_watermark_keyring)
    if not settings.watermark:
        return file
    if file.exists():
        active = file.load().active
        if settings.is_production and active is not None and active.key_id.startswith("dev-"):
            raise ConfigError(
                f"Production refuses the development watermark key in {file.path}.",
                hint="Run `hallmark watermark rotate` to make a production key (the development key keeps "
                "detecting).",
            )
        return file
    if settings.is_production:
        raise ConfigError(
            f"Watermarking is on but there is no watermark keyring at {file.path}.",
            hint="Run `hallmark watermark rotate` once (and share the file with every worker), or set "
            "HALLMARK_WATERMARK=false to sign images without the invisible watermark.",
        )
    file.rotate("dev-watermark", only_if_missing=True)  # another worker may be making it right now
    return file
