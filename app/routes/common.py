"""Small helpers shared by the routes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, Annotated, Any, Literal

from anyio import from_thread
from fastapi import File, Form, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from app.admission import WorkGate
from app.isolation import WorkerPool
from app.limits import InflightBudget
from app.runtime import Runtime
from app.schemas import VerifyUrlIn

CHUNK = 1 << 20


@dataclass(frozen=True)
class SignForm:
    """The form and query of a sign request, shared by `POST /v1/sign` and `POST /v1/jobs`."""

    file: UploadFile
    model_name: str
    model_version: str
    provider: str | None
    digital_source_type: str | None
    training_mining: str | None
    training_mining_constraint: str | None
    title: str | None
    output: Literal["embedded", "sidecar"]

    def fields(self) -> dict[str, str | None]:
        """The form fields that describe the generation (what `generation()` and the fingerprint take)."""
        return {
            "model_name": self.model_name, "model_version": self.model_version, "provider": self.provider,
            "digital_source_type": self.digital_source_type, "training_mining": self.training_mining,
            "training_mining_constraint": self.training_mining_constraint, "title": self.title,
        }  # fmt: skip


def sign_form(
    file: Annotated[UploadFile, File(description="The generated image, video or audio file.")],
    model_name: Annotated[str, Form(description="Name of the model that generated the file.")],
    model_version: Annotated[str, Form(description="Version of the model.")],
    provider: Annotated[str | None, Form(description="Provider of the model; default from settings.")] = None,
    digital_source_type: Annotated[
        str | None,
        Form(description="IPTC digital source type code or URI; default trainedAlgorithmicMedia."),
    ] = None,
    training_mining: Annotated[
        str | None, Form(description="CAWG training/mining preference: allowed, notAllowed, constrained.")
    ] = None,
    training_mining_constraint: Annotated[
        str | None, Form(description="Constraint text, with training_mining=constrained.")
    ] = None,
    title: Annotated[str | None, Form(description="Title recorded in the manifest.")] = None,
    output: Annotated[
        Literal["embedded", "sidecar"], Query(description="Embed, or return a sidecar.")
    ] = "embedded",
) -> SignForm:
    """The one declaration of the sign request's parameters (a FastAPI dependency: the routes' OpenAPI
    operations list them exactly as if each route declared them itself)."""
    return SignForm(
        file, model_name, model_version, provider, digital_source_type, training_mining,
        training_mining_constraint, title, output,
    )  # fmt: skip


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
