"""`hallmark`: the operator CLI. Exit codes: 0 ok, 1 a Hallmark error (diagnostics printed), 2 usage;
`verify` also: 2 no or invalid credentials, 3 unsupported file."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from app.settings import Settings
from signing import (
    HallmarkError,
    Outcome,
    OutputMode,
    UnsupportedMediaError,
    VerificationReport,
    inspect_asset,
    sign_asset,
    validate_generation,
)

app = typer.Typer(
    help="Hallmark: label AI-generated media with C2PA Content Credentials, verify media.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Signing keys and certificates.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for the HTTP service.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit ledger of every signature.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(apikey_app, name="apikey")
app.add_typer(audit_app, name="audit")

VERIFY_EXIT = {Outcome.TRUSTED: 0, Outcome.VALID_UNTRUSTED: 0, Outcome.INVALID: 2, Outcome.NONE: 2}


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError: name the bad variable, then stop
        typer.echo(f"error: invalid HALLMARK_* configuration: {exc}", err=True)
        raise typer.Exit(1) from None


def _fail(exc: HallmarkError, code: int = 1) -> NoReturn:
    diag = exc.diagnostics()
    typer.echo(f"error: {diag['message']}", err=True)
    if "hint" in diag:
        typer.echo(f"hint: {diag['hint']}", err=True)
    for key, value in (diag.get("details") or {}).items():
        typer.echo(f"  {key}: {value}", err=True)
    raise typer.Exit(code)


# --- serve ---------------------------------------------------------------------------------------------


@app.command()
def serve(
    dev: Annotated[
        bool, typer.Option("--dev", help="Create dev keys, trust, database and an API key on first start.")
    ] = False,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (one per core is right for c2pa).")] = 1,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from app.bootstrap import init_dev

    settings = _settings()
    if dev:
        try:
            result = init_dev(settings)
        except HallmarkError as exc:
            _fail(exc)
        if result.created_pki:
            typer.echo(
                f"Created a development PKI in {settings.resolved_keys_dir} (trusted as 'hallmark-dev')."
            )
        if result.api_key:
            typer.echo("Your API key (shown once; it has the 'sign' scope):")
            typer.echo(result.api_key)
        else:
            typer.echo(
                "API keys exist already; create another with: hallmark apikey create --name NAME --scope sign"
            )
    # Workers re-read settings from the environment: pass on what the command line decided.
    os.environ["HALLMARK_DATA_DIR"] = str(settings.data_dir)
    typer.echo(f"Serving on http://{host}:{port}  (verify page: POST /v1/verify, docs: /docs)")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=5,
        log_level=settings.log_level,
    )


# --- sign / verify -------------------------------------------------------------------------------------


@app.command()
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
    training_mining: Annotated[str | None, typer.Option(help="allowed, notAllowed or constrained.")] = None,
    title: Annotated[str | None, typer.Option(help="Title recorded in the manifest.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output path; default FILE.signed.EXT.")
    ] = None,
    sidecar: Annotated[bool, typer.Option(help="Write a detached .c2pa manifest store instead.")] = False,
) -> None:
    """Sign a file offline with the configured key (recorded in the ledger like an HTTP sign)."""
    from app.runtime import build_runtime

    settings = _settings()
    try:
        rt = build_runtime(settings)
        info = validate_generation(
            model_name=model_name,
            model_version=model_version,
            provider=provider or settings.default_provider,
            digital_source_type=digital_source_type,
            training_mining=training_mining,
            title=title,
        )
        assert rt.sign_ctx is not None
        mode = OutputMode.SIDECAR if sidecar else OutputMode.EMBEDDED
        target = out or file.with_name(f"{file.stem}.signed{'.c2pa' if sidecar else file.suffix}")
        tmp = target.with_name(target.name + ".partial")
        try:
            with file.open("rb") as src, tmp.open("w+b") as dest:
                signed = sign_asset(rt.sign_ctx, src, dest, info, mode=mode)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)  # a failed sign leaves nothing half-written behind
    except HallmarkError as exc:
        _fail(exc)
    typer.echo(
        json.dumps(
            {
                "output": str(target),
                "manifest_id": signed.manifest_id,
                "media_type": signed.media_type.mime,
                "output_sha256": signed.output_sha256,
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
    lines.append(f"timestamp:   {report.timestamp.status.value}")
    lines.append(f"revocation:  {report.revocation.value}")
    ai = report.ai
    if ai is not None and ai.digital_source_type is not None:
        lines.append(
            f"ai:          {ai.digital_source_type.rsplit('/', 1)[-1]} model={ai.model_name} "
            f"version={ai.model_version} provider={ai.provider}"
        )
    for ing in report.ingredients:
        lines.append(f"ingredient:  {ing.relationship} {ing.title} {ing.manifest_id or ''}".rstrip())
    if report.remote_manifest:
        lines.append(f"remote:      {report.remote_manifest.url} (not fetched)")
    if report.codes.failure:
        lines.append("failures:    " + ", ".join(c.code for c in report.codes.failure))
    return "\n".join(lines)


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Any media file.")],
    manifest: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, readable=True, help="A detached .c2pa manifest store for FILE."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Verify a file offline. Exit 0 intact credentials, 2 none or invalid, 3 unsupported, 1 other error."""
    from app.runtime import load_trust
    from signing import Engine, EngineConfig

    settings = _settings()
    try:
        engine = Engine(EngineConfig(trust=load_trust(settings)))
        with file.open("rb") as fh:
            report = inspect_asset(engine, fh, manifest.read_bytes() if manifest else None)
    except UnsupportedMediaError as exc:
        _fail(exc, 3)
    except HallmarkError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(_jsonable(asdict(report)), indent=2))
    else:
        typer.echo(_human(report))
    raise typer.Exit(VERIFY_EXIT[report.outcome])


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k != "extra"}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return getattr(value, "value", value)


# --- keys ----------------------------------------------------------------------------------------------


@keys_app.command("init")
def keys_init(
    dev: Annotated[
        bool, typer.Option("--dev", help="Create a development PKI (never for production).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing signing key.")] = False,
) -> None:
    """Create signing keys. Only development keys for now: production keys come from your CA."""
    from app.bootstrap import init_dev_keys

    if not dev:
        typer.echo(
            "error: only --dev is supported; configure CA-issued keys with HALLMARK_SIGNING_CHAIN and "
            "HALLMARK_SIGNING_KEY (see README, 'Real keys').",
            err=True,
        )
        raise typer.Exit(2)
    settings = _settings()
    try:
        created = init_dev_keys(settings, force=force)
    except HallmarkError as exc:
        _fail(exc)
    if created:
        typer.echo(
            f"Created a development PKI: {settings.resolved_signing_chain}, {settings.resolved_signing_key}"
        )
    else:
        typer.echo(f"A signing key exists at {settings.resolved_signing_key}; use --force to replace it.")


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the configured signing key and certificate (never key material)."""
    from app.runtime import credential_files
    from signing import PemKeySigner, sha256_fingerprint

    settings = _settings()
    try:
        key = PemKeySigner.from_files(credential_files(settings))
    except HallmarkError as exc:
        _fail(exc)
    cert = key.certificate
    row = {
        "key_id": key.key_id,
        "algorithm": key.algorithm,
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "certificate_sha256": sha256_fingerprint(cert),
        "chain": str(settings.resolved_signing_chain),
        "state": "active",
    }
    typer.echo(json.dumps(row, indent=2) if as_json else "\n".join(f"{k:19} {v}" for k, v in row.items()))


# --- API keys ------------------------------------------------------------------------------------------


def _store() -> Any:
    from app.runtime import open_database
    from app.store.apikeys import ApiKeyStore

    return ApiKeyStore(open_database(_settings()))


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    scope: Annotated[list[str], typer.Option(help="sign and/or admin; repeat for several.")],
) -> None:
    """Create an API key and print it once, alone on the last line."""
    try:
        key, token = _store().create(name, set(scope))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Created API key {key.id} ({', '.join(sorted(key.scopes))}). It is shown only now:", err=True)
    typer.echo(token)


@apikey_app.command("list")
def apikey_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List API keys (ids, names, scopes; never the secrets)."""
    rows = [
        {
            "id": k.id,
            "name": k.name,
            "scopes": sorted(k.scopes),
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in _store().list()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
        typer.echo(f"{r['id']}  {r['name']:<24} {','.join(r['scopes']):<12} {state}")


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (the part after hm_).")]) -> None:
    """Revoke an API key; requests with it fail from now on."""
    if not _store().revoke(key_id):
        typer.echo(f"error: no active API key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Revoked {key_id}")


# --- audit ---------------------------------------------------------------------------------------------


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(min=1, max=10000, help="Newest first.")] = 50,
    manifest_id: Annotated[str | None, typer.Option(help="Only this manifest.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List recorded signatures, newest first."""
    from app.runtime import open_database
    from app.store.ledger import SqlLedger

    entries = SqlLedger(open_database(_settings())).list(limit=limit, manifest_id=manifest_id)
    if as_json:
        typer.echo(
            json.dumps([{**asdict(e), "created_at": e.created_at.isoformat()} for e in entries], indent=2)
        )
        return
    for e in entries:
        typer.echo(
            f"{e.created_at:%Y-%m-%dT%H:%M:%SZ}  {e.manifest_id}  {e.media_type:<16} "
            f"{e.provider}/{e.model_name}@{e.model_version}  key={e.key_id}  api_key={e.api_key_id or '-'}"
        )


def main() -> None:
    try:
        app()
    except HallmarkError as exc:  # pragma: no cover - commands catch their own; this is the safety net
        typer.echo(f"error: {exc.diagnostics()['message']}", err=True)
        sys.exit(1)
