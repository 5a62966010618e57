"""What every CLI module shares: settings, errors (text or JSON), JSON conversion, the command group."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from app.cli.exitcodes import ExitCode
from app.settings import Settings
from signing import HallmarkError

JSON_FLAG = "--json"
_json_errors = False  # set for one invocation by HallmarkGroup.main when the command line has --json


def settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError: name the bad variable, then stop
        error(f"invalid HALLMARK_* configuration: {exc}")


def json_requested() -> bool:
    """Whether the running command was given --json: its errors are then JSON on stdout too."""
    return _json_errors


def error(
    message: str,
    code: ExitCode = ExitCode.ERROR,
    *,
    hint: str | None = None,
    diagnostics: dict[str, Any] | None = None,
) -> NoReturn:
    """Print an error (stderr; with --json a JSON object on stdout) and exit with `code`."""
    diag = diagnostics or {"message": message, **({"hint": hint} if hint else {})}
    if json_requested():
        typer.echo(json.dumps({"error": jsonable(diag), "exit_code": int(code)}, indent=2))
        raise typer.Exit(code)
    typer.echo(f"error: {diag['message']}", err=True)
    if "hint" in diag:
        typer.echo(f"hint: {diag['hint']}", err=True)
    for key, value in (diag.get("details") or {}).items():
        typer.echo(f"  {key}: {value}", err=True)
    raise typer.Exit(code)


def fail(exc: HallmarkError, code: ExitCode = ExitCode.ERROR) -> NoReturn:
    error(exc.message, code, diagnostics=exc.diagnostics())


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if k != "extra"}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return getattr(value, "value", value)


class HallmarkGroup(TyperGroup):
    """Help in whole sentences (rich cuts words off at the terminal's edge, click the command list), and with
    --json a usage error is JSON on stdout like every other error."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=sys.maxsize)))  # the first sentence, whole
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        global _json_errors  # noqa: PLW0603 - one flag per invocation, read by `error`
        argv = list(sys.argv[1:] if args is None else args)
        _json_errors = JSON_FLAG in argv
        try:
            if not _json_errors:
                return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
            try:
                code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
            except typer.TyperException as exc:  # the parser's usage errors (exit 2) and file errors (1)
                body = {
                    "error": {"code": "usage", "message": exc.format_message()},
                    "exit_code": exc.exit_code,
                }
                typer.echo(json.dumps(body, indent=2))
                code = exc.exit_code
            except typer.Abort:
                code = ExitCode.ERROR
        finally:
            _json_errors = False
        if not standalone_mode:
            return code
        sys.exit(code or 0)


def group(help_text: str) -> typer.Typer:
    """A command group with the CLI's conventions (plain help, JSON usage errors, help when called bare)."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None, cls=HallmarkGroup)
