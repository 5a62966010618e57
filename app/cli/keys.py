"""keys: the keyring of signing keys (generate, import, activate, retire, revoke, list, doctor)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import error, fail, group, jsonable, settings
from app.cli.exitcodes import ExitCode
from signing import HallmarkError

keys_app = group("Signing keys: the keyring and its rotation.")

Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show the change without making it.")]


# What a dry run would do, in the present tense: the key events are named in the past ("retired").
_WOULD = {
    "added": "add",
    "chain-imported": "import the chain of",
    "activated": "activate",
    "retired": "retire",
    "revoked": "revoke",
}


def _show_change(outcome: Any) -> None:
    for e in outcome.events:
        move = f"{e.from_state or '-'} -> {e.to_state}" if e.to_state else ""
        reason = f" ({e.reason})" if e.reason else ""
        if outcome.dry_run:
            typer.echo(f"would {_WOULD.get(e.event, e.event)} {e.key_id}: {move}{reason}".rstrip(": "))
        else:
            typer.echo(f"{e.event}: {e.key_id} {move}{reason}".rstrip())
    if not outcome.dry_run:
        typer.echo(f"keyring version {outcome.ring.version}; running workers switch within seconds.")


def _confirm(question: str, yes: bool, dry_run: bool) -> None:
    if yes or dry_run:
        return
    if not typer.confirm(question, default=False):
        error("Nothing changed.")


def _change(question: str, change: Callable[[], Any], yes: bool, dry_run: bool) -> None:
    """Confirm, apply one keyring change and show what it did (or would do)."""
    _confirm(question, yes, dry_run)
    try:
        _show_change(change())
    except HallmarkError as exc:
        fail(exc)


@keys_app.command("init")
def keys_init(
    dev: Annotated[
        bool, typer.Option("--dev", help="Create a development PKI (never for production).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing signing key.")] = False,
) -> None:
    """Create the development PKI, its trust profile and the keyring's first key."""
    from app.bootstrap import init_dev_keys

    if not dev:
        error(
            "only --dev is supported; for a CA-issued key use `hallmark keys generate --alg es256`, "
            "send the CSR to your CA, then `hallmark keys import ID --chain FILE` (see README).",
            ExitCode.USAGE,
        )
    cfg = settings()
    try:
        created = init_dev_keys(cfg, force=force)
    except HallmarkError as exc:
        fail(exc)
    if created:
        typer.echo(f"Created a development PKI: {cfg.resolved_signing_chain}, {cfg.resolved_signing_key}")
    else:
        typer.echo(f"A signing key exists at {cfg.resolved_signing_key}; use --force to replace it.")


@keys_app.command("generate")
def keys_generate(
    alg: Annotated[str, typer.Option(help="es256, es384, ed25519 or ps256.")] = "es256",
    dev: Annotated[bool, typer.Option("--dev", help="Also issue a chain from the development CA.")] = False,
    key_id: Annotated[str | None, typer.Option("--id", help="Key id; default <alg>-<date>-<random>.")] = None,
    organization: Annotated[str | None, typer.Option(help="Subject O; default the provider.")] = None,
    common_name: Annotated[str | None, typer.Option(help="Subject CN.")] = None,
    country: Annotated[str, typer.Option(help="Subject C (two letters).")] = "US",
    pkcs11: Annotated[bool, typer.Option("--pkcs11", help="Make the key inside the PKCS#11 token.")] = False,
    encrypt: Annotated[
        bool,
        typer.Option("--encrypt", help="Encrypt the key file with HALLMARK_SIGNING_KEY_PASSPHRASE_FILE."),
    ] = False,
) -> None:
    """Make a new key (pending) and a CSR for your CA; with --dev also a development chain."""
    from app.keyadmin import generate

    cfg = settings()
    try:
        entry, csr, chain = generate(
            cfg,
            alg=alg,
            dev=dev,
            key_id=key_id,
            organization=organization,
            common_name=common_name,
            country=country,
            pkcs11=pkcs11,
            encrypt=encrypt,
        )
    except HallmarkError as exc:
        fail(exc)
    typer.echo(f"Generated key {entry.id} ({entry.algorithm}), state pending.")
    typer.echo(f"CSR: {csr}")
    if chain:
        typer.echo(f"Development chain: {chain}. Activate it with: hallmark keys activate {entry.id}")
    else:
        typer.echo(f"Send the CSR to your CA, then: hallmark keys import {entry.id} --chain CHAIN.pem")
    typer.echo(entry.id)


@keys_app.command("import")
def keys_import(
    key_id: Annotated[str, typer.Argument(help="The pending key the chain was issued for.")],
    chain: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="PEM chain, leaf first.")],
    dry_run: DryRun = False,
) -> None:
    """Attach a CA-issued chain to a pending key, after checking it matches and the engine accepts it."""
    from app.keyadmin import import_chain

    try:
        _show_change(import_chain(settings(), key_id, chain, dry_run=dry_run))
    except HallmarkError as exc:
        fail(exc)


@keys_app.command("activate")
def keys_activate(
    key_id: Annotated[str, typer.Argument()], yes: Yes = False, dry_run: DryRun = False
) -> None:
    """Make a pending key the one that signs; the previously active key retires."""
    from app.keyadmin import activate

    _change(
        f"Activate key {key_id}? The active key will retire.",
        lambda: activate(settings(), key_id, dry_run=dry_run),
        yes,
        dry_run,
    )


@keys_app.command("retire")
def keys_retire(key_id: Annotated[str, typer.Argument()], yes: Yes = False, dry_run: DryRun = False) -> None:
    """Stop signing with a key (what it signed stays valid). Retiring the active key stops signing."""
    from app.keyadmin import retire

    _change(f"Retire key {key_id}?", lambda: retire(settings(), key_id, dry_run=dry_run), yes, dry_run)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why: key compromise, superseded, ...")],
    yes: Yes = False,
    dry_run: DryRun = False,
) -> None:
    """Mark a key revoked for good (after a compromise also ask your CA to revoke its certificate)."""
    from app.keyadmin import revoke

    _change(
        f"Revoke key {key_id} for good?",
        lambda: revoke(settings(), key_id, reason, dry_run=dry_run),
        yes,
        dry_run,
    )


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The keyring: every key, its state and certificate (never key material)."""
    from app.keyadmin import ensure_keyring
    from app.keysource import keyring_file

    cfg = settings()
    try:
        if keyring_file(cfg).exists() or cfg.resolved_signing_key.exists():
            ensure_keyring(cfg)  # adopts a pre-keyring key file as the first entry
        ring = keyring_file(cfg).load()
    except HallmarkError as exc:
        fail(exc)
    if not ring.entries:
        error(
            "there are no signing keys yet.",
            hint="run `hallmark keys init --dev` (development) or `hallmark keys generate`.",
        )
    rows = [
        {
            "key_id": e.id,
            "state": e.state.value,
            "algorithm": e.algorithm,
            "storage": e.storage,
            "subject": e.subject,
            "issuer": e.issuer,
            "not_after": e.not_after,
            "certificate_sha256": e.certificate_sha256,
            "development": e.development,
            "created_at": e.created_at,
            "activated_at": e.activated_at,
            "retired_at": e.retired_at,
            "revoked_at": e.revoked_at,
            "revocation_reason": e.revocation_reason,
        }
        for e in ring.entries
    ]
    if as_json:
        typer.echo(json.dumps(jsonable(rows), indent=2))
        return
    typer.echo(f"keyring {keyring_file(cfg).path} (version {ring.version})")
    for r in rows:
        typer.echo(
            f"key_id={r['key_id']}  state={r['state']}  algorithm={r['algorithm']}  storage={r['storage']}"
        )
        typer.echo(f"    subject={r['subject'] or '(no chain yet)'}  not_after={r['not_after'] or '-'}")
        typer.echo(f"    certificate_sha256={r['certificate_sha256'] or '-'}")


@keys_app.command("doctor")
def keys_doctor(
    key_id: Annotated[
        str | None, typer.Argument(help="A key in the keyring; default the active key.")
    ] = None,
    chain: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="A PEM chain to check.")
    ] = None,
    key: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Its PKCS#8 key file.")
    ] = None,
    expiring_within: Annotated[
        int, typer.Option(help="Warn when the certificate expires within N days.")
    ] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a credential: does the engine accept it, could a CA on the C2PA trust list issue it?

    Names every broken property with its fix, then signs and verifies a test image. Exit 0 when no finding
    is an ERROR, 1 when one is. What only a production key needs (a certificate a CA on the C2PA trust list
    could issue) is a warning when HALLMARK_ENV=development and an error when HALLMARK_ENV=production."""
    from dataclasses import asdict
    from datetime import UTC, datetime

    from app.keyadmin import doctor_for_entry, doctor_for_files
    from signing import graded_doctor_report, render_doctor_report

    cfg = settings()
    if (chain is None) != (key is None):
        error("give both --chain and --key, or neither.", ExitCode.USAGE)
    try:
        now = datetime.now(UTC)
        if chain is not None and key is not None:
            report = doctor_for_files(cfg, chain, key, now=now, expiring_within_days=expiring_within)
        else:
            report = doctor_for_entry(cfg, key_id, now=now, expiring_within_days=expiring_within)
    except HallmarkError as exc:
        fail(exc)
    report = graded_doctor_report(report, production=cfg.is_production)
    if as_json:
        typer.echo(json.dumps({**jsonable(asdict(report)), "data_dir": str(cfg.data_dir)}, indent=2))
    else:
        typer.echo(f"Data directory: {cfg.data_dir}")
        typer.echo(render_doctor_report(report))
    raise typer.Exit(ExitCode.ERROR if report.has_errors else ExitCode.OK)
