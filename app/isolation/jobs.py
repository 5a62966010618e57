"""What an isolated worker does: the untrusted half of verify, of recovery and of byContent, on a file it
opens by path. Results are plain dataclasses of the core, sent back over the worker's pipe."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from app.media_binding import MediaCode, media_code
from app.runtime import watermark_engine
from app.settings import Settings
from signing import (
    ConfirmationPrint,
    Engine,
    EngineConfig,
    HallmarkError,
    ImageEvidence,
    Integrity,
    Recovery,
    VerificationReport,
    WatermarkKey,
    asset_evidence,
    confirm_asset,
    content_evidence,
    inspect_asset,
)


@dataclass(frozen=True)
class WorkerConfig:
    """Sent to a worker before its first job, and again whenever the parent's engine configuration (trust)
    is another object than the one the worker last received."""

    settings: Settings
    engine: EngineConfig


@dataclass(frozen=True)
class VerifyJob:
    path: str
    sidecar_path: str | None
    detailed: bool
    keys: tuple[WatermarkKey, ...]  # this moment's detection keys, from the parent's keyring watch


@dataclass(frozen=True)
class VerifyResult:
    report: VerificationReport
    # Only when the file has no intact manifest and recovery is on: an image's evidence (or why it cannot
    # be searched), an audio/video file's ISCC code.
    evidence: ImageEvidence | Recovery | None = None
    media: MediaCode | None = None


@dataclass(frozen=True)
class ContentJob:
    path: str
    alg: str | None
    keys: tuple[WatermarkKey, ...]


@dataclass(frozen=True)
class ConfirmJob:
    path: str
    stored: bytes  # a repository entry's confirmation print (to_bytes)


@dataclass(frozen=True)
class PreflightJob:
    """Sign's pre-flight: the engine's read of the input (its container and any parent credentials) and the
    full decode of an image, under the worker's limits, before the service signs it in its own process.
    Errors are not reported (sign raises its own, from the same checks, in the service): only a crash or a
    limit passed is."""

    path: str
    max_pixels: int


@dataclass(frozen=True)
class PingJob:
    """Does nothing: the cost of a round trip to a worker (bench/isolation_overhead.py)."""


Job = VerifyJob | ContentJob | ConfirmJob | PreflightJob | PingJob


def run(job: Job, config: WorkerConfig, engine: Engine) -> object:
    settings = config.settings
    if isinstance(job, PingJob):
        return None
    if isinstance(job, PreflightJob):
        with Path(job.path).open("rb") as asset:
            _preflight(asset, job.max_pixels, engine)
        return None
    with Path(job.path).open("rb") as asset:
        if isinstance(job, VerifyJob):
            sidecar = Path(job.sidecar_path).read_bytes() if job.sidecar_path else None
            return _verify(job, settings, engine, asset, sidecar)
        if isinstance(job, ContentJob):
            return content_evidence(
                asset,
                alg=job.alg,
                max_pixels=settings.soft_binding_max_pixels,
                watermark=watermark_engine(),
                keys=job.keys,
            )
        stored = ConfirmationPrint.from_bytes(job.stored)
        return confirm_asset(stored, asset, max_pixels=settings.soft_binding_max_pixels)


def _verify(
    job: VerifyJob, settings: Settings, engine: Engine, asset: io.BufferedReader, sidecar: bytes | None
) -> VerifyResult:
    report = inspect_asset(engine, asset, sidecar, detailed=job.detailed)
    if report.integrity is Integrity.INTACT or not settings.recovery:
        return VerifyResult(report)
    if report.media_type.startswith(("audio/", "video/")):
        return VerifyResult(report, media=media_code(asset, settings))
    evidence = asset_evidence(
        asset,
        mime=report.media_type,
        max_pixels=settings.soft_binding_max_pixels,
        watermark=watermark_engine(),
        keys=job.keys,
    )
    return VerifyResult(report, evidence=evidence)


def _preflight(asset: io.BufferedReader, max_pixels: int, engine: Engine) -> None:
    try:
        mime = inspect_asset(engine, asset).media_type
    except HallmarkError:
        return
    if not mime.startswith("image/"):
        return
    asset.seek(0)
    try:
        with Image.open(asset) as image:
            if image.width * image.height <= max_pixels:
                image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return
