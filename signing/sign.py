"""Signing use case: one generated asset in, the same asset with AI-labelled credentials out."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from typing import IO

from signing._c2pa import Engine, NativeSigner
from signing.certs import sha256_fingerprint
from signing.completeness import check_complete
from signing.errors import SidecarUnavailableError
from signing.hashing import sha256_stream
from signing.manifest import (
    ClaimGenerator,
    build_manifest_definition,
    new_manifest_id,
    parent_ingredient_definition,
)
from signing.media import may_embed_manifest, sniff
from signing.models import GenerationInfo, OutputMode, SignedAsset
from signing.ports import Clock, Ledger, LedgerEntry
from signing.timestamp import TimestampGuard, TimestampOutcome
from signing.vocabulary import COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA


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


_LABEL = re.compile(r"[\x21-\x7e]{1,200}")


def _printable_label(value: object) -> str | None:
    """The parent's manifest label comes from the client's file: it reaches a response header and the
    ledger only if it is plain printable ASCII (no CR/LF, no non-latin-1 text)."""
    return value if isinstance(value, str) and _LABEL.fullmatch(value) else None


def sign_asset(
    ctx: SignContext,
    source: IO[bytes],
    dest: IO[bytes],
    info: GenerationInfo,
    *,
    mode: OutputMode = OutputMode.EMBEDDED,
    api_key_id: str | None = None,
) -> SignedAsset:
    """Sign `source` (seekable) into `dest` (seekable, empty) and record it in the ledger.

    The ledger write happens before this returns: if it fails, `LedgerError` propagates and the caller
    must not release `dest`. Existing credentials in `source` become the parent ingredient.
    """
    media = sniff(source)
    check_complete(media, source)  # a truncated or undecodable file is refused (422), never signed
    input_sha256, _ = sha256_stream(source)
    parent_id: str | None = None
    parent: dict[str, object] | None = None
    existing = ctx.engine.read(media.mime, source) if may_embed_manifest(media, source) else None
    if existing is not None and existing.kind in ("manifest", "error"):
        # Incoming credentials are never stripped, even broken ones: the engine records their state.
        parent_id = _printable_label(existing.store.get("active_manifest"))
        parent = parent_ingredient_definition(f"parent.{media.extension}")
    if parent is not None and info.source_type_defaulted:
        info = replace(info, digital_source_type=COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA)
    when = ctx.clock.now()
    manifest_id = new_manifest_id()
    definition = build_manifest_definition(
        info,
        manifest_id=manifest_id,
        generator=ctx.generator,
        when=when,
        has_parent=parent is not None,
        default_title=f"AI-generated {media.kind}.{media.extension}",
    )
    sidecar = mode is OutputMode.SIDECAR

    def engine_sign(signer: NativeSigner) -> bytes:
        dest.seek(0)
        dest.truncate()  # a failed timestamped attempt may have left bytes behind
        return ctx.engine.sign(definition, signer, media.mime, source, dest, parent=parent, sidecar=sidecar)

    stamping = ctx.timestamps
    if stamping is None:
        manifest_bytes = engine_sign(ctx.signer)
        timestamp = TimestampOutcome(timestamped=ctx.signer.tsa_url is not None)
    else:
        manifest_bytes, timestamp = stamping.guard.sign(
            lambda: engine_sign(stamping.signer), lambda: engine_sign(ctx.signer)
        )
    if mode is OutputMode.SIDECAR:
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
        dest.write(manifest_bytes)
    output_sha256, output_size = sha256_stream(dest)
    key = ctx.signer.key
    cert_sha = sha256_fingerprint(key.certificate)
    ctx.ledger.record(
        LedgerEntry(
            id=str(uuid.uuid4()),
            created_at=when,
            api_key_id=api_key_id,
            provider=info.provider,
            model_name=info.model_name,
            model_version=info.model_version,
            digital_source_type=info.digital_source_type,
            media_type=media.mime,
            output_mode=mode.value,
            input_sha256=input_sha256,
            output_sha256=output_sha256,
            manifest_id=manifest_id,
            parent_manifest_id=parent_id,
            key_id=key.key_id,
            certificate_sha256=cert_sha,
            timestamped=timestamp.timestamped,
        )
    )
    return SignedAsset(
        manifest_id=manifest_id,
        media_type=media,
        output_mode=mode,
        input_sha256=input_sha256,
        output_sha256=output_sha256,
        output_size=output_size,
        key_id=key.key_id,
        certificate_sha256=cert_sha,
        signed_at=when,
        parent_manifest_id=parent_id,
        generation=info,
        timestamped=timestamp.timestamped,
        timestamp_skipped_reason=timestamp.reason,
    )
