"""The sign pipeline after the request is validated, shared by POST /v1/sign and the job API: the
structure pre-scan here, then everything that decodes the upload in an isolated worker (app/isolation/
sign_job.py) while this process lends it the signature, the TSA breaker and the repository; then the ledger
row and the repository entry are committed here before the output is handed back. Without a pool
(HALLMARK_ISOLATION_WORKERS=0) the same work runs in this process."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import IO, Any

from app.isolation.pool import WorkerPool
from app.isolation.service import private_copy, structure_limits, worker_config
from app.isolation.sign_job import KeyFacts, SignJob, SignResult
from app.media_binding import MediaCode, media_code
from app.routes.download_name import content_disposition
from app.runtime import Runtime
from app.settings import Settings
from signing import (
    ConfigError,
    GenerationInfo,
    HallmarkError,
    OutputMode,
    SignContext,
    SignedAsset,
    check_structure,
    sign_asset,
    validate_generation,
)

Cancelled = Callable[[], bool]


@dataclass
class SignOutcome:
    signed: SignedAsset
    output: IO[bytes]  # the signed file or sidecar; the caller closes it (no name on disk is left)
    media: MediaCode  # audio and video: the ISCC code declared as soft binding, or why there is none

    @property
    def media_code_header(self) -> str | None:
        """The Hallmark-ISCC header's value (None: no header)."""
        return self.media.header()


def sign_file(
    rt: Runtime,
    pool: WorkerPool | None,
    source: IO[bytes],
    info: GenerationInfo,
    mode: OutputMode,
    api_key_id: str | None,
    cancelled: Cancelled | None = None,
    *,
    ctx: SignContext | None = None,
) -> SignOutcome:
    """Sign `source` (seekable) with the active key (or `ctx`, taken by the caller once per request), record
    it in the ledger and the manifest repository, and return the output. Raises the error tree's errors:
    a refused file (422), a worker past its limits (422) or its deadline (503), a client gone, the TSA."""
    if ctx is None:
        ctx = rt.sign_ctx
    if ctx is None:
        raise ConfigError(
            "Signing is unavailable: " + (rt.public_signer_problem or "no signing key is loaded.")
        )
    check_structure(source, structure_limits(rt.settings))
    if pool is None:
        return _sign_here(ctx, rt.settings, source, info, mode, api_key_id)
    return _sign_isolated(rt, ctx, pool, source, info, mode, api_key_id, cancelled)


FORM_FIELDS = (
    "model_name", "model_version", "provider", "digital_source_type", "training_mining",
    "training_mining_constraint", "title",
)  # fmt: skip


def generation(rt: Runtime, fields: Mapping[str, str | None]) -> GenerationInfo:
    """The sign form's fields, validated (422 for a bad one), the same for POST /v1/sign and a job."""
    return validate_generation(
        model_name=fields.get("model_name"),
        model_version=fields.get("model_version"),
        provider=fields.get("provider") or rt.settings.default_provider,
        digital_source_type=fields.get("digital_source_type"),
        training_mining=fields.get("training_mining"),
        training_mining_constraint=fields.get("training_mining_constraint"),
        title=fields.get("title"),
        allowed_source_types=rt.settings.allowed_source_types,
    )


def result_headers(
    outcome: SignOutcome, mode: OutputMode, filename: str | None
) -> tuple[str, dict[str, str]]:
    """The media type and headers of a signed result, the same for POST /v1/sign and a job's download."""
    signed = outcome.signed
    media_type = "application/c2pa" if mode is OutputMode.SIDECAR else signed.media_type.mime
    extension = "c2pa" if mode is OutputMode.SIDECAR else signed.media_type.extension
    headers = {
        "Hallmark-Manifest-Id": signed.manifest_id,
        "Hallmark-Input-SHA256": signed.input_sha256,
        "Hallmark-Output-SHA256": signed.output_sha256,
        "Hallmark-Signing-Key-Id": signed.key_id,
        "Hallmark-Timestamped": "true" if signed.timestamped else "false",
        "Content-Length": str(signed.output_size),
        "Content-Disposition": content_disposition(filename, extension),
    }
    if signed.parent_manifest_id:
        headers["Hallmark-Parent-Manifest-Id"] = signed.parent_manifest_id
    if outcome.media_code_header is not None:
        headers["Hallmark-ISCC"] = outcome.media_code_header
    headers["Hallmark-Watermark"] = (
        f"embedded; id={signed.watermark_id}"
        if signed.watermark_id
        else f"none; reason={signed.watermark_skipped or 'format'}"
    )
    return media_type, headers


def _sign_here(
    ctx: SignContext,
    settings: Settings,
    source: IO[bytes],
    info: GenerationInfo,
    mode: OutputMode,
    api_key_id: str | None,
) -> SignOutcome:
    code = media_code(source, settings) if ctx.soft_binder is not None else MediaCode(None, None)
    if code.iscc is not None and ctx.soft_binder is not None:
        ctx = replace(ctx, soft_binder=replace(ctx.soft_binder, media_iscc=code.iscc))
    dest = tempfile.SpooledTemporaryFile(max_size=settings.spool_memory_bytes)  # noqa: SIM115 - returned
    try:
        signed = sign_asset(ctx, source, dest, info, mode=mode, api_key_id=api_key_id)
    except BaseException:
        dest.close()
        raise
    return SignOutcome(signed, dest, code)


def _sign_isolated(
    rt: Runtime,
    ctx: SignContext,
    pool: WorkerPool,
    source: IO[bytes],
    info: GenerationInfo,
    mode: OutputMode,
    api_key_id: str | None,
    cancelled: Cancelled | None,
) -> SignOutcome:
    key = ctx.signer.key
    binder = ctx.soft_binder
    job_facts: dict[str, Any] = {
        "info": info,
        "mode": mode,
        "api_key_id": api_key_id,
        "key": KeyFacts(key.key_id, key.algorithm, key.chain_pem),
        "generator": ctx.generator,
        "max_image_pixels": ctx.max_image_pixels,
        "tsa_url": ctx.timestamps.signer.tsa_url if ctx.timestamps else None,
        "tsa_policy": ctx.timestamps.guard.policy.value if ctx.timestamps else None,
        "soft_binding": binder is not None,
        "watermark_key": binder.key if binder else None,
        "detection_keys": binder.detection_keys if binder else (),
    }
    with private_copy(source) as path:
        fd, out_path = tempfile.mkstemp(prefix="hallmark-signed-")  # 0600, this user only
        output = os.fdopen(fd, "w+b")
        try:
            result: SignResult = pool.run(
                SignJob(path, out_path, **job_facts), worker_config(rt), cancelled, _serve(rt, ctx)
            )
            # Committed before the output can leave: no signed file without its ledger row.
            ctx.ledger.record(result.ledger)
            if ctx.repository is not None and result.repository is not None:
                ctx.repository.put(result.repository)
        except BaseException:
            output.close()
            raise
        finally:
            os.unlink(out_path)  # the open file stays readable until the response closes it
    return SignOutcome(result.signed, output, result.media)


def _serve(rt: Runtime, ctx: SignContext) -> Callable[..., Any]:
    """What a sign worker may ask this process for, and nothing else."""
    key = ctx.signer.key
    breaker = ctx.timestamps.guard.breaker if ctx.timestamps else None

    def serve(name: str, *args: Any) -> Any:
        if name == "sign":
            (data,) = args
            if not isinstance(data, bytes):
                raise HallmarkError("A worker asked for a signature over something other than bytes.")
            return key.sign(data)
        if name == "breaker" and breaker is not None:
            (what,) = args
            if what == "allow":
                return breaker.allow()
            if what == "success":
                return breaker.success()
            if what == "failure":
                return breaker.failure()
            if what == "release":
                return breaker.release()
            if what == "retry_after":
                return breaker.retry_after()
        if name == "watermark_taken":
            (watermark_id,) = args
            repository = ctx.repository or rt.manifests
            return repository.by_watermark(str(watermark_id)) is not None
        raise HallmarkError(f"A worker asked the service for something it does not serve ({name!r}).")

    return serve
