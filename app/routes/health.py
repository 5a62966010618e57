"""Liveness, readiness and metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.routes.common import runtime
from app.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["operations"])

EXPIRY_WARNING = timedelta(days=30)


@router.get("/healthz", response_model=HealthOut, summary="The process is up")
def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="The service can sign",
    responses={503: {"model": ReadyOut, "description": "Not able to sign"}},
)
def readyz(request: Request) -> ReadyOut | JSONResponse:
    rt = getattr(request.app.state, "runtime", None)
    if rt is None:
        return JSONResponse(ReadyOut(status="not_ready", problem="starting").model_dump(), status_code=503)
    rt = runtime(request)
    if rt.sign_ctx is None or rt.cert_not_after is None:
        body = ReadyOut(status="not_ready", problem=rt.signer_problem or "no signing key")
        return JSONResponse(body.model_dump(), status_code=503)
    now = datetime.now(UTC)
    key_id = rt.sign_ctx.signer.key.key_id
    not_after = rt.cert_not_after.isoformat()
    if now >= rt.cert_not_after:
        body = ReadyOut(
            status="not_ready",
            key_id=key_id,
            certificate_not_after=not_after,
            problem="the signing certificate has expired",
        )
        return JSONResponse(body.model_dump(), status_code=503)
    warnings = []
    if rt.cert_not_after - now < EXPIRY_WARNING:
        warnings.append(f"the signing certificate expires on {rt.cert_not_after:%Y-%m-%d}")
    return ReadyOut(status="ready", key_id=key_id, certificate_not_after=not_after, warnings=warnings)


@router.get("/metrics", summary="Prometheus metrics of this worker", response_class=Response)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
