"""keys: the signing credential."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from app.cli.common import fail, settings
from signing import HallmarkError

keys_app = typer.Typer(help="Signing keys and certificates.", no_args_is_help=True)


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
    cfg = settings()
    try:
        created = init_dev_keys(cfg, force=force)
    except HallmarkError as exc:
        fail(exc)
    if created:
        typer.echo(f"Created a development PKI: {cfg.resolved_signing_chain}, {cfg.resolved_signing_key}")
    else:
        typer.echo(f"A signing key exists at {cfg.resolved_signing_key}; use --force to replace it.")


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the configured signing key and certificate (never key material)."""
    from app.runtime import credential_files
    from signing import PemKeySigner, sha256_fingerprint

    cfg = settings()
    try:
        key = PemKeySigner.from_files(credential_files(cfg))
    except HallmarkError as exc:
        fail(exc)
    cert = key.certificate
    row = {
        "key_id": key.key_id,
        "algorithm": key.algorithm,
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "certificate_sha256": sha256_fingerprint(cert),
        "chain": str(cfg.resolved_signing_chain),
        "state": "active",
    }
    typer.echo(json.dumps(row, indent=2) if as_json else "\n".join(f"{k:19} {v}" for k, v in row.items()))
