"""Liveness, readiness and metrics."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.metrics import CONTENT_TYPE, exposition
from app.routes.common import runtime
from app.schemas import HealthOut, ReadyOut
from app.sealing import refresh_audit_gauges

router = APIRouter(tags=["operations"])


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
    if getattr(request.app.state, "runtime", None) is None:
        return _not_ready(ReadyOut(status="not_ready", problem="starting"))
    rt = runtime(request)
    ctx = rt.sign_ctx
    if ctx is None:
        return _not_ready(ReadyOut(status="not_ready", problem=rt.public_signer_problem or "no signing key"))
    key = ctx.signer.key
    not_after = key.certificate.not_valid_after_utc
    body = ReadyOut(status="ready", key_id=key.key_id, certificate_not_after=not_after.isoformat())
    now = rt.clock.now()
    if now >= not_after:
        expired = {"status": "not_ready", "problem": "the signing certificate has expired"}
        return _not_ready(body.model_copy(update=expired))
    if not_after - now < timedelta(days=rt.settings.cert_expiry_warning_days):
        body.warnings.append(f"the signing certificate expires on {not_after:%Y-%m-%d}")
    if rt.public_signer_problem:
        body.warnings.append(rt.public_signer_problem)
    return body


def _not_ready(body: ReadyOut) -> JSONResponse:
    return JSONResponse(body.model_dump(), status_code=503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (of every worker, added up, under --workers N)",
    response_class=Response,
)
def metrics(request: Request) -> Response:
    refresh_audit_gauges(getattr(request.app.state, "runtime", None))
    return Response(exposition(), media_type=CONTENT_TYPE)
