"""trust: trust profiles (pinned bundles of trust anchors)."""

from __future__ import annotations

import typer

trust_app = typer.Typer(
    help="Trust profiles: whose signatures and timestamps verify as trusted.", no_args_is_help=True
)
