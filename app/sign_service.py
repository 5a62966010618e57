"""The sign pipeline after the request is validated, shared by POST /v1/sign and the job API: the
structure pre-scan here, then everything that decodes the upload in an isolated worker (app/isolation/
sign_job.py) while this process lends it the signature, the TSA breaker and the repository; then the ledger
row and the repository entry are committed here before the output is handed back. Without a pool
(HALLMARK_ISOLATION_WORKERS=0) the same work runs in this process.

Intent -> sign -> commit -> respond: right before the engine signs, the sign's intent (the manifest id it
will use, the key, the input's hash) is committed (app/store/intents.py); the ledger row's transaction
completes it; a failure or a cancel marks it abandoned with the error's type. A process killed in between
leaves it open, which `hallmark audit verify` reports."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import IO, Any

from app.isolation.pool import WorkerPool
from app.isolation.service import private_copy, structure_limits, worker_config
from app.isolation.sign_job import KeyFacts, SignJob, SignResult
from app.media_binding import MediaCode, media_code
from app.request_context import current_request_id
from app.routes.download_name import content_disposition
from app.runtime import Runtime
from app.settings import Settings
from app.temp_sweep import prefix as temp_prefix
from signing import (
    ConfigError,
    GenerationInfo,
    HallmarkError,
    OutputMode,
    SignContext,
    SignedAsset,
    check_structure,
    new_manifest_id,
    sha256_stream,
    sign_asset,
    validate_generation,
)

Cancelled = Callable[[], bool]


class SignAttempt:
    """One sign's intent: the manifest id is chosen here, the intent is opened right before the engine signs
    and closed by the ledger row's commit (or `abandon`)."""

    def __init__(
        self, rt: Runtime, ctx: SignContext, api_key_id: str | None, deadline_seconds: float
    ) -> None:
        self.store = rt.intents
        self.ctx, self.api_key_id, self.deadline_seconds = ctx, api_key_id, deadline_seconds
        self.manifest_id = new_manifest_id()
        self.intent_id: str | None = None

    def open(self, input_sha256: str) -> None:
        """Commit the intent (raises `LedgerError`, and nothing is signed, when it cannot be)."""
        if self.store is None:
            return
        key = self.ctx.signer.key
        self.intent_id = self.store.open(
            manifest_id=self.manifest_id,
            key_id=key.key_id,
            certificate_sha256=self.ctx.signer.certificate_sha256,
            input_sha256=input_sha256,
            api_key_id=self.api_key_id,
            request_id=current_request_id(),
            deadline_seconds=self.deadline_seconds,
        )

    def abandon(self, exc: BaseException) -> None:
        """The sign ended without its ledger row (a no-op once the row is committed): the reason recorded is
        the error's type, never its text."""
        if self.store is not None and self.intent_id is not None:
            self.store.abandon(self.intent_id, type(exc).__name__)


@dataclass
class SignOutcome:
    signed: SignedAsset
    output: IO[bytes]  # the signed file or sidecar; the caller closes it (no name on disk is left)
    media: MediaCode  # audio and video: the ISCC code declared as soft binding, or why there is none
    # The sign's intent: completed when the ledger row was committed here; still open when the caller commits
    # the row itself (an idempotent sign), which then calls `attempt.abandon` if that fails.
    attempt: SignAttempt | None = None

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
    deadline_seconds: float | None = None,
) -> SignOutcome:
    """Sign `source` (seekable) with the active key (or `ctx`, taken by the caller once per request), record
    it in the ledger and the manifest repository, and return the output. Raises the error tree's errors:
    a refused file (422), a worker past its limits (422) or its deadline (503), a client gone, the TSA.
    `deadline_seconds`: how long the sign may take at most (default: the pool's worker deadline), which
    with the wait for a free worker sets when its intent counts as never committed."""
    if ctx is None:
        ctx = rt.sign_ctx
    if ctx is None:
        raise ConfigError(
            "Signing is unavailable: " + (rt.public_signer_problem or "no signing key is loaded.")
        )
    check_structure(source, structure_limits(rt.settings))
    if deadline_seconds is None:
        deadline_seconds = pool.limits.deadline_seconds if pool else rt.settings.verify_deadline_seconds
    # A pooled sign may wait up to its deadline for a free worker, then run up to its deadline.
    attempt = SignAttempt(rt, ctx, api_key_id, 2 * deadline_seconds)
    try:
        if pool is None:
            return _sign_here(ctx, rt.settings, source, info, mode, api_key_id, attempt)
        return _sign_isolated(rt, ctx, pool, source, info, mode, api_key_id, cancelled, attempt)
    except BaseException as exc:
        attempt.abandon(exc)
        raise


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
    attempt: SignAttempt,
) -> SignOutcome:
    code = media_code(source, settings) if ctx.soft_binder is not None else MediaCode(None, None)
    if code.iscc is not None and ctx.soft_binder is not None:
        ctx = replace(ctx, soft_binder=replace(ctx.soft_binder, media_iscc=code.iscc))
    input_sha256, _ = sha256_stream(source)
    source.seek(0)
    attempt.open(input_sha256)
    dest = tempfile.SpooledTemporaryFile(max_size=settings.spool_memory_bytes)  # noqa: SIM115 - returned
    try:
        signed = sign_asset(
            ctx,
            source,
            dest,
            info,
            mode=mode,
            api_key_id=api_key_id,
            manifest_id=attempt.manifest_id,
            input_sha256=input_sha256,
        )
    except BaseException:
        dest.close()
        raise
    return SignOutcome(signed, dest, code, attempt)


def _sign_isolated(
    rt: Runtime,
    ctx: SignContext,
    pool: WorkerPool,
    source: IO[bytes],
    info: GenerationInfo,
    mode: OutputMode,
    api_key_id: str | None,
    cancelled: Cancelled | None,
    attempt: SignAttempt,
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
        "manifest_id": attempt.manifest_id,
    }
    digest = hashlib.sha256()
    with private_copy(source, digest) as path:
        input_sha256 = digest.hexdigest()
        attempt.open(input_sha256)  # committed before the worker can ask for a signature
        fd, out_path = tempfile.mkstemp(prefix=temp_prefix("signed"))  # 0600, this user only
        output = os.fdopen(fd, "w+b")
        try:
            result: SignResult = pool.run(
                SignJob(path, out_path, **job_facts, input_sha256=input_sha256),
                worker_config(rt),
                cancelled,
                _serve(rt, ctx),
            )
            # Committed before the output can leave: no signed file without its ledger row (its transaction
            # also completes the intent).
            ctx.ledger.record(result.ledger)
            if ctx.repository is not None and result.repository is not None:
                ctx.repository.put(result.repository)
        except BaseException:
            output.close()
            raise
        finally:
            os.unlink(out_path)  # the open file stays readable until the response closes it
    return SignOutcome(result.signed, output, result.media, attempt)


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
