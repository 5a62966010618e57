"""The service side of isolated verify and byContent: pre-scan the file's structure, hand it to a worker by
path, and finish recovery here, where the manifest repository is. Without a pool (HALLMARK_ISOLATION_WORKERS
=0) the same work runs in this process."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import IO, Protocol

from app.isolation.jobs import ConfirmJob, ContentJob, KnownMarkJob, VerifyJob, VerifyResult, WorkerConfig
from app.isolation.pool import WorkerPool
from app.recovery import with_recovery
from app.runtime import Runtime, watermark_engine
from app.settings import Settings
from app.temp_sweep import prefix as temp_prefix
from signing import (
    Candidates,
    Confirmation,
    ConfirmationPrint,
    ImageEvidence,
    Integrity,
    QueryPicture,
    Recovery,
    SoftBindingMatch,
    StructureLimits,
    VerificationReport,
    WatermarkDetection,
    WatermarkKey,
    check_structure,
    inspect_asset,
    not_searched,
    recover_from_evidence,
    recover_media,
    resolve_content,
    resolve_evidence,
)

Cancelled = Callable[[], bool]
COPY_CHUNK = 1 << 20


def structure_limits(settings: Settings) -> StructureLimits:
    return StructureLimits(
        max_boxes=settings.prescan_max_boxes,
        max_depth=settings.prescan_max_depth,
        max_chunks=settings.prescan_max_chunks,
        max_segments=settings.prescan_max_segments,
    )


def verify_file(
    rt: Runtime,
    pool: WorkerPool | None,
    asset: IO[bytes],
    sidecar: bytes | None,
    *,
    detailed: bool,
    cancelled: Cancelled | None = None,
) -> VerificationReport:
    """The report on `asset`, recovery included, as the verify routes answer it."""
    check_structure(asset, structure_limits(rt.settings))
    keys = rt.watermarks.current().detection_keys
    if pool is None:
        report = inspect_asset(rt.engine, asset, sidecar, detailed=detailed)
        return with_recovery(rt.settings, rt.engine, rt.manifests, keys, asset, report)
    config = worker_config(rt)
    with private_copy(asset) as path, _optional_copy(sidecar) as sidecar_path:
        result: VerifyResult = pool.run(VerifyJob(path, sidecar_path, detailed, keys), config, cancelled)
        return _recovered(rt, result, WorkerPicture(pool, config, path, keys, cancelled))


def matches_by_content(
    rt: Runtime,
    pool: WorkerPool | None,
    asset: IO[bytes],
    *,
    alg: str | None,
    limit: int,
    cancelled: Cancelled | None = None,
) -> list[SoftBindingMatch]:
    """SBR byContent's matches for `asset`."""
    check_structure(asset, structure_limits(rt.settings))
    keys = rt.watermarks.current().detection_keys
    if pool is None:
        return resolve_content(
            asset,
            alg=alg,
            max_pixels=rt.settings.soft_binding_max_pixels,
            engine=rt.engine,
            watermark=watermark_engine(),
            keys=keys,
            repository=rt.manifests,
            limit=limit,
        )
    config = worker_config(rt)
    with private_copy(asset) as path:
        found: tuple[str, ImageEvidence] = pool.run(ContentJob(path, alg, keys), config, cancelled)
        mime, evidence = found
        return resolve_evidence(
            mime,
            evidence,
            alg=alg,
            asset=io.BytesIO(),
            engine=rt.engine,
            repository=rt.manifests,
            picture=WorkerPicture(pool, config, path, keys, cancelled),
            limit=limit,
        )


def _recovered(rt: Runtime, result: VerifyResult, picture: QueryPicture) -> VerificationReport:
    """`app.recovery.with_recovery` from what the worker found. Stored entries are re-verified here (trusted
    data) against an empty stream: their hard binding is not judged, so the file stays out of this process."""
    report = result.report
    if report.integrity is Integrity.INTACT:
        return report
    if not rt.settings.recovery:
        return replace(report, recovery=not_searched("recovery is switched off on this service"))
    if result.media is not None:
        code = result.media
        if code.iscc is None:
            reason = code.reason or "unsupported"
            return replace(
                report, recovery=not_searched(f"no ISCC code could be made for this file ({reason})")
            )
        recovery = recover_media(
            code.iscc, mime=report.media_type, asset=io.BytesIO(), engine=rt.engine, repository=rt.manifests
        )
        return replace(report, recovery=recovery)
    evidence = result.evidence
    if evidence is None or isinstance(evidence, Recovery):
        return replace(report, recovery=evidence)
    recovery = recover_from_evidence(
        evidence,
        mime=report.media_type,
        asset=io.BytesIO(),
        engine=rt.engine,
        repository=rt.manifests,
        picture=picture,
    )
    return replace(report, recovery=recovery)


@dataclass(frozen=True)
class WorkerPicture:
    """The `QueryPicture` of a file a worker verified: each question is a job on the same private copy (the
    worker that decoded it usually still holds the picture)."""

    pool: WorkerPool
    config: WorkerConfig
    path: str
    keys: tuple[WatermarkKey, ...]
    cancelled: Cancelled | None

    def confirm(self, stored: ConfirmationPrint) -> Confirmation:
        result: Confirmation = self.pool.run(
            ConfirmJob(self.path, stored.to_bytes()), self.config, self.cancelled
        )
        return result

    def detect_known(self, candidates: Candidates) -> WatermarkDetection:
        job = KnownMarkJob(self.path, candidates, self.keys)
        result: WatermarkDetection = self.pool.run(job, self.config, self.cancelled)
        return result


def worker_config(rt: Runtime) -> WorkerConfig:
    """One object per runtime and engine configuration: a worker is sent it again only when it changes."""
    config: WorkerConfig | None = getattr(rt, "_worker_config", None)
    if config is None or config.engine is not rt.engine.config or config.settings is not rt.settings:
        config = WorkerConfig(rt.settings, rt.engine.config)
        rt._worker_config = config  # type: ignore[attr-defined]
    return config


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


@contextmanager
def private_copy(asset: IO[bytes], digest: Digest | None = None) -> Iterator[str]:
    """The upload in a temporary file only this user can read (mode 0600), removed when the block ends.
    `digest` (a hashlib object), when given, is fed the bytes on the way (one pass over the upload)."""
    fd, path = tempfile.mkstemp(prefix=temp_prefix("upload"))
    try:
        with os.fdopen(fd, "wb") as out:
            asset.seek(0)
            if digest is None:
                shutil.copyfileobj(asset, out, COPY_CHUNK)
            else:
                while chunk := asset.read(COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        asset.seek(0)
        yield path
    finally:
        os.unlink(path)


@contextmanager
def _optional_copy(data: bytes | None) -> Iterator[str | None]:
    if data is None:
        yield None
        return
    with private_copy(io.BytesIO(data)) as path:
        yield path
