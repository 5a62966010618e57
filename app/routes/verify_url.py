"""POST /v1/verify with a JSON body `{"url": ...}`: fetch the file (app/url_fetch.py) and verify it exactly as
an upload, through the multipart route's own function. Off unless the operator turns it on."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from tempfile import SpooledTemporaryFile
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, UploadFile
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from app.json_limit import is_json
from app.limits import BUDGET_HELD
from app.routes import verify as upload_route
from app.routes.common import budget, runtime
from app.runtime import HALLMARK_VERSION
from app.schemas import DetailedVerificationReportOut, VerificationReportOut, VerifyOptionsOut, VerifyUrlIn
from app.settings import Settings
from app.url_fetch import FetchPolicy, open_url
from app.url_policy import AllowList
from signing import UrlFetchDisabledError

log = logging.getLogger("hallmark")

# Like Starlette's multipart parser: small files stay in memory, larger ones go to a temporary file.
SPOOL_MAX_BYTES = 1024 * 1024
USER_AGENT = f"Hallmark/{HALLMARK_VERSION}"
# A URL of at most 4096 characters, escaped, in a JSON object.
MAX_URL_BODY_BYTES = 8 * 1024


class JsonBodyRoute(APIRoute):
    """Matches only requests whose body is JSON, so that the multipart route on the same path keeps the
    others (and answers them exactly as before)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and not is_json(scope):
            return Match.NONE, {}
        return match, child


router = APIRouter(tags=["verification"], route_class=JsonBodyRoute)
options_router = APIRouter(tags=["verification"])


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        allowlist=AllowList(settings.url_allowlist),
        timeout=settings.url_fetch_timeout,
        max_redirects=settings.url_max_redirects,
        max_bytes=settings.max_upload_bytes,
        user_agent=USER_AGENT,
    )


# Documented on the multipart operation (app/routes/common.py: URL_REQUEST_BODY): one operation, two bodies.
@router.post(
    "/v1/verify",
    include_in_schema=False,
    response_model=DetailedVerificationReportOut | VerificationReportOut,
)
def verify_url(
    request: Request,
    body: VerifyUrlIn,
    detail: Annotated[Literal["summary", "full"], Query()] = "summary",
) -> DetailedVerificationReportOut | VerificationReportOut:
    rt = runtime(request)
    if not rt.settings.url_fetch:
        raise UrlFetchDisabledError(
            "This server does not fetch files from URLs; upload the file instead.",
            hint="The operator can turn verify-by-URL on with HALLMARK_URL_FETCH=true.",
        )
    policy = fetch_policy(rt.settings)
    with SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES) as spool, ExitStack() as held:
        with open_url(body.url, policy) as remote:
            # A declared length is charged before the body is read (refused at once when the worker is full);
            # otherwise the bytes that arrived are charged once they are in.
            if remote.declared_size is not None:
                held.enter_context(budget(request).reserve(2 * remote.declared_size))
            size = remote.save(spool)
        if remote.declared_size is None:
            held.enter_context(budget(request).reserve(2 * size))
        setattr(request.state, BUDGET_HELD, True)
        log.info("verify by URL: %d bytes from %s", size, remote.target.origin)  # never the path or query
        spool.seek(0)
        upload = UploadFile(spool, size=size, filename="remote")  # type: ignore[arg-type]
        return upload_route.verify(request, file=upload, manifest=None, detail=detail)


@options_router.get(
    "/v1/verify/options",
    summary="What POST /v1/verify accepts here",
    description="Whether verify-by-URL is on, and the largest file verified; the verify page asks first.",
    response_model=VerifyOptionsOut,
)
def verify_options(request: Request) -> VerifyOptionsOut:
    settings = runtime(request).settings
    return VerifyOptionsOut(url_input=settings.url_fetch, max_file_bytes=settings.max_upload_bytes)
