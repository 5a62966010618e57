"""serve, sign and verify."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import socket
from contextlib import ExitStack
from dataclasses import asdict, replace
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO, Annotated

import typer

from app.cli.common import error, fail, jsonable, settings
from app.cli.exitcodes import VERIFY_EXIT, ExitCode
from app.settings import Settings
from signing import (
    AssetTooLargeError,
    Engine,
    HallmarkError,
    Integrity,
    OutputMode,
    Recovery,
    UrlFetchDisabledError,
    UrlFetchError,
    UrlRefusedError,
    VerificationReport,
    inspect_asset,
    sha256_stream,
    sign_asset,
    validate_generation,
)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(sign)
    app.command()(verify)


# --- serve ---------------------------------------------------------------------------------------------


def serve(
    dev: Annotated[
        bool, typer.Option("--dev", help="Create dev keys, trust, database and an API key on first start.")
    ] = False,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Worker processes (one per core is right for c2pa); default: HALLMARK_WORKERS (1)."
        ),
    ] = None,
) -> None:
    """Serve the HTTP API."""
    from app.bootstrap import init_dev
    from app.metrics import MULTIPROC_ENV, prepare_multiprocess_dir, remove_multiprocess_dir
    from app.temp_sweep import sweep

    cfg = settings()
    if workers is None:
        workers = cfg.workers
    _check_port_free(host, port)
    raise_open_files_limit()
    if dev:
        try:
            result = init_dev(cfg)
        except HallmarkError as exc:
            fail(exc)
        if result.created_pki:
            typer.echo(f"Created a development PKI in {cfg.resolved_keys_dir} (trusted as 'hallmark-dev').")
        if result.api_key:
            typer.echo("Your API key (shown once; it has the 'sign' scope):")
            typer.echo(result.api_key)
        else:
            typer.echo(
                "API keys exist already; create another with: hallmark apikey create --name NAME --scope sign"
            )
    # Workers re-read settings from the environment: pass on what the command line decided.
    os.environ["HALLMARK_DATA_DIR"] = str(cfg.data_dir)
    log_format = cfg.log_format if "HALLMARK_LOG_FORMAT" in os.environ or not dev else "text"
    os.environ["HALLMARK_LOG_FORMAT"] = log_format
    # How many they are: Settings divides the cores among them (HALLMARK_MAX_CONCURRENT_VERIFIES' default).
    os.environ["HALLMARK_WORKERS"] = str(workers)
    # Before this serve makes its metrics directory: what killed processes left (a previous serve's metrics
    # directory among them; a running serve's is kept, its PID is alive). Each worker sweeps again at start.
    swept = sweep(cfg.temp_sweep_age_seconds)
    if swept.removed or swept.failed:
        typer.echo(
            f"Removed {swept.removed} temporary file(s) or directory(ies) left by processes that no longer "
            "run" + (f"; {swept.failed} could not be removed" if swept.failed else "")
        )
    try:
        metrics_dir, made_metrics_dir = prepare_multiprocess_dir(workers)
    except (ValueError, OSError) as exc:
        error(f"cannot prepare the metrics directory: {exc}")
    if metrics_dir is not None:
        os.environ[MULTIPROC_ENV] = str(metrics_dir)  # before uvicorn starts (spawns) the workers
    typer.echo(
        f"Serving on http://{host}:{port} with data directory {cfg.data_dir} "
        "(verify page at /, API docs at /docs; POST /v1/sign, POST /v1/verify)"
    )
    try:
        _run(cfg, host, port, workers, log_format)
    finally:
        if made_metrics_dir and metrics_dir is not None:
            remove_multiprocess_dir(metrics_dir)


def _run(cfg: Settings, host: str, port: int, workers: int, log_format: str) -> None:
    import uvicorn

    from app.head_timeout import HeadTimeoutH11Protocol
    from app.logging_setup import uvicorn_log_config

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=5,
        # SIGTERM: stop accepting, let requests in progress finish this long, then cut them and exit.
        timeout_graceful_shutdown=cfg.shutdown_grace_seconds,
        # With --workers N: a worker that does not answer the supervisor's ping this long is killed.
        timeout_worker_healthcheck=cfg.worker_healthcheck_seconds,
        # h11, not httptools: only uvicorn's h11 protocol bounds the bytes of a request head it buffers;
        # this subclass bounds the time it may take too (HALLMARK_HEAD_TIMEOUT_SECONDS).
        http=HeadTimeoutH11Protocol,
        h11_max_incomplete_event_size=cfg.max_header_bytes,
        log_level=cfg.log_level,
        log_config=uvicorn_log_config(log_format, cfg.log_level),
        # uvicorn's access log prints each request line with its query string, which may hold a credential
        # a client wrongly put there (refused with 400, but already logged); the service logs its own events.
        access_log=False,
    )


def raise_open_files_limit() -> tuple[int, int]:
    """Every connection is a file descriptor: raise the soft limit (often 1,024) to the hard one, as far as
    an unprivileged process may, so that a thousand connections are not refused by accept() (EMFILE).
    The workers inherit it. Returns the (soft, hard) limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    limits: tuple[int, int] = resource.getrlimit(resource.RLIMIT_NOFILE)
    return limits


def _check_port_free(host: str, port: int) -> None:
    """Bind the address once, as uvicorn will, before anything is created or announced: a port in use is one
    line and a non-zero exit, not a start-up banner followed by uvicorn's traceback-like log."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        error(f"cannot listen on {host}:{port}: {exc.strerror}.", ExitCode.USAGE)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                error(
                    f"port {port} on {host} is already in use; stop what holds it or choose another --port."
                )
            error(f"cannot listen on {host}:{port}: {exc.strerror}.")


# --- sign / verify -------------------------------------------------------------------------------------


def sign(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The generated file.")
    ],
    model_name: Annotated[str, typer.Option("--model-name", help="Model that generated it.")],
    model_version: Annotated[str, typer.Option("--model-version", help="Model version.")],
    provider: Annotated[str | None, typer.Option(help="Provider; default HALLMARK_DEFAULT_PROVIDER.")] = None,
    digital_source_type: Annotated[
        str | None, typer.Option(help="IPTC code; default trainedAlgorithmicMedia.")
    ] = None,
    training_mining: Annotated[
        str | None,
        typer.Option(
            help="CAWG training/mining preference (a cawg.training-mining assertion): allowed, notAllowed "
            "or constrained."
        ),
    ] = None,
    training_mining_constraint: Annotated[
        str | None, typer.Option(help="The constraint, with --training-mining constrained.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Title recorded in the manifest.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output path; default FILE.signed.EXT.")
    ] = None,
    sidecar: Annotated[bool, typer.Option(help="Write a detached .c2pa manifest store instead.")] = False,
) -> None:
    """Sign a file offline with the configured key (recorded in the ledger like an HTTP sign)."""
    from app.media_binding import media_code
    from app.runtime import build_runtime
    from app.sign_service import SignAttempt

    cfg = settings()
    try:
        rt = build_runtime(cfg)
        try:
            info = validate_generation(
                model_name=model_name,
                model_version=model_version,
                provider=provider or cfg.default_provider,
                digital_source_type=digital_source_type,
                training_mining=training_mining,
                training_mining_constraint=training_mining_constraint,
                title=title,
                allowed_source_types=cfg.allowed_source_types,
            )
            ctx = rt.sign_ctx
            assert ctx is not None  # build_runtime raised otherwise
            mode = OutputMode.SIDECAR if sidecar else OutputMode.EMBEDDED
            target = out or file.with_name(f"{file.stem}.signed{'.c2pa' if sidecar else file.suffix}")
            tmp = target.with_name(target.name + ".partial")
            try:
                with file.open("rb") as src, tmp.open("w+b") as dest:
                    code = media_code(src, cfg) if ctx.soft_binder is not None else None
                    if code is not None and code.iscc is not None and ctx.soft_binder is not None:
                        ctx = replace(ctx, soft_binder=replace(ctx.soft_binder, media_iscc=code.iscc))
                    # Its intent first, as in the service (app/sign_service.py); no worker deadline here.
                    attempt = SignAttempt(rt, ctx, None, cfg.job_deadline_seconds)
                    input_sha256 = sha256_stream(src)[0]
                    attempt.open(input_sha256)
                    src.seek(0)
                    try:
                        signed = sign_asset(
                            ctx,
                            src,
                            dest,
                            info,
                            mode=mode,
                            manifest_id=attempt.manifest_id,
                            input_sha256=input_sha256,
                        )
                    except BaseException as exc:
                        attempt.abandon(exc)
                        raise
                tmp.replace(target)
            finally:
                tmp.unlink(missing_ok=True)  # a failed sign leaves nothing half-written behind
        finally:
            rt.close()  # the key (a token's session) and the database
    except HallmarkError as exc:
        fail(exc)
    typer.echo(
        json.dumps(
            {
                "output": str(target),
                "manifest_id": signed.manifest_id,
                "media_type": signed.media_type.mime,
                "output_sha256": signed.output_sha256,
                "watermark_id": signed.watermark_id,
                "watermark_skipped": signed.watermark_skipped,
                "iscc": code.header() if code is not None else None,
            }
        )
    )


def _human(report: VerificationReport) -> str:
    lines = [
        f"outcome:     {report.outcome.value}",
        f"summary:     {report.summary}",
        f"integrity:   {report.integrity.value}",
        f"media type:  {report.media_type}",
    ]
    if report.manifest_id:
        lines.append(f"manifest:    {report.manifest_id}")
    if report.signer:
        s = report.signer
        trust = f"trusted by '{s.trust_profile}'" if s.trusted else "not trusted"
        lines.append(f"signer:      {s.organization or '-'} / {s.common_name or '-'} ({trust})")
    stamp = report.timestamp
    by = f" by '{stamp.trust_profile}' ({stamp.trust_list} anchors)" if stamp.trust_profile else ""
    lines.append(f"timestamp:   {stamp.status.value}{by}" + (f" at {stamp.time}" if stamp.time else ""))
    lines.append(f"revocation:  {report.revocation.value}")
    ai = report.ai
    if ai is not None and ai.digital_source_type is not None:
        lines.append(
            f"ai:          {ai.digital_source_type.rsplit('/', 1)[-1]} model={ai.model_name} "
            f"version={ai.model_version} provider={ai.provider}"
        )
    for action in ai.action_details if ai is not None else ():
        lines.append(f"action:      {action.action}" + (f" at {action.when}" if action.when else ""))
    for pref in report.training_mining:
        lines.append(
            f"training:    {pref.use} {pref.value}"
            + (f" ({pref.constraint_info})" if pref.constraint_info else "")
        )
    for ing in report.ingredients:
        problems = f" problems: {', '.join(ing.validation_failures)}" if ing.validation_failures else ""
        lines.append(
            f"ingredient:  {ing.relationship} {ing.title} {ing.manifest_id or ''}".rstrip() + problems
        )
    if report.remote_manifest:
        lines.append(f"remote:      {report.remote_manifest.url} (not fetched)")
    if report.codes.failure:
        lines.append("failures:    " + ", ".join(c.code for c in report.codes.failure))
    if report.recovery is not None:
        lines.extend(_human_recovery(report.recovery))
    return "\n".join(lines)


def _human_recovery(recovery: Recovery) -> list[str]:
    lines = [
        f"recovery:    {recovery.status.value}" + (f" ({recovery.method.value})" if recovery.method else "")
    ]
    mark = recovery.watermark
    if mark is not None:
        found = f"id {mark.watermark_id}" if mark.detected else "none found"
        test = "known-id test" if mark.test == "known-id" else "blind read"
        lines.append(f"watermark:   {found} ({test}: statistic {mark.statistic}, threshold {mark.threshold})")
    for match in recovery.matches:
        ai = match.ai
        model = f" model={ai.model_name} version={ai.model_version} provider={ai.provider}" if ai else ""
        distances = f"iscc={match.iscc_distance} pdq={match.pdq_distance}"
        when = f"{match.signed_at:%Y-%m-%dT%H:%M:%SZ}"
        lines.append(f"recovered:   {match.manifest_id} signed {when}{model} ({distances})")
    lines.append(f"             {recovery.statement}")
    return lines


def _recover(
    cfg: Settings, engine: Engine, asset: IO[bytes], report: VerificationReport
) -> VerificationReport:
    from app.recovery import with_recovery
    from app.runtime import open_database
    from app.store.manifests import SqlManifestRepository
    from app.watermark_keyring import WatermarkKeyringFile

    db = open_database(cfg)
    try:
        keys = WatermarkKeyringFile(cfg.resolved_watermark_keyring).load().detection_keys
        return with_recovery(cfg, engine, SqlManifestRepository(db), keys, asset, report)
    finally:
        db.dispose()


# Anything that starts with a scheme and `://` is a URL for the fetcher (which refuses schemes other than
# http and https, saying so); anything else is a path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _local_file(value: str) -> Path:
    """The checks `typer.Argument(exists=True, dir_okay=False, readable=True)` makes, as a usage error."""
    path = Path(value)
    problem = (
        "does not exist"
        if not path.exists()
        else "is a directory"
        if path.is_dir()
        else "is not readable"
        if not os.access(path, os.R_OK)
        else None
    )
    if problem is not None:
        message = f"Invalid value for 'FILE|URL': file '{value}' {problem}."
        error(message, ExitCode.USAGE, diagnostics={"code": "usage", "message": message})
    return path


def verify(
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE|URL",
            help="Any media file, or an http(s) URL to fetch it from (needs HALLMARK_URL_FETCH=true; the "
            "same rules as POST /v1/verify by URL).",
            show_default=False,
        ),
    ],
    manifest: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, readable=True, help="A detached .c2pa manifest store for FILE."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    detailed: Annotated[
        bool,
        typer.Option(
            "--detailed", help="Also print the whole manifest store as the engine read it (ingredients too)."
        ),
    ] = False,
    recovery: Annotated[
        bool,
        typer.Option(
            help="When the file has no intact manifest, look for the watermark and fingerprints in this "
            "service's manifest repository (the data directory's database)."
        ),
    ] = True,
) -> None:
    """Verify a file offline, or one fetched from a URL. Exit 0 trusted, 3 valid but untrusted, 4 invalid,
    5 no credentials, 1 an error (unsupported or malformed file, configuration), 2 usage; for a URL also
    6 refused (fetching off, address or redirect not allowed, file too large) and 7 the fetch failed
    (unreachable, HTTP error, time limit). The exit code follows the file's own credentials; what recovery
    found is in the report."""
    from app.runtime import engine_config, load_trust

    path = None if _URL.match(source) else _local_file(source)
    cfg = settings()
    try:
        engine = Engine(engine_config(cfg, load_trust(cfg)))
        with ExitStack() as stack:
            if path is not None:
                fh: IO[bytes] = stack.enter_context(path.open("rb"))
            else:
                fh = stack.enter_context(SpooledTemporaryFile(max_size=URL_SPOOL_BYTES))
                _fetch(cfg, source, fh)
            report = inspect_asset(engine, fh, manifest.read_bytes() if manifest else None, detailed=detailed)
            if recovery and report.integrity is not Integrity.INTACT:
                report = _recover(cfg, engine, fh, report)
    except (UrlRefusedError, UrlFetchDisabledError, AssetTooLargeError) as exc:
        fail(exc, ExitCode.URL_REFUSED)
    except UrlFetchError as exc:
        fail(exc, ExitCode.URL_FAILED)
    except HallmarkError as exc:
        fail(exc)
    data = asdict(report)
    if not detailed:
        data.pop("manifest_store")
    if as_json:
        typer.echo(json.dumps(jsonable(data), indent=2))
    else:
        typer.echo(_human(report))
        if detailed:
            typer.echo("manifest store:\n" + json.dumps(data["manifest_store"], indent=2))
    raise typer.Exit(VERIFY_EXIT[report.outcome])


# Small files stay in memory, larger ones go to a temporary file (as for POST /v1/verify by URL).
URL_SPOOL_BYTES = 1024 * 1024


def _fetch(cfg: Settings, url: str, sink: IO[bytes]) -> None:
    """Fetch `url` into `sink` with the service's fetcher and settings: the same off-switch, address rules,
    allow-list, redirect, size and time limits as POST /v1/verify by URL."""
    from app.routes.verify_url import fetch_policy
    from app.url_fetch import open_url

    if not cfg.url_fetch:
        raise UrlFetchDisabledError(
            "Fetching files from URLs is switched off; download the file and verify it by path.",
            hint="Set HALLMARK_URL_FETCH=true to let `hallmark verify` (and POST /v1/verify) fetch URLs.",
        )
    try:
        with open_url(url, fetch_policy(cfg)) as remote:
            remote.save(sink)
    except UrlRefusedError as exc:
        if exc.hint is None and exc.details.get("reason") in {"address", "redirect"}:
            exc.hint = (
                "If you trust that host, list it (host or host:port) in HALLMARK_URL_ALLOWLIST; "
                "it is then fetched whatever address it has."
            )
        raise
    sink.seek(0)
