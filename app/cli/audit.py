"""audit: the ledger of every signature."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from app.cli.common import group, settings

audit_app = group("The audit ledger: every signature and every key event.")


# --- audit ---------------------------------------------------------------------------------------------


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(min=1, max=10000, help="Newest first.")] = 50,
    manifest_id: Annotated[str | None, typer.Option(help="Only this manifest.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List recorded signatures, newest first."""
    from app.runtime import open_database
    from app.store.ledger import SqlLedger

    entries = SqlLedger(open_database(settings())).list(limit=limit, manifest_id=manifest_id)
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


@audit_app.command("keys")
def audit_keys(
    limit: Annotated[int, typer.Option(min=1, max=10000, help="Newest first.")] = 50,
    key_id: Annotated[str | None, typer.Option(help="Only this key.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List key events (added, chain imported, activated, retired, revoked), newest first."""
    from app.cli.common import jsonable
    from app.runtime import open_database
    from app.store.ledger import SqlKeyEventLog

    rows = SqlKeyEventLog(open_database(settings())).list(limit=limit, key_id=key_id)
    if as_json:
        typer.echo(json.dumps(jsonable(rows), indent=2))
        return
    for r in rows:
        reason = f"  reason={r['reason']}" if r["reason"] else ""
        typer.echo(
            f"{r['at']:%Y-%m-%dT%H:%M:%SZ}  {r['event']:<15} {r['key_id']}  "
            f"{r['from_state'] or '-'} -> {r['to_state'] or '-'}{reason}"
        )
