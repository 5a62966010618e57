"""What every CLI module shares: settings, error printing, JSON conversion."""

from __future__ import annotations

from typing import Any, NoReturn

import typer

from app.settings import Settings
from signing import HallmarkError


def settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError: name the bad variable, then stop
        typer.echo(f"error: invalid HALLMARK_* configuration: {exc}", err=True)
        raise typer.Exit(1) from None


def fail(exc: HallmarkError, code: int = 1) -> NoReturn:
    diag = exc.diagnostics()
    typer.echo(f"error: {diag['message']}", err=True)
    if "hint" in diag:
        typer.echo(f"hint: {diag['hint']}", err=True)
    for key, value in (diag.get("details") or {}).items():
        typer.echo(f"  {key}: {value}", err=True)
    raise typer.Exit(code)


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if k != "extra"}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return getattr(value, "value", value)
