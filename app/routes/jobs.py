"""The job API for large files: POST /v1/jobs (202 + job), GET /v1/jobs/{id}, GET /v1/jobs/{id}/result,
DELETE /v1/jobs/{id}. Same API key scope, form fields and checks as POST /v1/sign; the sign itself runs
later (app/jobs/), and writes the same ledger row and repository entry. A job is visible to the API key
that created it only: any other key gets 404, as for an id that never existed."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from app import idempotency
from app.auth import bearer_scheme, current_key
from app.errors import problem
from app.jobs import JobService
from app.jobs.work import result_path
from app.policies import check_rate, check_request
from app.request_context import current_request_id
from app.routes.common import PROBLEM_RESPONSES, SignForm, runtime, sign_form
from app.sign_service import generation
from app.store.apikeys import ApiKey
from app.store.jobs import ACTIVE, EXPIRED, SUCCEEDED, Job, new_job_id
from app.url_policy import parse_target
from signing import (
    AssetTooLargeError,
    ConfigError,
    InvalidMetadataError,
    RateLimitedError,
    check_validity,
    sniff,
)

router = APIRouter(tags=["jobs"])


class JobOut(BaseModel):
    id: str = Field(description="The job's id (random; only the API key that created the job can use it).")
    state: Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]
    phase: Literal["received", "prescan", "signing", "recording", "done"] = Field(
        description="Where the job is: received (queued), prescan (container structure check), signing "
        "(the c2pa engine; it reports no progress of its own), recording (ledger row, repository, result "
        "stored), done."
    )
    progress: float = Field(ge=0, le=1, description="The phase as a fraction (0.05, 0.1, 0.2, 0.9, 1).")
    created_at: str
    updated_at: str
    expires_at: str = Field(description="When the upload and the result are deleted (RFC 3339, UTC).")
    result: str | None = Field(None, description="The signed file's URL, once the job succeeded.")
    result_media_type: str | None = None
    result_size: int | None = None
    problem: dict[str, Any] | None = Field(None, description="Why the job failed (RFC 9457 problem).")


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def job_out(job: Job) -> JobOut:
    done = job.state == SUCCEEDED
    return JobOut(
        id=job.id, state=job.state, phase=job.phase, progress=job.progress,
        created_at=_time(job.created_at), updated_at=_time(job.updated_at), expires_at=_time(job.expires_at),
        result=f"/v1/jobs/{job.id}/result" if done else None,
        result_media_type=job.result_media_type if done else None,
        result_size=job.result_size if done else None, problem=job.problem,
    )  # fmt: skip


def service(request: Request) -> JobService:
    jobs: JobService = request.app.state.jobs
    return jobs


def _owner(request: Request) -> ApiKey:
    key = current_key(request)
    if key is None:  # the API key gate guards /v1/jobs; this is only reached without it (a bare app)
        raise ConfigError("The job API needs an API key.")
    return key


def _not_found() -> JSONResponse:
    return problem(404, "job-not-found", "Job not found", "No job with this id belongs to this API key.")


JOB_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {**PROBLEM_RESPONSES[422], "description": text}
    for status, text in (
        (404, "No job with this id belongs to this API key"),
        (409, "The job has no result (yet): it is queued, running, failed or cancelled"),
        (410, "The job's result has expired and was deleted"),
        (429, "This API key has as many jobs queued as allowed, or its rate is used up; see Retry-After"),
    )
}


JOB_IDEMPOTENCY_PARAMETER = {
    "name": idempotency.HEADER,
    "in": "header",
    "required": False,
    "description": "Makes retries safe: a retry with the same key and the same request (form fields, "
    "webhook_url, options, file name and file) answers the same job (202, same id and Location, "
    "`Hallmark-Idempotent-Replay: true`) and makes no second job; the same key with a different request "
    "is 422. 1 to 255 printable ASCII characters (a fresh UUID per request); per API key; kept for "
    "HALLMARK_IDEMPOTENCY_TTL_SECONDS from the job's creation.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
CREATE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {**PROBLEM_RESPONSES[422], "description": text}
    for status, text in (
        (400, "The body could not be parsed, or the Idempotency-Key header is unusable"),
        (
            422,
            "Malformed file, invalid metadata or webhook_url, a file too complex to process within this "
            "server's limits, or an Idempotency-Key already used for a different request",
        ),
    )
}


def webhook_form(
    webhook_url: Annotated[
        str | None,
        Form(
            description="Where to POST the job's final state, signed (only when the operator enabled "
            "webhooks; see Hallmark-Signature in the README)."
        ),
    ] = None,
) -> str | None:
    """The job's own form field (a dependency after `sign_form`, so the form lists it after the sign's)."""
    return webhook_url


@router.post(
    "/v1/jobs",
    status_code=202,
    summary="Sign a large file asynchronously",
    description="Takes the same form and query as `POST /v1/sign`; the upload is streamed to disk and the "
    "answer, 202 with `Location: /v1/jobs/{id}`, comes before signing starts. Poll the job, then download "
    "its result; the signature gets the same ledger row and repository entry as `POST /v1/sign`. "
    "With an `Idempotency-Key`, a retry of the same request answers the same job.",
    dependencies=[Depends(bearer_scheme)],
    response_model=JobOut,
    responses={
        202: {
            "description": "The job, queued (or, for a retry with the same Idempotency-Key, as it is now).",
            "headers": {
                "Location": {"description": "The job's URL, `/v1/jobs/{id}`.", "schema": {"type": "string"}},
                idempotency.REPLAY_HEADER: {
                    "description": "`true` when this answers an earlier request with the same "
                    "Idempotency-Key (the same job); absent otherwise.",
                    "schema": {"type": "string", "enum": ["true"]},
                },
            },
        },
        **PROBLEM_RESPONSES,
        **JOB_PROBLEMS,
        **CREATE_PROBLEMS,
    },
    openapi_extra={"parameters": [JOB_IDEMPOTENCY_PARAMETER]},
)
def create_job(
    request: Request,
    form: Annotated[SignForm, Depends(sign_form)],
    webhook_url: Annotated[str | None, Depends(webhook_form)],
) -> Response:
    rt = runtime(request)
    jobs = service(request)
    key = _owner(request)
    settings = rt.settings
    if rt.key_limits is not None:
        check_rate(rt.key_limits, key)  # every request counts, retries with an Idempotency-Key too
    file, fields, output = form.file, form.fields(), form.output
    if (file.size or 0) > settings.job_max_upload_bytes:
        raise AssetTooLargeError(
            f"The file is larger than the job limit of {settings.job_max_upload_bytes} bytes.",
            details={"limit_bytes": settings.job_max_upload_bytes},
        )
    idempotency_key = idempotency.idempotency_key(request)  # 400 for an unusable one
    claim: tuple[str, str] | None = None
    if idempotency_key is not None:
        # The same rules as POST /v1/sign's fingerprint; the webhook_url is part of the request too.
        request_print = idempotency.fingerprint(
            {**fields, "webhook_url": webhook_url}, {"output": output}, file.filename, file.file
        )
        earlier = jobs.earlier(key.id, idempotency_key, request_print)
        if earlier is not None:
            return _accepted(earlier, replay=True)  # no second job, upload, queue entry or ledger row
        claim = (idempotency_key, request_print)
    ctx = rt.sign_ctx
    if ctx is None:
        raise ConfigError("Signing is unavailable: " + (rt.public_signer_problem or "no key is loaded."))
    check_validity(ctx.signer.key.certificate, rt.clock.now())
    info = generation(rt, fields)
    sniff(file.file)  # an unsupported type is refused now (415), not after a wait in the queue
    file.file.seek(0)
    if rt.key_limits is not None:
        check_request(rt.key_limits, key, info, file.file)
    if webhook_url is not None:
        if not settings.webhooks:
            raise InvalidMetadataError(
                "This server does not send webhooks; leave out webhook_url and poll the job.",
                hint="The operator enables them with HALLMARK_WEBHOOKS=true.",
            )
        parse_target(webhook_url)  # 422 for a URL the service would never call
    active = jobs.store.count_active(key.id)
    if active >= settings.job_max_queued_per_key:
        raise RateLimitedError(
            f"This API key has {active} jobs queued or running, the most allowed "
            f"(HALLMARK_JOB_MAX_QUEUED_PER_KEY); retry when one has finished.",
            details={"retry_after_seconds": 10, "max_queued": settings.job_max_queued_per_key},
        )
    job_id = new_job_id()
    try:
        size = jobs.save_upload(job_id, file.file)
    except BaseException:
        jobs.discard(job_id)
        raise
    request_id = current_request_id()
    params = {"fields": fields, "output": output, "filename": file.filename, "request_id": request_id}
    job, created = jobs.submit(job_id, key.id, params, size, webhook_url, claim)
    return _accepted(job, replay=not created)


def _accepted(job: Job, *, replay: bool) -> Response:
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if replay:
        headers[idempotency.REPLAY_HEADER] = "true"
    return JSONResponse(job_out(job).model_dump(), status_code=202, headers=headers)


@router.get(
    "/v1/jobs/{job_id}",
    summary="A job's state and progress",
    dependencies=[Depends(bearer_scheme)],
    response_model=JobOut,
    responses={**PROBLEM_RESPONSES, 404: JOB_PROBLEMS[404]},
)
def get_job(request: Request, job_id: str) -> Response:
    job = service(request).store.get(job_id, _owner(request).id)
    if job is None:
        return _not_found()
    return JSONResponse(job_out(job).model_dump())


@router.get(
    "/v1/jobs/{job_id}/result",
    summary="Download a job's signed file",
    description="The signed file (or sidecar), with the same headers as `POST /v1/sign`.",
    dependencies=[Depends(bearer_scheme)],
    response_class=FileResponse,
    responses={
        200: {
            "description": "The signed file (same media type) or the manifest store (application/c2pa).",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        **PROBLEM_RESPONSES,
        **{s: JOB_PROBLEMS[s] for s in (404, 409, 410)},
    },
)
def get_result(request: Request, job_id: str) -> Response:
    jobs = service(request)
    job = jobs.store.get(job_id, _owner(request).id)
    if job is None:
        return _not_found()
    path = result_path(jobs.jobs_dir, job.id)
    gone = job.state == SUCCEEDED and (job.expires_at <= time.time() or not path.exists())
    if job.state == EXPIRED or gone:
        return problem(410, "job-expired", "Result expired", "The job's result has expired and was deleted.")
    if job.state != SUCCEEDED:
        response = problem(
            409, "job-not-finished" if job.state in ACTIVE else "job-has-no-result", "No result",
            f"The job is {job.state}; only a succeeded job has a result.", state=job.state,
        )  # fmt: skip
        if job.state in ACTIVE:
            response.headers["Retry-After"] = "2"
        return response
    headers = dict(job.result_headers or {})
    headers.pop("Content-Length", None)  # FileResponse sets it from the file
    return FileResponse(path, media_type=job.result_media_type, headers=headers)


@router.delete(
    "/v1/jobs/{job_id}",
    summary="Cancel a job, or delete its result",
    description="A queued or running job is cancelled (a running sign is stopped; if it had already been "
    "recorded in the ledger, that row stays, as every signature's does). A finished job's files are "
    "deleted and it becomes `expired`. Answers the job as it is now.",
    dependencies=[Depends(bearer_scheme)],
    response_model=JobOut,
    responses={**PROBLEM_RESPONSES, 404: JOB_PROBLEMS[404]},
)
def delete_job(request: Request, job_id: str) -> Response:
    jobs = service(request)
    job = jobs.store.get(job_id, _owner(request).id)
    if job is None:
        return _not_found()
    if not jobs.cancel(job.id):  # queued or running: cancelled (and its webhook sent)
        jobs.store.expire(job.id)
    jobs.discard(job.id)
    final = jobs.store.get(job.id)
    assert final is not None
    return JSONResponse(job_out(final).model_dump())
