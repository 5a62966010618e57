"""`hallmark`: the operator CLI. Exit codes: 0 ok, 1 a Hallmark error (diagnostics printed), 2 usage;
`verify` also: 2 no or invalid credentials, 3 unsupported file."""

from __future__ import annotations

import sys

import typer

from app.cli import media
from app.cli.apikeys import apikey_app
from app.cli.audit import audit_app
from app.cli.keys import keys_app
from app.cli.trust import trust_app
from signing import HallmarkError

app = typer.Typer(
    help="Hallmark: label AI-generated media with C2PA Content Credentials, verify media.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
media.register(app)
app.add_typer(keys_app, name="keys")
app.add_typer(apikey_app, name="apikey")
app.add_typer(audit_app, name="audit")
app.add_typer(trust_app, name="trust")


def main() -> None:
    try:
        app()
    except HallmarkError as exc:  # pragma: no cover - commands catch their own; this is the safety net
        typer.echo(f"error: {exc.diagnostics()['message']}", err=True)
        sys.exit(1)
