"""Recovery on verify (HTTP and CLI): when a file's manifest is gone or no longer matches it, look for the
watermark and the fingerprints in the manifest repository (`signing.recover_asset` does the work)."""

from __future__ import annotations

from dataclasses import replace
from typing import IO

from app.media_binding import media_code
from app.runtime import watermark_engine
from app.settings import Settings
from signing import (
    Engine,
    Integrity,
    ManifestRepository,
    Recovery,
    VerificationReport,
    WatermarkKey,
    not_searched,
    recover_asset,
    recover_media,
)


def with_recovery(
    settings: Settings,
    engine: Engine,
    repository: ManifestRepository,
    keys: tuple[WatermarkKey, ...],
    asset: IO[bytes],
    report: VerificationReport,
) -> VerificationReport:
    """`report`, plus `recovery` when the file has no intact manifest (and recovery is on)."""
    if report.integrity is Integrity.INTACT:
        return report
    if not settings.recovery:
        return replace(report, recovery=not_searched("recovery is switched off on this service"))
    if report.media_type.startswith(("audio/", "video/")):
        return replace(report, recovery=_media_recovery(settings, engine, repository, asset, report))
    recovery = recover_asset(
        asset,
        mime=report.media_type,
        max_pixels=settings.soft_binding_max_pixels,
        engine=engine,
        watermark=watermark_engine(),
        keys=keys,
        repository=repository,
    )
    return replace(report, recovery=recovery)


def _media_recovery(
    settings: Settings,
    engine: Engine,
    repository: ManifestRepository,
    asset: IO[bytes],
    report: VerificationReport,
) -> Recovery:
    code = media_code(asset, settings)
    if code.iscc is None:
        return not_searched(f"no ISCC code could be made for this file ({code.reason or 'unsupported'})")
    return recover_media(code.iscc, mime=report.media_type, asset=asset, engine=engine, repository=repository)
