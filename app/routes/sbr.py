"""The C2PA Soft Binding Resolution API (SBR 2.4.0), under `/sbr/v1`, and its discovery document.

Queries answer with manifest ids of entries in this service's manifest repository that still verify
(`signing.resolve_binding` / `resolve_content`); `GET /manifests/{activeManifestId}` returns the stored
manifest store. Public unless HALLMARK_SBR_PUBLIC is off (then the query and fetch routes need the
`resolve` scope).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from typing import IO, Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.isolation.service import matches_by_content
from app.routes.common import PROBLEM_RESPONSES, RATE_LIMITED, budget, pool, runtime, verify_slot, watch
from app.runtime import Runtime
from app.sbr_schemas import (
    C2PA_SBR_VERSION,
    AlgOut,
    MatchOut,
    ServiceCapabilitiesOut,
    ServiceStatusOut,
    SoftBindingQueryIn,
    SoftBindingQueryResultOut,
    SupportedAlgorithmsOut,
    WellKnownDiscoveryOut,
)
from signing import (
    SBR_FINGERPRINT_ALGORITHMS,
    SBR_WATERMARK_ALGORITHMS,
    WATERMARK_ALGORITHM,
    ManifestNotFoundError,
    SoftBindingMatch,
    active_manifest_only,
    offerable_alone,
    resolve_binding,
)

PREFIX = "/sbr/v1"
WELL_KNOWN = "/.well-known/c2pa-soft-binding-resolution"
MAX_QUERY_BYTES = 64 * 1024  # a POST byBinding body: an ISCC-SEQ is a few hundred bytes
TAG = "manifest recovery (C2PA Soft Binding Resolution API)"
router = APIRouter(prefix=PREFIX, tags=[TAG])
discovery = APIRouter(tags=[TAG])

_BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {**PROBLEM_RESPONSES[422], "description": "Invalid query value or request body"},
}
_QUERY_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_BAD_REQUEST,
    **{k: v for k, v in PROBLEM_RESPONSES.items() if k in (401, 403)},
    **RATE_LIMITED,
}
MaxResults = Annotated[
    int,
    Query(
        alias="maxResults",
        ge=1,
        description="Most manifest ids to return; capped at HALLMARK_SBR_MAX_MATCHES (default 10).",
    ),
]
ALG_DESCRIPTION = (
    "A soft binding algorithm from GET /services/supportedAlgorithms: `io.iscc.v0` (on the C2PA soft binding "
    f"algorithm list) or `{WATERMARK_ALGORITHM}` (this service's watermark; not on that list)."
)


def _matches(found: list[SoftBindingMatch]) -> SoftBindingQueryResultOut:
    return SoftBindingQueryResultOut(
        matches=[MatchOut(manifest_id=m.manifest_id, similarity_score=m.similarity_score) for m in found]
    )


def _by_binding(rt: Runtime, alg: str, value: str, max_results: int) -> SoftBindingQueryResultOut:
    found = resolve_binding(
        alg,
        value,
        engine=rt.engine,
        repository=rt.manifests,
        limit=min(max_results, rt.settings.sbr_max_matches),
    )
    return _matches(found)


@router.get(
    "/services/supportedAlgorithms",
    summary="Soft binding algorithms this service resolves",
    description=f"`io.iscc.v0`: the ISCC image code (ISO 24138) that every signed image declares in its "
    f"`c2pa.soft-binding` assertion. `{WATERMARK_ALGORITHM}`: this service's invisible watermark, declared "
    "in the `org.hallmark.watermark` assertion; it is not on the C2PA soft binding algorithm list.",
    response_model=SupportedAlgorithmsOut,
    responses=RATE_LIMITED,
)
def supported_algorithms() -> SupportedAlgorithmsOut:
    return SupportedAlgorithmsOut(
        watermarks=[AlgOut(alg=a) for a in SBR_WATERMARK_ALGORITHMS],
        fingerprints=[AlgOut(alg=a) for a in SBR_FINGERPRINT_ALGORITHMS],
    )


@router.get(
    "/services/capabilities",
    summary="Optional SBR capabilities this service offers",
    response_model=ServiceCapabilitiesOut,
    responses=RATE_LIMITED,
)
def capabilities() -> ServiceCapabilitiesOut:
    return ServiceCapabilitiesOut(
        c2pa_specification_version=C2PA_SBR_VERSION, supported_capabilities=["queryByContent"]
    )


@router.get(
    "/services/status", summary="Operational status", response_model=ServiceStatusOut, responses=RATE_LIMITED
)
def status() -> ServiceStatusOut:
    return ServiceStatusOut(status="ok", timestamp=datetime.now(UTC))


@router.get(
    "/matches/byBinding",
    summary="Manifest ids for a soft binding value",
    description="A watermark id is looked up exactly (similarityScore 100); an ISCC image code finds the "
    "signed images within the ISCC match threshold, nearest first. Only manifests that still verify are "
    'returned. No match: `{"matches": []}`. An algorithm this service does not resolve, or a value that '
    "is not base64 in the algorithm's format: 400.",
    response_model=SoftBindingQueryResultOut,
    responses=_QUERY_RESPONSES,
)
def by_binding(
    request: Request,
    alg: Annotated[str, Query(description=ALG_DESCRIPTION)],
    value: Annotated[
        str,
        Query(
            description="Base64 of the binding: a watermark id's 6 bytes (or its 12 hex digits); an ISCC "
            "as text (`ISCC:EEA...`) or as binary units (IEP-0020)."
        ),
    ],
    max_results: MaxResults = 10,
) -> SoftBindingQueryResultOut:
    return _by_binding(runtime(request), alg, value, max_results)


@router.post(
    "/matches/byBinding",
    summary="Manifest ids for a (large) soft binding value",
    description="As GET /matches/byBinding, with the query as a JSON body.",
    response_model=SoftBindingQueryResultOut,
    responses=_QUERY_RESPONSES,
)
def by_large_binding(
    request: Request, query: Annotated[SoftBindingQueryIn, Body()], max_results: MaxResults = 10
) -> SoftBindingQueryResultOut:
    return _by_binding(runtime(request), query.alg, query.value, max_results)


_ASSET = {"schema": {"type": "string", "format": "binary"}}


@router.post(
    "/matches/byContent",
    summary="Manifest ids for an uploaded image",
    description="The request body is the asset itself (not a form). The service looks for its watermark "
    "(a hit counts only when the picture matches the asset the mark was made for: similarityScore 100) and "
    "else for signed images with near fingerprints (ISCC/PDQ), as verify's recovery does. An empty or "
    "undecodable image: 400. `alg` keeps only "
    "matches of that algorithm; `hintAlg`/`hintValue` are accepted and not used. Images only: other types "
    "get 415.",
    response_model=SoftBindingQueryResultOut,
    responses={
        **_QUERY_RESPONSES,
        **{k: v for k, v in PROBLEM_RESPONSES.items() if k in (413, 415, 422, 503)},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The asset to match.",
            "content": {"image/*": _ASSET, "application/octet-stream": _ASSET},
        }
    },
)
async def by_content(
    request: Request,
    max_results: MaxResults = 10,
    alg: Annotated[str | None, Query(description=ALG_DESCRIPTION)] = None,
    hint_alg: Annotated[str | None, Query(alias="hintAlg", description="Accepted, not used.")] = None,
    hint_value: Annotated[str | None, Query(alias="hintValue", description="Accepted, not used.")] = None,
) -> SoftBindingQueryResultOut:
    rt = runtime(request)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=rt.settings.spool_memory_bytes)  # noqa: SIM115
    try:
        async for chunk in request.stream():
            spool.write(chunk)
        size = spool.tell()
        return await run_in_threadpool(_by_content, request, rt, spool, size, alg, max_results)
    finally:
        spool.close()


def _by_content(
    request: Request, rt: Runtime, asset: IO[bytes], size: int, alg: str | None, max_results: int
) -> SoftBindingQueryResultOut:
    with budget(request).reserve_unless_held(request.state, 2 * size), verify_slot(request):
        found = matches_by_content(
            rt,
            pool(request),
            asset,
            alg=alg,
            limit=min(max_results, rt.settings.sbr_max_matches),
            cancelled=watch(request),
        )
    return _matches(found)


@router.get(
    "/manifests/{activeManifestId}",
    summary="The manifest store of a manifest id",
    description="The C2PA manifest store as signed (`application/c2pa`), if its signature still verifies. "
    "`returnActiveManifest=true` returns a store holding the active manifest alone.",
    response_class=Response,
    responses={
        200: {"content": {"application/c2pa": {"schema": {"type": "string", "format": "binary"}}}},
        404: {**PROBLEM_RESPONSES[422], "description": "No such manifest (or it no longer verifies)"},
        **_QUERY_RESPONSES,
    },
)
def manifest(
    request: Request,
    manifest_id: Annotated[
        str, Path(alias="activeManifestId", description="An active manifest id (urn:c2pa:...).")
    ],
    return_active_manifest: Annotated[
        bool, Query(alias="returnActiveManifest", description="Only the active manifest.")
    ] = False,
) -> Response:
    rt = runtime(request)
    entry = rt.manifests.get(manifest_id)
    if entry is None or not offerable_alone(rt.engine, entry):
        raise ManifestNotFoundError(
            "This service holds no manifest with that id that still verifies.",
            details={"manifest_id": manifest_id},
        )
    store = active_manifest_only(entry.manifest_store) if return_active_manifest else entry.manifest_store
    return Response(store, media_type="application/c2pa")


@discovery.get(
    WELL_KNOWN,
    summary="Discovery document of the Soft Binding Resolution API (RFC 8615)",
    response_model=WellKnownDiscoveryOut,
    responses=RATE_LIMITED,
)
def well_known(request: Request) -> WellKnownDiscoveryOut:
    root = request.scope.get("root_path", "").rstrip("/") + PREFIX
    return WellKnownDiscoveryOut(
        api_endpoint=root,
        c2pa_specification_version=C2PA_SBR_VERSION,
        capabilities_endpoint=f"{root}/services/capabilities",
        status_endpoint=f"{root}/services/status",
    )
