"""What an isolated worker does: the untrusted half of verify, of recovery and of byContent, and all of sign
but the private key's signature (sign_job.py), on a file it opens by path. Results are plain dataclasses of
the core, sent back over the worker's pipe."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image

from app.isolation.sign_job import Channel, SignJob, run_sign
from app.media_binding import MediaCode, media_code
from app.runtime import watermark_engine
from app.settings import Settings
from signing import (
    Candidates,
    ConfirmationPrint,
    Engine,
    EngineConfig,
    ImageEvidence,
    Integrity,
    LocalPicture,
    Recovery,
    VerificationReport,
    WatermarkKey,
    confirm,
    confirm_asset,
    content_evidence,
    detect_known_asset,
    image_evidence,
    inspect_asset,
    upright_image,
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
class KnownMarkJob:
    """Test the file's picture for the watermark ids of the repository's candidates (informed detection)."""

    path: str
    candidates: Candidates
    keys: tuple[WatermarkKey, ...]


@dataclass(frozen=True)
class PingJob:
    """Does nothing: the cost of a round trip to a worker (bench/isolation_overhead.py)."""


Job = VerifyJob | ContentJob | ConfirmJob | KnownMarkJob | SignJob | PingJob


# The upright picture of the last VerifyJob's file, by the file's identity: its ConfirmJobs and KnownMarkJobs
# (which usually
# come to the same worker, the pool hands out the worker released last) confirm against it instead of
# decoding the file again, as the in-process path does. Dropped at the next job of another kind.
Identity = tuple[str, int, int, int]  # path, inode, size, modification time
_PICTURE: dict[Identity, Image.Image] = {}


def _identity(path: str, st: os.stat_result) -> Identity:
    return (path, st.st_ino, st.st_size, st.st_mtime_ns)


@contextmanager
def _opened(path: str, in_memory_bytes: int) -> Iterator[tuple[IO[bytes], Identity]]:
    """The job's file and its identity (see _PICTURE). A file of at most `in_memory_bytes` (the service's
    spool limit) is read into memory first, as the in-process path holds an upload of that size: the engine
    seeks and reads a few dozen times per verify, on a file each is a system call (about 0.1 ms per 1 MP
    verify; bench/isolation_overhead.py)."""
    with Path(path).open("rb") as file:
        st = os.fstat(file.fileno())
        identity = _identity(path, st)
        if st.st_size > in_memory_bytes:
            yield file, identity
            return
        data = file.read()
    yield io.BytesIO(data), identity


def run(job: Job, config: WorkerConfig, engine: Engine, channel: Channel) -> object:
    """`channel` reaches the service while the job runs (sign's signature callback; see sign_job.py)."""
    settings = config.settings
    if not isinstance(job, ConfirmJob | KnownMarkJob):
        _PICTURE.clear()
    if isinstance(job, PingJob):
        return None
    if isinstance(job, SignJob):
        return run_sign(job, settings, engine, channel)
    if isinstance(job, ConfirmJob | KnownMarkJob):
        kept = _PICTURE.get(_identity(job.path, os.stat(job.path)))
        if kept is not None and isinstance(job, ConfirmJob):
            return confirm(ConfirmationPrint.from_bytes(job.stored), kept)
        if kept is not None and isinstance(job, KnownMarkJob):
            return LocalPicture(kept, watermark_engine(), job.keys).detect_known(job.candidates)
    with _opened(job.path, settings.spool_memory_bytes) as (asset, identity):
        if isinstance(job, VerifyJob):
            sidecar = Path(job.sidecar_path).read_bytes() if job.sidecar_path else None
            return _verify(job, settings, engine, asset, identity, sidecar)
        if isinstance(job, ContentJob):
            return content_evidence(
                asset,
                alg=job.alg,
                max_pixels=settings.soft_binding_max_pixels,
                watermark=watermark_engine(),
                keys=job.keys,
            )
        if isinstance(job, KnownMarkJob):
            return detect_known_asset(
                job.candidates,
                asset,
                max_pixels=settings.soft_binding_max_pixels,
                watermark=watermark_engine(),
                keys=job.keys,
            )
        stored = ConfirmationPrint.from_bytes(job.stored)
        return confirm_asset(stored, asset, max_pixels=settings.soft_binding_max_pixels)


def _verify(
    job: VerifyJob,
    settings: Settings,
    engine: Engine,
    asset: IO[bytes],
    identity: Identity,
    sidecar: bytes | None,
) -> VerifyResult:
    report = inspect_asset(engine, asset, sidecar, detailed=job.detailed)
    if report.integrity is Integrity.INTACT or not settings.recovery:
        return VerifyResult(report)
    if report.media_type.startswith(("audio/", "video/")):
        return VerifyResult(report, media=media_code(asset, settings))
    upright = upright_image(asset, mime=report.media_type, max_pixels=settings.soft_binding_max_pixels)
    if isinstance(upright, Recovery):
        return VerifyResult(report, evidence=upright)
    _PICTURE[identity] = upright
    evidence = image_evidence(upright, watermark=watermark_engine(), keys=job.keys)
    return VerifyResult(report, evidence=evidence)
