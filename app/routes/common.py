"""Small helpers shared by the routes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import IO, Any

from anyio import from_thread
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from app.admission import WorkGate
from app.isolation import WorkerPool
from app.limits import InflightBudget
from app.runtime import Runtime
from app.schemas import VerifyUrlIn

CHUNK = 1 << 20


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def pool(request: Request) -> WorkerPool | None:
    """The isolated decode workers (None: decode in this process; HALLMARK_ISOLATION_WORKERS=0)."""
    p: WorkerPool | None = getattr(request.app.state, "pool", None)
    return p


def watch(request: Request) -> Callable[[], bool]:
    """For a sync route (in the thread pool): whether the client has closed its connection."""
    return lambda: bool(from_thread.run(request.is_disconnected))


def budget(request: Request) -> InflightBudget:
    b: InflightBudget = request.app.state.budget
    return b


def verify_slot(request: Request) -> AbstractContextManager[None]:
    """A verification slot of this worker (app/admission.py), held while a file is examined."""
    gate: WorkGate = request.app.state.verify_gate
    return gate.slot()


def file_response(fh: IO[bytes], size: int, small: int, media_type: str, headers: dict[str, str]) -> Response:
    """Small outputs go out as one buffer (no thread hop per chunk); large ones stream from their spool."""
    if size <= small:
        fh.seek(0)
        try:
            return Response(fh.read(), media_type=media_type, headers=headers)
        finally:
            fh.close()
    return stream_file(fh, media_type, headers)


def stream_file(fh: IO[bytes], media_type: str, headers: dict[str, str]) -> StreamingResponse:
    """Stream a (spooled) temporary file and close it when done, also if the client goes away."""
    fh.seek(0)

    def chunks() -> Iterator[bytes]:
        try:
            while data := fh.read(CHUNK):
                yield data
        finally:
            fh.close()

    return StreamingResponse(chunks(), media_type=media_type, headers=headers)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": text,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemOut"}}},
    }
    for status, text in (
        (400, "The body could not be parsed (not well-formed multipart/form-data or JSON)"),
        (401, "API key missing or invalid"),
        (403, "API key lacks the required scope"),
        (413, "File larger than the configured limit"),
        (408, "The request body stopped arriving or arrived too slowly; the connection is closed"),
        (415, "Not a supported media type (identified from the bytes)"),
        (
            422,
            "Malformed file, invalid metadata, or a file too complex to process within this server's limits",
        ),
        (
            503,
            "Not able to sign or verify now (ledger, timestamp authority, capacity, a file past the "
            "processing deadline); see Retry-After",
        ),
    )
}
# The public endpoints only (app/rate_limit.py); sign is limited by its API keys instead.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        **PROBLEM_RESPONSES[413],
        "description": "Too many requests from this client (per minute or at once); see Retry-After",
    }
}
# Verify by URL: the JSON alternative to the multipart upload, documented on the same operation.
URL_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {"content": {"application/json": {"schema": VerifyUrlIn.model_json_schema()}}}
}
URL_FETCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {**PROBLEM_RESPONSES[413], "description": text}
    for status, text in (
        (403, "Verify by URL is switched off on this server (url-fetch-disabled; HALLMARK_URL_FETCH)"),
        (422, "Malformed file, or a URL this service will not fetch from (url-refused)"),
        (502, "The URL could not be fetched: unreachable, TLS, HTTP error, too many redirects"),
        (504, "The URL took longer to fetch than HALLMARK_URL_FETCH_TIMEOUT allows"),
    )
}
