"""Verification use case: any file in, an honest report out. Outcomes are data, not exceptions."""

from __future__ import annotations

from dataclasses import replace
from typing import IO

from signing._c2pa import Engine
from signing.errors import VerificationError
from signing.media import sniff
from signing.models import Outcome, VerificationReport
from signing.report import build_report


def inspect_asset(
    engine: Engine, stream: IO[bytes], manifest_data: bytes | None = None, *, detailed: bool = False
) -> VerificationReport:
    """Report on `stream` (seekable). Raises only for unusable input (AssetError), never for a bad signature.

    `manifest_data` is a detached manifest store (a `.c2pa` sidecar) to validate the asset against.
    `detailed` adds the whole manifest store as the engine read it (`manifest_store`).
    """
    media = sniff(stream)
    reading = engine.read(media.mime, stream, manifest_data)
    report = build_report(reading, media.mime, engine.config.trust)
    if detailed and reading.kind == "manifest":
        report = replace(report, manifest_store=reading.store)
    return report


def require_trusted(report: VerificationReport) -> VerificationReport:
    """Raise `VerificationError` unless the report's outcome is `trusted`."""
    if report.outcome is not Outcome.TRUSTED:
        raise VerificationError(report.summary, details={"outcome": report.outcome.value})
    return report
