"""Sign in an isolated worker: every decode of the upload (sniff and completeness check, the parent's
credentials, the watermark embed and fingerprints, ffmpeg/fpcalc for audio and video) and the engine's sign
run here, on a file opened by path, under the worker's limits.

The private key never enters a worker. The engine signs through a callback signer whose callback sends the
to-be-signed bytes to the service over the worker's pipe (`ServiceChannel.call("sign", data)`); the service
signs with its KeySigner (PEM or PKCS#11) and answers with the signature. The TSA's circuit breaker is the
service's too (`breaker.*` calls), so the guard, its policy and the breaker's state are the ones every sign
of the service shares; the timestamp itself the engine fetches from the service's loopback TSA relay (its
URL is in the job). The ledger row and the repository entry are not written here: the worker returns them,
and the service commits them before the signed file leaves (sign -> commit -> respond).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509

from app.media_binding import MediaCode, media_code
from app.runtime import watermark_engine
from app.settings import Settings
from signing import (
    ClaimGenerator,
    Engine,
    GenerationInfo,
    LedgerEntry,
    NativeSigner,
    OutputMode,
    RepositoryEntry,
    SignContext,
    SignedAsset,
    SoftBinder,
    SystemClock,
    TimestampGuard,
    Timestamping,
    TimestampPolicy,
    WatermarkKey,
    load_chain,
    sign_asset,
)


class Channel(Protocol):
    def call(self, name: str, *args: object) -> Any: ...


@dataclass(frozen=True)
class KeyFacts:
    """The public half of the service's signing key: what a callback signer needs besides the signature."""

    key_id: str
    algorithm: str
    chain_pem: bytes


@dataclass(frozen=True)
class SignJob:
    path: str  # the upload (0600, made by the service)
    out_path: str  # where the output goes: an empty 0600 file the service made and will stream
    info: GenerationInfo
    mode: OutputMode
    api_key_id: str | None
    key: KeyFacts
    generator: ClaimGenerator
    max_image_pixels: int
    # Timestamps: the service's TSA relay and the policy; None without a TSA.
    tsa_url: str | None
    tsa_policy: str | None
    # Soft binding (None: off): the watermark key that marks (None: no marking) and the keys that detect.
    soft_binding: bool
    watermark_key: WatermarkKey | None
    detection_keys: tuple[WatermarkKey, ...]
    # The manifest id the service recorded in the sign's intent before sending the job (None: a fresh one).
    manifest_id: str | None = None
    # The upload's SHA-256, hashed by the service while it made the copy (for the intent): not read again.
    input_sha256: str | None = None


@dataclass(frozen=True)
class SignResult:
    signed: SignedAsset
    ledger: LedgerEntry  # for the service to record before the file leaves
    repository: RepositoryEntry | None  # likewise, when the service keeps a manifest repository
    media: MediaCode


class RemoteKey:
    """A KeySigner whose `sign` is the service's: the claim bytes go over the pipe, the signature comes
    back. Holds only the certificate chain."""

    def __init__(self, facts: KeyFacts, channel: Channel):
        self._facts = facts
        self._channel = channel

    @property
    def key_id(self) -> str:
        return self._facts.key_id

    @property
    def algorithm(self) -> str:
        return self._facts.algorithm

    @property
    def chain_pem(self) -> bytes:
        return self._facts.chain_pem

    @cached_property
    def certificate(self) -> x509.Certificate:
        return load_chain(self._facts.chain_pem, source="the signing key")[0]

    def sign(self, data: bytes) -> bytes:
        signature: bytes = self._channel.call("sign", data)
        return signature


class RemoteBreaker:
    """The service's TSA circuit breaker, asked over the pipe (one breaker for every worker)."""

    def __init__(self, channel: Channel):
        self._channel = channel

    def allow(self) -> bool:
        return bool(self._channel.call("breaker", "allow"))

    def success(self) -> None:
        self._channel.call("breaker", "success")

    def failure(self) -> None:
        self._channel.call("breaker", "failure")

    def release(self) -> None:
        self._channel.call("breaker", "release")

    def retry_after(self) -> float:
        return float(self._channel.call("breaker", "retry_after"))


class Captured:
    """Ledger and repository ports that keep what sign_asset writes, for the service to commit; the
    watermark-id lookup (a fresh id must not be taken) asks the service's repository."""

    def __init__(self, channel: Channel):
        self._channel = channel
        self.ledger: LedgerEntry | None = None
        self.repository: RepositoryEntry | None = None

    def record(self, entry: LedgerEntry) -> None:
        self.ledger = entry

    def put(self, entry: RepositoryEntry) -> None:
        self.repository = entry

    def by_watermark(self, watermark_id: str) -> RepositoryEntry | None:
        taken = bool(self._channel.call("watermark_taken", watermark_id))
        return self.repository if taken else None  # only "is it taken" matters to the caller

    def get(self, manifest_id: str) -> RepositoryEntry | None:
        raise NotImplementedError  # sign never reads entries

    def nearest(self, **_: object) -> list[Any]:
        raise NotImplementedError

    def near_pictures(self, pdq: object, limit: int) -> list[RepositoryEntry]:
        raise NotImplementedError

    def near_watermarks(self, word: bytes | None, limit: int) -> list[RepositoryEntry]:
        raise NotImplementedError

    def watermark_count(self) -> int:
        raise NotImplementedError


# Per worker process: the engine's callback signers, made once per key (and TSA relay).
_SIGNERS: dict[tuple[KeyFacts, str | None], NativeSigner] = {}


def _signer(facts: KeyFacts, tsa_url: str | None, channel: Channel) -> NativeSigner:
    signer = _SIGNERS.get((facts, tsa_url))
    if signer is None:
        if len(_SIGNERS) >= 8:  # keys rotate rarely: forget the old ones
            _SIGNERS.clear()
        signer = NativeSigner(RemoteKey(facts, channel), tsa_url)
        _SIGNERS[(facts, tsa_url)] = signer
    return signer


def run_sign(job: SignJob, settings: Settings, engine: Engine, channel: Channel) -> SignResult:
    captured = Captured(channel)
    with Path(job.path).open("rb") as source, Path(job.out_path).open("r+b") as dest:
        code = media_code(source, settings) if job.soft_binding else MediaCode(None, None)
        binder = None
        if job.soft_binding:
            binder = SoftBinder(
                engine=watermark_engine(),
                key=job.watermark_key,
                detection_keys=job.detection_keys,
                repository=captured,
                max_pixels=settings.soft_binding_max_pixels,
                png_compress_level=settings.png_compress_level,
                media_iscc=code.iscc,
            )
        stamps = None
        if job.tsa_url is not None and job.tsa_policy is not None:
            guard = TimestampGuard(TimestampPolicy(job.tsa_policy), RemoteBreaker(channel))
            stamps = Timestamping(_signer(job.key, job.tsa_url, channel), guard)
        ctx = SignContext(
            engine,
            _signer(job.key, None, channel),
            captured,
            SystemClock(),
            job.generator,
            stamps,
            max_image_pixels=job.max_image_pixels,
            soft_binder=binder,
            repository=captured,
        )
        signed = sign_asset(
            ctx,
            source,
            dest,
            job.info,
            mode=job.mode,
            api_key_id=job.api_key_id,
            manifest_id=job.manifest_id,
            input_sha256=job.input_sha256,
        )
        dest.flush()
    assert captured.ledger is not None, "sign_asset records every signature"
    return SignResult(signed, captured.ledger, captured.repository, code)
