"""One table from core error types to HTTP status, rendered as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.metrics import PROBLEMS
from app.request_context import current_request_id
from signing import (
    AssetError,
    AssetTooLargeError,
    CapacityError,
    ClientGoneError,
    ConfigError,
    DecodeDeadlineError,
    HallmarkError,
    IdempotencyInProgressError,
    IdempotencyKeyError,
    IdempotencyMismatchError,
    InvalidMetadataError,
    InvalidQueryError,
    IsolationLimitError,
    KeyringError,
    LedgerError,
    MalformedAssetError,
    ManifestNotFoundError,
    MediaFingerprintError,
    MediaToolMissingError,
    MediaToolTimeoutError,
    PolicyRefusedError,
    RateLimitedError,
    SidecarUnavailableError,
    SigningError,
    StorageError,
    TimestampAuthorityError,
    UnsupportedMediaError,
    UrlFetchDisabledError,
    UrlFetchError,
    UrlFetchTimeoutError,
    UrlRefusedError,
    VerificationError,
)

log = logging.getLogger("hallmark")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "/problems/"  # relative URI reference (RFC 9457 3.1.1)

# Most specific first: the first class the error is an instance of decides the status.
STATUS: tuple[tuple[type[HallmarkError], int], ...] = (
    # Idempotency-Key (app/idempotency.py) and per-API-key policies (app/policies.py).
    (IdempotencyKeyError, 400),
    (IdempotencyMismatchError, 422),
    (IdempotencyInProgressError, 409),
    (PolicyRefusedError, 403),
    (RateLimitedError, 429),  # also the monthly quota (QuotaExceededError)
    (UnsupportedMediaError, 415),
    (AssetTooLargeError, 413),
    (MalformedAssetError, 422),
    (SidecarUnavailableError, 422),
    (InvalidMetadataError, 422),
    (InvalidQueryError, 400),
    (ManifestNotFoundError, 404),  # the C2PA Soft Binding Resolution API answers 400 to a malformed query
    (IsolationLimitError, 422),  # a decode worker crashed or hit its memory/CPU limit (app/isolation)
    (AssetError, 422),  # any other problem with the uploaded file is still the request's
    (MediaToolMissingError, 503),  # the operator's to fix: install ffmpeg / fpcalc
    (MediaToolTimeoutError, 503),
    (MediaFingerprintError, 422),  # the file could not be decoded or holds nothing to fingerprint
    (TimestampAuthorityError, 503),
    (LedgerError, 503),
    (StorageError, 503),
    (CapacityError, 503),
    (DecodeDeadlineError, 503),  # a decode worker outlived the wall deadline (app/isolation)
    (ClientGoneError, 499),  # nobody reads it (nginx's "client closed request"); logged and counted
    (VerificationError, 422),
    # Verify by URL: switched off by the operator, a destination the service will not contact, the remote
    # server too slow, or failing (a gateway's statuses: the request was fine, the upstream was not).
    (UrlFetchDisabledError, 403),
    (UrlRefusedError, 422),
    (UrlFetchTimeoutError, 504),
    (UrlFetchError, 502),
    (KeyringError, 503),
    (SigningError, 500),
    (ConfigError, 503),
    # An error no specific class claims is a fault of the service (e.g. the engine refused its
    # configuration), not of the request: clients must not be told to change what they sent.
    (HallmarkError, 500),
)
RETRY_AFTER = {503: "5"}


def status_for(exc: HallmarkError) -> int:
    return next(status for cls, status in STATUS if isinstance(exc, cls))


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    PROBLEMS.labels(code).inc()
    body: dict[str, Any] = {"type": PROBLEM_BASE + code, "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    request_id = current_request_id()
    if request_id is not None:
        body["request_id"] = request_id
    headers = {"Retry-After": RETRY_AFTER[status]} if status in RETRY_AFTER else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def hallmark_problem(exc: HallmarkError) -> JSONResponse:
    diag = exc.diagnostics()
    response = problem(
        status_for(exc), exc.code, exc.title, exc.message, hint=diag.get("hint"), details=diag.get("details")
    )
    retry = exc.details.get("retry_after_seconds")
    if response.status_code in (409, 429, 503) and isinstance(retry, int) and retry > 0:
        response.headers["Retry-After"] = str(retry)  # e.g. until the TSA circuit breaker half-opens
    return response


async def _on_hallmark(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HallmarkError)
    response = hallmark_problem(exc)
    level = logging.WARNING if response.status_code >= 500 else logging.INFO
    log.log(level, "request failed: %s", exc.diagnostics())
    return response


def _field_message(err: Any) -> str:
    """Pydantic's wording, turned into a phrase that follows the field name."""
    if err.get("type") == "missing":
        return "is required"
    text = str(err.get("msg", "is invalid"))
    if "Expected UploadFile" in text:
        return "must be a file part of a multipart/form-data request, not a text field"
    return text.replace("Input should be", "must be").replace("Value error, ", "")


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "header")]
        name = ".".join(loc) or "request"
        message = _field_message(err)
        fields.append({"field": name, "message": message})
    detail = "; ".join(f"'{f['field']}' {f['message']}" for f in fields) or "The request is malformed."
    # APIs whose specification answers a malformed request with 400 (the C2PA Soft Binding Resolution API).
    prefixes: tuple[str, ...] = getattr(request.app.state, "bad_request_prefixes", ())
    route_path = str(getattr(request.scope.get("route"), "path", ""))
    status = 400 if prefixes and route_path.startswith(prefixes) else 422
    return problem(status, "invalid-request", "Invalid request", detail, errors=fields)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # FastAPI turns any error while parsing a body into a bare 400; ours (size limit) keep their meaning.
    cause = exc.__cause__
    if isinstance(cause, HallmarkError):
        return await _on_hallmark(request, cause)
    response = problem(exc.status_code, f"http-{exc.status_code}", str(exc.detail), str(exc.detail))
    # The exception's headers are part of the answer: a 405 names the allowed methods (`Allow`, RFC 9110),
    # all of them: Starlette names only those of the first route on the path (GET of a GET + POST path).
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route answers on this path (each method tried against the app's routes)."""
    routes = request.app.router.routes
    return [
        method
        for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return problem(500, "internal", "Internal error", "An unexpected error occurred; it has been logged.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(HallmarkError, _on_hallmark)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
