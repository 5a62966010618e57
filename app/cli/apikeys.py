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
