"""POST /v1/verify: an honest report on any file's content credentials. Public unless configured."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, UploadFile

from app.isolation.service import verify_file
from app.metrics import VERIFIED
from app.routes.common import (
    PROBLEM_RESPONSES,
    RATE_LIMITED,
    URL_FETCH_RESPONSES,
    URL_REQUEST_BODY,
    budget,
    pool,
    runtime,
    verify_slot,
    watch,
)
from app.schemas import DetailedVerificationReportOut, VerificationReportOut
from signing import AssetTooLargeError

router = APIRouter(tags=["verification"])

MAX_SIDECAR_BYTES = 16 * 1024 * 1024


@router.post(
    "/v1/verify",
    summary="Verify a file's content credentials",
    description="Never fetches a remote manifest; asks an OCSP responder only when HALLMARK_OCSP_RESPONDERS "
    "names it. `outcome` is one of trusted, valid_untrusted, invalid, none; `none` means no credentials were "
    "found, which says nothing about how it was made. With `detail=full` the report also carries "
    "`manifest_store`: the whole manifest store as the engine read it (all manifests, ingredients included). "
    'Instead of a multipart upload, a JSON body `{"url": "https://..."}` names a file to fetch and '
    "verify the same way, when the operator has turned that on (HALLMARK_URL_FETCH; see GET "
    "/v1/verify/options).",
    # The detailed model first: a plain report is not an instance of it and serialises as the plain one.
    response_model=DetailedVerificationReportOut | VerificationReportOut,
    responses={
        **{k: v for k, v in PROBLEM_RESPONSES.items() if k != 403},
        **URL_FETCH_RESPONSES,
        **RATE_LIMITED,
    },
    openapi_extra=URL_REQUEST_BODY,
)
def verify(
    request: Request,
    file: Annotated[UploadFile, File(description="Any image, video, audio or PDF file.")],
    manifest: Annotated[
        UploadFile | None, File(description="Optional detached manifest store (.c2pa sidecar) for the file.")
    ] = None,
    detail: Annotated[
        Literal["summary", "full"],
        Query(description="`full` adds the whole manifest store as the engine read it."),
    ] = "summary",
) -> DetailedVerificationReportOut | VerificationReportOut:
    rt = runtime(request)
    sidecar = manifest.file.read(MAX_SIDECAR_BYTES + 1) if manifest is not None else None
    if sidecar is not None and len(sidecar) > MAX_SIDECAR_BYTES:
        raise AssetTooLargeError(f"The sidecar manifest is larger than {MAX_SIDECAR_BYTES} bytes.")
    with budget(request).reserve_unless_held(request.state, 2 * (file.size or 0)), verify_slot(request):
        report = verify_file(
            rt, pool(request), file.file, sidecar or None, detailed=detail == "full", cancelled=watch(request)
        )
    VERIFIED.labels(report.outcome.value).inc()
    if detail == "full":
        return DetailedVerificationReportOut.from_report(report)
    return VerificationReportOut.from_report(report)
