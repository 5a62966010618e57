"""`hallmark`: the operator CLI. Exit codes: the table in app/cli/exitcodes.py (the README lists it)."""

from __future__ import annotations

import sys
from importlib.metadata import version as package_version
from typing import Annotated

import typer

from app.cli import media
from app.cli.apikeys import apikey_app
from app.cli.audit import audit_app
from app.cli.common import HallmarkGroup, settings
from app.cli.exitcodes import ExitCode
from app.cli.keys import keys_app
from app.cli.trust import trust_app
from app.cli.watermark import watermark_app
from signing import HallmarkError

app = typer.Typer(
    help="Hallmark: label AI-generated media with C2PA Content Credentials, verify media.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=HallmarkGroup,
)
media.register(app)
app.add_typer(keys_app, name="keys")
app.add_typer(apikey_app, name="apikey")
app.add_typer(audit_app, name="audit")
app.add_typer(trust_app, name="trust")
app.add_typer(watermark_app, name="watermark")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"hallmark {package_version('hallmark')}")
        typer.echo(f"data directory: {settings().data_dir}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the version and the data directory in use, then exit.",
        ),
    ] = False,
) -> None:
    """Hallmark: label AI-generated media with C2PA Content Credentials, verify media."""


def main() -> None:
    try:
        app()
    except HallmarkError as exc:  # pragma: no cover - commands catch their own; this is the safety net
        typer.echo(f"error: {exc.diagnostics()['message']}", err=True)
        sys.exit(ExitCode.ERROR)
