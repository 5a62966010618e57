"""The app factory: `uvicorn app.main:create_app --factory`.

Settings are read here, not at import. The lifespan builds the per-process runtime (keys, trust, c2pa
contexts, database) in each worker and fails fast, with the reason, when the signing key cannot sign.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app import errors
from app.admission import VerifyDoor, WorkGate
from app.auth import ApiKeyGate
from app.client_address import parse_networks
from app.files import loose_paths
from app.headers import NoSniff
from app.isolation import build_pool
from app.jobs import build_job_service
from app.jobs.queue import job_queue
from app.json_limit import JsonBodyLimit
from app.limits import BodyPace, BodySizeLimit, InflightBudget
from app.logging_setup import RequestLog, configure_logging
from app.metrics import worker_started, worker_stopped
from app.rate_limit import Clock, PublicLimits
from app.request_guard import RequestGuard
from app.routes import feedback, health, jobs, sbr, sign, verify, verify_url, web
from app.runtime import HALLMARK_VERSION, Runtime, build_runtime
from app.schemas import ProblemOut
from app.sealing import intent_pruning, sealing
from app.settings import Settings
from app.store.apikeys import ApiKeyStore
from app.temp_sweep import sweep_and_log
from signing import HallmarkError

log = logging.getLogger("hallmark")

DESCRIPTION = """Labels AI-generated media with C2PA Content Credentials and verifies media.

* `POST /v1/sign` (API key with the `sign` scope): returns the file with a signed manifest declaring
  it AI-generated (IPTC `trainedAlgorithmicMedia` by default), by which model, when, with a unique id.
* `POST /v1/jobs` (same key and form): the same sign for large files, asynchronously: 202 with the job,
  then `GET /v1/jobs/{id}` (state, phase), `GET /v1/jobs/{id}/result`, `DELETE /v1/jobs/{id}`.
* `POST /v1/verify` (public by default): an honest report: integrity, signer and trust, timestamp,
  declared AI involvement, ingredients, and the C2PA status codes behind each field.
* `/sbr/v1/...` (public by default): the C2PA Soft Binding Resolution API: manifest ids for a watermark
  id, an ISCC or an uploaded image, and the stored manifest stores; discovery at
  `/.well-known/c2pa-soft-binding-resolution`.
* `POST /v1/feedback` (public): "was this result right?" from the verify page at `/`, stored without
  personal data.

Errors are RFC 9457 `application/problem+json`.
"""


def _document_problem_schema(app: FastAPI) -> None:
    """Problem responses reference ProblemOut; FastAPI registers only models used as response_model."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {})["ProblemOut"] = (
                ProblemOut.model_json_schema(ref_template="#/components/schemas/{model}")
            )
            # FastAPI documents a 422 for every route with parameters; the SBR API answers 400 instead.
            for path, operations in schema.get("paths", {}).items():
                if path.startswith(sbr.PREFIX + "/"):
                    for operation in operations.values():
                        operation.get("responses", {}).pop("422", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _warn_if_loose(data_dir: Path) -> None:
    """Hallmark creates its data directory owner-only; one made before (or by hand) with wider modes is
    reported, not changed: group access may be deliberate (a backup agent), and the keys are the operator's
    to decide about."""
    loose = loose_paths(data_dir) if data_dir.is_dir() else []
    if loose:
        log.warning(
            "%d path(s) in the data directory are open to group or others (first: %s); "
            "run `chmod -R go-rwx %s` unless that is intended",
            len(loose),
            ", ".join(str(p) for p in loose[:3]),
            data_dir,
        )


def _shutdown(app: FastAPI, rt: Runtime) -> None:
    try:
        if getattr(app.state, "jobs", None) is not None:
            app.state.jobs.stop()  # a running job's sign is cancelled and the job queued again
        if getattr(app.state, "pool", None) is not None:
            app.state.pool.close()  # kills the decode workers, busy ones included
    finally:
        rt.close()  # the signer's keys (a token's session) and the database


def create_app(settings: Settings | None = None, clock: Clock = time.monotonic) -> FastAPI:
    """`clock` drives the per-client rate limit (tests move it instead of sleeping)."""
    settings = settings or Settings()
    configure_logging(settings.log_format, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # What a killed process left in the temporary directory (this worker's own names carry its PID).
        await to_thread.run_sync(sweep_and_log, settings.temp_sweep_age_seconds)
        try:
            rt = await to_thread.run_sync(build_runtime, settings)
        except HallmarkError as exc:
            log.error("cannot start: %s", exc.diagnostics())
            raise
        app.state.runtime = rt
        app.state.pool = None
        app.state.jobs = None
        try:
            app.state.pool = build_pool(settings)  # no worker starts before the first file
            app.state.jobs = await to_thread.run_sync(build_job_service, rt)
            _warn_if_loose(settings.data_dir)
            log.info(
                "ready: data directory %s, key %s, trust profiles %s, database %s",
                settings.data_dir,
                rt.sign_ctx.signer.key.key_id if rt.sign_ctx else None,
                [p.name for p in rt.trust],
                rt.db.url.render_as_string(hide_password=True),
            )
            worker_started()
            try:
                # The audit chain, the sign intents' retention, Procrastinate's worker.
                async with sealing(rt), intent_pruning(rt), job_queue(app.state.jobs):
                    yield
            finally:
                worker_stopped()
        finally:
            _shutdown(app, rt)

    # The docs are served from vendored files (app/web/vendor/), not a CDN; ReDoc is not offered.
    app = FastAPI(
        title="Hallmark",
        version=HALLMARK_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.budget = InflightBudget(settings.max_inflight_bytes)
    app.state.verify_gate = WorkGate(
        settings.max_concurrent_verifies,
        settings.verify_queue,
        settings.verify_queue_seconds,
        max_retry_after=settings.verify_max_retry_after,
    )
    errors.install(app)
    app.state.bad_request_prefixes = (sbr.PREFIX + "/",)
    app.include_router(sign.router)
    app.include_router(jobs.router)
    app.include_router(verify_url.router)  # before the upload route: it takes only JSON bodies
    app.include_router(verify.router)
    app.include_router(sbr.router)
    app.include_router(sbr.discovery)
    app.include_router(verify_url.options_router)
    app.include_router(health.router)
    app.include_router(feedback.router)
    app.include_router(web.router)
    app.mount(web.ASSETS, StaticFiles(directory=web.WEB_DIR), name="assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return web.docs_page(app.openapi_url or "/openapi.json", app.title)

    def key_store() -> ApiKeyStore | None:
        rt: Runtime | None = getattr(app.state, "runtime", None)
        return rt.api_keys if rt else None

    _document_problem_schema(app)
    _install_limits(app, settings, clock, key_store)
    return app


def _install_limits(
    app: FastAPI, settings: Settings, clock: Clock, key_store: Callable[[], ApiKeyStore | None]
) -> None:
    """The middleware that guards every request, added innermost first (the last added runs first)."""
    rules = {"/v1/sign": "sign", "/v1/jobs": "sign", "/v1/jobs/": "sign"}
    if settings.verify_requires_key:
        rules["/v1/verify"] = "any"
    if not settings.sbr_public:
        rules |= {f"{sbr.PREFIX}/matches/": "resolve", f"{sbr.PREFIX}/manifests/": "resolve"}
    # Innermost: a saturated verification gate answers 503 before the body is parsed (app/admission.py).
    gated = frozenset({"/v1/verify", f"{sbr.PREFIX}/matches/byContent"})
    app.add_middleware(VerifyDoor, gate=app.state.verify_gate, paths=gated)
    # Outermost first to run: the size check, then authentication, both before the body is read.
    app.add_middleware(ApiKeyGate, store=key_store, rules=rules)
    # Signing holds ~3x the upload (spool, engine input, output), verifying ~2x.
    # A job's upload goes to disk (the multipart spool, then the jobs folder), not memory: no charge.
    factors = {"/v1/sign": 3, "/v1/jobs": 0, "/v1/verify": 2, f"{sbr.PREFIX}/matches/byContent": 2}
    pace = BodyPace(
        min_rate=settings.body_min_rate_bytes,
        grace=settings.body_rate_grace_seconds,
        max_gap=settings.body_timeout_seconds,
    )
    app.add_middleware(
        BodySizeLimit,
        limit=settings.max_upload_bytes,
        budget=app.state.budget,
        factors=factors,
        pace=pace,
        path_limits={"/v1/jobs": settings.job_max_upload_bytes},
    )
    app.add_middleware(
        JsonBodyLimit,
        limits={
            "/v1/feedback": feedback.MAX_FEEDBACK_BYTES,
            f"{sbr.PREFIX}/matches/byBinding": sbr.MAX_QUERY_BYTES,
        },
        json_limits={"/v1/verify": verify_url.MAX_URL_BODY_BYTES},
    )
    # Per-client limits before any size or key check, so a refused client costs a dict look-up.
    app.add_middleware(
        PublicLimits,
        paths=frozenset(
            {"/v1/verify", "/v1/feedback"}
            | ({sbr.PREFIX + "/", sbr.WELL_KNOWN} if settings.sbr_public else set())
        ),
        per_minute=settings.public_rate_limit,
        max_concurrent=settings.public_max_concurrent_per_client,
        max_clients=settings.rate_limit_max_clients,
        proxies=parse_networks(settings.trusted_proxies),
        clock=clock,
    )
    app.add_middleware(
        RequestGuard, max_headers=settings.max_headers, max_header_bytes=settings.max_header_bytes
    )
    app.add_middleware(NoSniff)
    # Outermost: every response, refusals by the guards above included, carries the request id.
    app.add_middleware(RequestLog)
