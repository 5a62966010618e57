"""POST /v1/sign: label a generated file as AI-generated with signed C2PA credentials."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from app import idempotency
from app.auth import bearer_scheme, current_key
from app.metrics import SIGNED
from app.policies import check_rate, check_request
from app.routes.common import (
    PROBLEM_RESPONSES,
    SignForm,
    budget,
    file_response,
    pool,
    runtime,
    sign_form,
    watch,
)
from app.runtime import Runtime
from app.sign_service import generation, result_headers, sign_file
from app.store.apikeys import ApiKey
from signing import ConfigError, OutputMode, check_validity

router = APIRouter(tags=["signing"])

SIGNED_HEADERS = {
    "Hallmark-Manifest-Id": {
        "description": "The unique id (URN) of the new manifest.",
        "schema": {"type": "string"},
    },
    "Hallmark-Input-SHA256": {"description": "SHA-256 of the uploaded file.", "schema": {"type": "string"}},
    "Hallmark-Output-SHA256": {"description": "SHA-256 of the returned bytes.", "schema": {"type": "string"}},
    "Hallmark-Signing-Key-Id": {"description": "The signing key used.", "schema": {"type": "string"}},
    "Hallmark-Timestamped": {
        "description": "Whether an RFC 3161 timestamp covers the signature (false when none is "
        "configured, or the best-effort policy skipped an unavailable authority).",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "Hallmark-ISCC": {
        "description": "Audio and video: the ISCC audio or video code declared as the file's soft binding "
        "(`c2pa.soft-binding`, alg io.iscc.v0), or `none; reason=<error code>` when fpcalc/ffmpeg could not "
        "make one (the file is signed without it). Absent for other media types (images carry theirs in "
        "the manifest).",
        "schema": {"type": "string"},
    },
    "Hallmark-Idempotent-Replay": {
        "description": "`true` when this is the stored answer to an earlier request with the same "
        "Idempotency-Key (every other header and the bytes are the first answer's); absent otherwise.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Hallmark-Watermark": {
        "description": "`embedded; id=<12 hex digits>` when the image's pixels now carry the invisible "
        "watermark; otherwise `none; reason=<why>`: off (no watermark key), sidecar, format (not a still "
        "JPEG, PNG or WebP image), pixel-format, animated, unmarkable (too small or too flat), too-large, "
        "already-marked (an edit of a file that carries our mark keeps that mark).",
        "schema": {"type": "string"},
    },
}


IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes retries safe: a retry with the same key and the same request (form fields, "
    "options, file name and file) returns the first answer again (same manifest id, same bytes, "
    "`Hallmark-Idempotent-Replay: true`) and records no second signature. 1 to 255 printable ASCII "
    "characters (a fresh UUID per request); per API key; kept for HALLMARK_IDEMPOTENCY_TTL_SECONDS.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
SIGN_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {**PROBLEM_RESPONSES[422], "description": text}
    for status, text in (
        (400, "The body could not be parsed, or the Idempotency-Key header is unusable"),
        (403, "API key lacks the sign scope, or its policy does not allow this source type or format"),
        (
            409,
            "A request with this Idempotency-Key is still in progress; see Retry-After",
        ),
        (
            422,
            "Malformed file, invalid metadata, a file too complex to process within this server's limits, "
            "or an Idempotency-Key already used for a different request",
        ),
        (429, "The API key's request rate or monthly quota is used up; see Retry-After"),
    )
}


@router.post(
    "/v1/sign",
    summary="Sign a generated file",
    description="Returns the same file carrying a signed C2PA manifest that declares it AI-generated "
    "(or, with `output=sidecar`, a detached `.c2pa` manifest store; the file's bytes stay unchanged). "
    "The media type is identified from the bytes. Credentials already in the file are kept as the parent "
    "ingredient. Every signature is recorded in the audit ledger, and the manifest store kept in the "
    "manifest repository, before the file is returned. JPEG, PNG and WebP images also get an invisible "
    "watermark (embedded before signing, same format and quality) and ISCC + PDQ fingerprints, so their "
    "credentials can be recovered after metadata is stripped.",
    dependencies=[Depends(bearer_scheme)],
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The signed file (same media type) or the manifest store (application/c2pa).",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "headers": SIGNED_HEADERS,
        },
        **PROBLEM_RESPONSES,
        **SIGN_PROBLEMS,
    },
    openapi_extra={"parameters": [IDEMPOTENCY_PARAMETER]},
)
def sign(request: Request, form: Annotated[SignForm, Depends(sign_form)]) -> Response:
    rt = runtime(request)
    key = current_key(request)
    limits = rt.key_limits
    if limits is not None:
        check_rate(limits, key)  # per-API-key policy (app/policies.py); every request counts, replays too
    held: idempotency.IdempotentSign | None = None
    if rt.idempotency is not None:
        begun = idempotency.begin(
            request, rt.idempotency, key, form.fields(), {"output": form.output}, form.file.filename,
            form.file.file, rt.settings.idempotency_max_result_bytes,
        )  # fmt: skip
        if isinstance(begun, Response):
            return begun  # the stored answer to the first request with this Idempotency-Key
        held = begun
    try:
        return _sign(request, rt, key, held, form)
    except BaseException:
        if held is not None:
            held.release()
        raise


def _sign(
    request: Request, rt: Runtime, key: ApiKey | None, held: idempotency.IdempotentSign | None, form: SignForm
) -> Response:
    ctx = rt.sign_ctx  # taken once: a key rotation during this request does not change its key
    if ctx is None:
        raise ConfigError(
            "Signing is unavailable: " + (rt.public_signer_problem or "no signing key is loaded.")
        )
    # Expired since start-up: 503, never a broken signature.
    check_validity(ctx.signer.key.certificate, rt.clock.now())
    file = form.file
    info = generation(rt, form.fields())
    if rt.key_limits is not None:
        check_request(rt.key_limits, key, info, file.file)  # the API key's source types, formats, quota
    mode = OutputMode(form.output)
    if held is not None:
        ctx = replace(ctx, ledger=held.ledger())  # the row is written by held.complete(), with the result
    with budget(request).reserve_unless_held(request.state, 3 * (file.size or 0)):
        outcome = sign_file(
            rt, pool(request), file.file, info, mode, key.id if key else None, watch(request), ctx=ctx
        )
    signed = outcome.signed
    SIGNED.labels(signed.media_type.mime, mode.value).inc()
    media_type, headers = result_headers(outcome, mode, file.filename)
    if held is not None:  # the ledger row and the stored result, in one transaction
        try:
            held.complete(
                media_type, headers, outcome.output, signed.output_size
            )  # ledger row + stored result + the intent completed
        except BaseException as exc:
            outcome.output.close()
            if outcome.attempt is not None:
                outcome.attempt.abandon(exc)  # signed, withheld, nothing committed
            raise
    return file_response(
        outcome.output, signed.output_size, rt.settings.spool_memory_bytes, media_type, headers
    )
