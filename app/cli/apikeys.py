"""apikey: keys for the HTTP service."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from app.cli.common import error, group, settings
from app.cli.exitcodes import ExitCode

apikey_app = group("API keys for the HTTP service.")


# --- API keys ------------------------------------------------------------------------------------------


def _store() -> Any:
    from app.runtime import open_database
    from app.store.apikeys import ApiKeyStore

    return ApiKeyStore(open_database(settings()))


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    scope: Annotated[
        list[str],
        typer.Option(
            help="sign (POST /v1/sign), resolve (the /sbr/v1 API when HALLMARK_SBR_PUBLIC is off) or admin "
            "(no endpoint needs it yet; see README); repeat for several."
        ),
    ],
) -> None:
    """Create an API key and print it once, alone on the last line."""
    try:
        key, token = _store().create(name, set(scope))
    except ValueError as exc:
        error(f"{exc}", ExitCode.USAGE)
    typer.echo(f"Created API key {key.id} ({', '.join(sorted(key.scopes))}). It is shown only now:", err=True)
    typer.echo(token)


@apikey_app.command("list")
def apikey_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List API keys (ids, names, scopes; never the secrets)."""
    from app.policies import describe

    keys = _store().list()
    rows = [
        {
            "id": k.id,
            "name": k.name,
            "scopes": sorted(k.scopes),
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            "policy": k.policy.to_json(),
        }
        for k in keys
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for k, r in zip(keys, rows, strict=True):
        state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
        typer.echo(f"{r['id']}  {r['name']:<24} {','.join(r['scopes']):<12} {state}  {describe(k.policy)}")


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (the part after hm_).")]) -> None:
    """Revoke an API key (an api_key.revoked ledger event); requests with it fail from now on."""
    if not _store().revoke(key_id):
        error(f"no active API key with id {key_id}", ExitCode.ERROR)
    typer.echo(f"Revoked {key_id}")


@apikey_app.command("scope")
def apikey_scope(
    key_id: Annotated[str, typer.Argument(help="The key's id (the part after hm_).")],
    scope: Annotated[list[str], typer.Option(help="The new scopes (replace the old ones); repeat.")],
) -> None:
    """Change an active key's scopes (recorded in the audit ledger as api_key.scoped)."""
    try:
        key = _store().rescope(key_id, set(scope))
    except ValueError as exc:
        error(f"{exc}", ExitCode.USAGE)
    if key is None:
        error(f"no active API key with id {key_id}", ExitCode.ERROR)
    typer.echo(f"{key_id} now has scopes {', '.join(sorted(key.scopes))}")


CLEARABLE = {"source-types": "source_types", "formats": "formats", "rate": "rate_per_minute",
             "quota": "monthly_quota"}  # fmt: skip


@apikey_app.command("policy")
def apikey_policy(
    key_id: Annotated[str, typer.Argument(help="The key's id (the part after hm_).")],
    source_types: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated IPTC digital source types (codes or URIs) this key may sign, e.g. "
            "trainedAlgorithmicMedia,compositeWithTrainedAlgorithmicMedia."
        ),
    ] = None,
    formats: Annotated[
        str | None,
        typer.Option(help="Comma-separated formats this key may sign: media types or extensions (jpg,png)."),
    ] = None,
    rate_per_minute: Annotated[
        int | None, typer.Option(min=1, help="Sign requests per minute (429 + Retry-After beyond).")
    ] = None,
    monthly_quota: Annotated[
        int | None, typer.Option(min=1, help="Signatures per calendar month, UTC (429 beyond).")
    ] = None,
    clear: Annotated[
        list[str] | None,
        typer.Option(help="Lift a limit: source-types, formats, rate, quota or all; repeat for several."),
    ] = None,
) -> None:
    """Limit what an active key may do on /v1/sign (recorded in the audit ledger as api_key.policy).

    Options not given keep their current value; every limit is off until set. Running service processes
    apply a change within HALLMARK_API_KEY_CACHE_SECONDS."""
    from dataclasses import replace

    from app.policies import describe, parse_formats, parse_source_types
    from signing import HallmarkError

    store = _store()
    key = store.get(key_id)
    if key is None or not key.active:
        error(f"no active API key with id {key_id}", ExitCode.ERROR)
    changes: dict[str, Any] = {}
    for name in clear or []:
        if name == "all":
            changes.update(dict.fromkeys(CLEARABLE.values()))
        elif name in CLEARABLE:
            changes[CLEARABLE[name]] = None
        else:
            error(f"--clear takes one of {', '.join([*CLEARABLE, 'all'])}, not {name!r}", ExitCode.USAGE)
    try:
        if source_types is not None:
            changes["source_types"] = parse_source_types(_split(source_types))
        if formats is not None:
            changes["formats"] = parse_formats(_split(formats))
    except HallmarkError as exc:
        error(exc.message, ExitCode.USAGE)
    if rate_per_minute is not None:
        changes["rate_per_minute"] = rate_per_minute
    if monthly_quota is not None:
        changes["monthly_quota"] = monthly_quota
    if not changes:
        error("name a limit to set or --clear one (see --help)", ExitCode.USAGE)
    updated = store.set_policy(key_id, replace(key.policy, **changes))
    if updated is None:
        error(f"no active API key with id {key_id}", ExitCode.ERROR)
    typer.echo(f"{key_id}: {describe(updated.policy)}")


def _split(value: str) -> list[str]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        error("give at least one value (or use --clear)", ExitCode.USAGE)
    return parts
