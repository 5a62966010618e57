"""Signing use case: one generated asset in, the same asset with AI-labelled credentials out."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any

from signing._c2pa import Engine, NativeSigner
from signing.completeness import DEFAULT_MAX_PIXELS, check_complete
from signing.errors import SidecarUnavailableError
from signing.hashing import sha256_stream
from signing.manifest import (
    ClaimGenerator,
    build_manifest_definition,
    new_manifest_id,
    parent_ingredient_definition,
    utc_timestamp,
)
from signing.media import may_embed_manifest, sniff
from signing.models import GenerationInfo, MediaType, OutputMode, SignedAsset
from signing.ports import Clock, Ledger, LedgerEntry
from signing.timestamp import TimestampGuard, TimestampOutcome
from signing.vocabulary import COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA

if TYPE_CHECKING:  # soft binding pulls in numpy and friends: loaded only when a sign uses it
    from signing.softbinding.marking import SoftBinder, SoftBindings
    from signing.softbinding.repository import ManifestRepository, RepositoryEntry


@dataclass(frozen=True)
class Timestamping:
    """RFC 3161 timestamps for this key: a signer pointed at the TSA (through the deadline relay) and the
    guard that applies the circuit breaker and the require / best-effort policy."""

    signer: NativeSigner
    guard: TimestampGuard


@dataclass(frozen=True)
class SignContext:
    """What every sign in one process shares: the engine, the signer, the ledger, the clock."""

    engine: Engine
    signer: NativeSigner
    ledger: Ledger
    clock: Clock
    generator: ClaimGenerator
    timestamps: Timestamping | None = None
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    # Watermark + fingerprints for images, and the repository every signed manifest store is kept in.
    soft_binder: SoftBinder | None = None
    repository: ManifestRepository | None = None


_LABEL = re.compile(r"[\x21-\x7e]{1,200}")


def printable_label(value: object) -> str | None:
    """The parent's manifest label comes from the client's file: it reaches a response header and the
    ledger only if it is plain printable ASCII (no CR/LF, no non-latin-1 text)."""
    return value if isinstance(value, str) and _LABEL.fullmatch(value) else None


@dataclass(frozen=True)
class _Parent:
    """Credentials the input already carries: they become the parent ingredient, never stripped."""

    manifest_id: str | None  # printable, or None
    ingredient: dict[str, object]


def sign_asset(
    ctx: SignContext,
    source: IO[bytes],
    dest: IO[bytes],
    info: GenerationInfo,
    *,
    mode: OutputMode = OutputMode.EMBEDDED,
    api_key_id: str | None = None,
    manifest_id: str | None = None,
    input_sha256: str | None = None,
) -> SignedAsset:
    """Sign `source` (seekable) into `dest` (seekable, empty) and record it in the ledger.

    The ledger write happens before this returns: if it fails, `LedgerError` propagates and the caller
    must not release `dest`. Existing credentials in `source` become the parent ingredient. `manifest_id`
    is the new manifest's id when the caller chose it beforehand (to record its intent), else a fresh one;
    `input_sha256` the hash of `source`'s bytes when the caller computed it for that intent (not read again).
    """
    media = check_input(source, max_pixels=ctx.max_image_pixels)
    if input_sha256 is None:
        input_sha256, _ = sha256_stream(source)
    parent = _read_parent(ctx.engine, media, source)
    if parent is not None and info.source_type_defaulted:
        info = replace(info, digital_source_type=COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA)
    bindings = _soft_bindings(ctx, media, source, mode, has_parent=parent is not None)
    when = ctx.clock.now()
    manifest_id = manifest_id or new_manifest_id()
    agent = {"name": ctx.generator.name, "version": ctx.generator.version}
    definition = build_manifest_definition(
        info,
        manifest_id=manifest_id,
        generator=ctx.generator,
        when=when,
        has_parent=parent is not None,
        default_title=f"AI-generated {media.kind}.{media.extension}",
        extra_actions=bindings.actions(utc_timestamp(when), agent) if bindings else None,
        extra_assertions=bindings.assertions() if bindings else None,
    )
    asset = bindings.asset if bindings and bindings.asset else source
    manifest_bytes, timestamp = _engine_sign(ctx, definition, media, asset, dest, parent, mode, source)
    if mode is OutputMode.SIDECAR:
        _replace_with_sidecar(dest, manifest_bytes, media, input_sha256)
    output_sha256, output_size = sha256_stream(dest)
    signed = SignedAsset(
        manifest_id=manifest_id,
        media_type=media,
        output_mode=mode,
        input_sha256=input_sha256,
        output_sha256=output_sha256,
        output_size=output_size,
        key_id=ctx.signer.key.key_id,
        certificate_sha256=ctx.signer.certificate_sha256,
        signed_at=when,
        parent_manifest_id=parent.manifest_id if parent else None,
        generation=info,
        timestamped=timestamp.timestamped,
        timestamp_skipped_reason=timestamp.reason,
        watermark_id=bindings.watermark_id if bindings else None,
        watermark_skipped=bindings.watermark_skipped.value
        if bindings and bindings.watermark_skipped
        else None,
    )
    ctx.ledger.record(_ledger_entry(signed, api_key_id))
    if ctx.repository is not None:
        ctx.repository.put(_repository_entry(signed, manifest_bytes, bindings))
    return signed


def _soft_bindings(
    ctx: SignContext, media: MediaType, source: IO[bytes], mode: OutputMode, *, has_parent: bool
) -> SoftBindings | None:
    if ctx.soft_binder is None:
        return None
    return ctx.soft_binder.bind(media, source, sidecar=mode is OutputMode.SIDECAR, has_parent=has_parent)


def _repository_entry(
    signed: SignedAsset, manifest_store: bytes, bindings: SoftBindings | None
) -> RepositoryEntry:
    from signing.softbinding.repository import RepositoryEntry  # noqa: PLC0415 - numpy only when used

    fingerprints = bindings.fingerprints if bindings else None
    return RepositoryEntry(
        manifest_id=signed.manifest_id,
        manifest_store=manifest_store,
        media_type=signed.media_type.mime,
        watermark_id=signed.watermark_id,
        iscc=fingerprints.iscc if fingerprints else (bindings.media_iscc if bindings else None),
        pdq=fingerprints.pdq if fingerprints else None,
        key_id=signed.key_id,
        created_at=signed.signed_at,
        confirmation=bindings.confirmation.to_bytes() if bindings and bindings.confirmation else None,
    )


def check_input(source: IO[bytes], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> MediaType:
    """Every check that refuses the input runs here, before any hashing or signing: the media type comes
    from the magic bytes (never the client's claim), and a truncated or undecodable file is refused (422)."""
    media = sniff(source)
    check_complete(media, source, max_pixels=max_pixels)
    return media


def _read_parent(engine: Engine, media: MediaType, source: IO[bytes]) -> _Parent | None:
    existing = engine.read(media.mime, source) if may_embed_manifest(media, source) else None
    if existing is None or existing.kind not in ("manifest", "error"):
        return None
    # Incoming credentials are never stripped, even broken ones: the engine records their state.
    return _Parent(
        manifest_id=printable_label(existing.store.get("active_manifest")),
        ingredient=parent_ingredient_definition(f"parent.{media.extension}"),
    )


def _engine_sign(
    ctx: SignContext,
    definition: dict[str, Any],
    media: MediaType,
    source: IO[bytes],
    dest: IO[bytes],
    parent: _Parent | None,
    mode: OutputMode,
    parent_source: IO[bytes],
) -> tuple[bytes, TimestampOutcome]:
    """The engine's manifest bytes, with a timestamp when the TSA (and its guard) allow one."""

    def attempt(signer: NativeSigner) -> bytes:
        dest.seek(0)
        dest.truncate()  # a failed timestamped attempt may have left bytes behind
        ingredient = parent.ingredient if parent else None
        sidecar = mode is OutputMode.SIDECAR
        return ctx.engine.sign(
            definition,
            signer,
            media.mime,
            source,
            dest,
            parent=ingredient,
            sidecar=sidecar,
            parent_source=parent_source if parent_source is not source else None,
        )

    stamping = ctx.timestamps
    if stamping is None:
        return attempt(ctx.signer), TimestampOutcome(timestamped=ctx.signer.tsa_url is not None)
    return stamping.guard.sign(lambda: attempt(stamping.signer), lambda: attempt(ctx.signer))


def _replace_with_sidecar(dest: IO[bytes], manifest: bytes, media: MediaType, input_sha256: str) -> None:
    # Some handlers (MP3, FLAC, PDF; any input with a manifest) rewrite the asset even when not embedding
    # and bind the hash to the rewritten bytes: the sidecar would not match the caller's file. Refuse.
    if sha256_stream(dest)[0] != input_sha256:
        raise SidecarUnavailableError(
            f"A detached manifest cannot be made for this {media.mime} file: the engine must rewrite its "
            "bytes (always for MP3, FLAC and PDF; for any file that already carries credentials), so the "
            "manifest would not match your file.",
            hint="Use embedded output for this file.",
        )
    dest.seek(0)
    dest.truncate()
    dest.write(manifest)


def _ledger_entry(signed: SignedAsset, api_key_id: str | None) -> LedgerEntry:
    info = signed.generation
    return LedgerEntry(
        id=str(uuid.uuid4()),
        created_at=signed.signed_at,
        api_key_id=api_key_id,
        provider=info.provider,
        model_name=info.model_name,
        model_version=info.model_version,
        digital_source_type=info.digital_source_type,
        media_type=signed.media_type.mime,
        output_mode=signed.output_mode.value,
        input_sha256=signed.input_sha256,
        output_sha256=signed.output_sha256,
        manifest_id=signed.manifest_id,
        parent_manifest_id=signed.parent_manifest_id,
        key_id=signed.key_id,
        certificate_sha256=signed.certificate_sha256,
        timestamped=signed.timestamped,
    )
