"""watermark: the secret keys of the invisible image watermark (rotate, list; never printed)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from app.cli.common import fail, group, settings
from signing import HallmarkError

watermark_app = group("The invisible watermark's keys: make a new one, list them (secrets are never shown).")


@watermark_app.command("rotate")
def watermark_rotate(
    key_id: Annotated[
        str | None, typer.Option("--id", help="Name for the new key (default: wm-<UTC time>-<random>).")
    ] = None,
) -> None:
    """Make a new random watermark key the one that marks new images. Older keys keep detecting, so
    images marked before stay recoverable. Workers pick the change up within HALLMARK_KEYRING_POLL_SECONDS."""
    from app.watermark_keyring import WatermarkKeyringFile

    file = WatermarkKeyringFile(settings().resolved_watermark_keyring)
    try:
        ring = file.rotate(key_id)
    except HallmarkError as exc:
        fail(exc)
    active = ring.active
    assert active is not None
    typer.echo(f"watermark key {active.key_id} (fingerprint {active.fingerprint}) now marks new images")
    typer.echo(f"keyring: {file.path} ({len(ring.records)} key(s); back it up: a lost key cannot be remade)")


@watermark_app.command("list")
def watermark_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List watermark keys: id, state (active marks and detects; retired detects only), fingerprint."""
    from app.watermark_keyring import WatermarkKeyringFile

    try:
        ring = WatermarkKeyringFile(settings().resolved_watermark_keyring).load()
    except HallmarkError as exc:
        fail(exc)
    rows = [
        {
            "key_id": r.key.key_id,
            "state": r.state.value,
            "fingerprint": r.key.fingerprint,
            "created_at": r.created_at.isoformat(),
            "retired_at": r.retired_at.isoformat() if r.retired_at else None,
        }
        for r in ring.records
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no watermark keys (run `hallmark watermark rotate`)")
    for row in rows:
        typer.echo(f"{row['key_id']}  {row['state']:<8} {row['fingerprint']}  created {row['created_at']}")
