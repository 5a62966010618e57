"""POST /v1/verify: an honest report on any file's content credentials. Public unless configured."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile

from app.metrics import VERIFIED
from app.routes.common import PROBLEM_RESPONSES, budget, runtime
from app.schemas import VerificationReportOut
from signing import AssetTooLargeError, inspect_asset

router = APIRouter(tags=["verification"])

MAX_SIDECAR_BYTES = 16 * 1024 * 1024


@router.post(
    "/v1/verify",
    summary="Verify a file's content credentials",
    description="Never fetches a remote manifest; asks an OCSP responder only when HALLMARK_OCSP_RESPONDERS "
    "names it. `outcome` is one of trusted, valid_untrusted, "
    "invalid, none; `none` means no credentials were found, which says nothing about how it was made.",
    response_model=VerificationReportOut,
    responses={k: v for k, v in PROBLEM_RESPONSES.items() if k != 403},
)
def verify(
    request: Request,
    file: Annotated[UploadFile, File(description="Any image, video, audio or PDF file.")],
    manifest: Annotated[
        UploadFile | None, File(description="Optional detached manifest store (.c2pa sidecar) for the file.")
    ] = None,
) -> VerificationReportOut:
    rt = runtime(request)
    sidecar = manifest.file.read(MAX_SIDECAR_BYTES + 1) if manifest is not None else None
    if sidecar is not None and len(sidecar) > MAX_SIDECAR_BYTES:
        raise AssetTooLargeError(f"The sidecar manifest is larger than {MAX_SIDECAR_BYTES} bytes.")
    with budget(request).reserve_unless_held(request.state, 2 * (file.size or 0)):
        report = inspect_asset(rt.engine, file.file, sidecar or None)
    VERIFIED.labels(report.outcome.value).inc()
    return VerificationReportOut.from_report(report)
