"""audit: the ledger of every signature, key, API-key and configuration event, and its chain."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import error, fail, group, settings
from app.cli.exitcodes import ExitCode
from app.settings import Settings
from signing import (
    AuditFault,
    AuditReport,
    HallmarkError,
    bundle_document,
    inclusion_document,
    inclusion_problem,
    read_bundle,
    verify_ledger,
)

SHOWN_INTENTS = 10  # uncommitted signs listed in the text output (--json lists up to intents.LISTED)

if TYPE_CHECKING:
    from app.store.intents import IntentReport

audit_app = group("The audit ledger: every signature, key event and API-key or configuration change.")


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


# --- the tamper-evident chain ------------------------------------------------------------------------------


def _public_key_pins(paths: list[Path]) -> list[str]:
    """SHA-256 of the key in each PEM file: a public key, or the first (leaf) certificate of a chain."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from signing import public_key_sha256

    pins = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            error(f"cannot read {path}: {exc.strerror}", ExitCode.USAGE)
        certificates = _certificates(data, x509)
        if certificates:
            pins.append(public_key_sha256(certificates[0].public_key()))
        elif b"-----BEGIN PUBLIC KEY-----" in data:
            pins.append(public_key_sha256(serialization.load_pem_public_key(data)))
        else:
            error(f"{path} holds no PEM certificate or public key", ExitCode.USAGE)
    return pins


def _tsa_roots(paths: list[Path] | None) -> list[Any] | None:
    """The TSA trust anchors a checkpoint timestamp must chain to (PEM certificates), or None."""
    from cryptography import x509

    if not paths:
        return None
    roots: list[Any] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            error(f"cannot read {path}: {exc.strerror}", ExitCode.USAGE)
        found = _certificates(data, x509)
        if not found:
            error(f"{path} holds no PEM certificate", ExitCode.USAGE)
        roots += found
    return roots


TSA_ROOT_HELP = (
    "PEM certificate(s) of the timestamp authority's trust anchor; checkpoint timestamps must chain to one. "
    "Without it a timestamp is only checked to cover its checkpoint, and its time is reported as claimed."
)


def _certificates(data: bytes, x509: Any) -> list[Any]:
    try:
        return list(x509.load_pem_x509_certificates(data))
    except ValueError:
        return []


def _keyring_pins(cfg: Settings) -> list[str]:
    """The public keys the service may sign checkpoints with: every key of the keyring (any state), read
    from the keys directory, not from the database being checked."""
    from app.keysource import keyring_file

    pins = [e.public_key_sha256 for e in keyring_file(cfg).load().entries]
    chain = cfg.resolved_signing_chain
    if not pins and chain.is_file():  # the pre-keyring single key
        pins = _public_key_pins([chain])
    return pins


def _print_report(
    report: AuditReport, as_json: bool, *, source: str, intents: IntentReport | None = None
) -> None:
    first = report.first
    if as_json:
        document = {
            "intact": report.intact,
            "source": source,
            "sealed_rows": report.sealed,
            "checkpoints": report.checkpoints,
            "checkpointed_rows": report.checkpointed,
            "unsealed_rows": dict(report.unsealed),
            "timestamped_checkpoints": report.timestamped,
            "latest_timestamp": _timestamp_json(report),
            "first_fault": _fault_json(first) if first else None,
            "faults": [_fault_json(f) for f in report.faults],
        }
        if intents is not None:
            document["uncommitted_signs"] = _intents_json(intents)
        typer.echo(json.dumps(document, indent=2))
        return
    for fault in report.faults:
        typer.echo(f"{fault.kind.value.upper():<10} {fault.message}")
    unsealed = sum(report.unsealed.values())
    detail = ", ".join(f"{k}={v}" for k, v in sorted(report.unsealed.items()))
    typer.echo(
        f"{source}: {report.sealed} rows sealed, {report.checkpointed} under a valid signed checkpoint "
        f"({report.checkpoints} checkpoints); {unsealed} unsealed{f' ({detail})' if detail else ''}"
    )
    if report.latest_timestamp is not None:
        size, when, checked = report.latest_timestamp
        how = "TSA verified against --tsa-root" if checked else "TSA not checked: pass --tsa-root"
        typer.echo(
            f"timestamps: {report.timestamped} checkpoints; rows 1..{size} existed by "
            f"{when:%Y-%m-%dT%H:%M:%SZ} ({how})"
        )
    if intents is not None:
        _print_intents(intents)
    if first is None:
        typer.echo("INTACT: every sealed row is present, unchanged and in order")
    else:
        where = f" {first.row_kind} seq {first.seq}" if first.row_kind is not None else ""
        typer.echo(f"TAMPERED: first fault: {first.kind.value}{where} -- {first.message}")


def _print_intents(intents: IntentReport) -> None:
    """Signs whose intent is still open past its deadline and the grace period: the process died between
    the engine and the ledger commit. A crash, not a fault of the chain: the exit code does not change."""
    from app.store.intents import LISTED, utc_text

    oldest = f" (oldest at {utc_text(intents.oldest)})" if intents.oldest is not None else ""
    typer.echo(
        f"signatures attempted but never committed: {intents.uncommitted}{oldest}; "
        f"{intents.in_progress} in progress"
    )
    for intent in intents.listed[:SHOWN_INTENTS]:
        typer.echo(
            f"  {utc_text(intent.created_at)}  {intent.manifest_id}  key={intent.key_id}  "
            f"api_key={intent.api_key_id or '-'}  request={intent.request_id or '-'}"
        )
    if intents.uncommitted > SHOWN_INTENTS:
        typer.echo(f"  ... and {intents.uncommitted - SHOWN_INTENTS} more (--json lists up to {LISTED})")


def _intents_json(intents: IntentReport) -> dict[str, Any]:
    from app.store.intents import utc_text

    return {
        "count": intents.uncommitted,
        "oldest_at": utc_text(intents.oldest) if intents.oldest is not None else None,
        "in_progress": intents.in_progress,
        "intents": [i.json() for i in intents.listed],
    }


def _timestamp_json(report: AuditReport) -> dict[str, Any] | None:
    if report.latest_timestamp is None:
        return None
    size, when, checked = report.latest_timestamp
    return {"tree_size": size, "time": f"{when:%Y-%m-%dT%H:%M:%SZ}", "tsa_checked": checked}


def _fault_json(fault: AuditFault) -> dict[str, Any]:
    return {"kind": fault.kind.value, "row_kind": fault.row_kind, "seq": fault.seq, "message": fault.message}


@audit_app.command("pg-grants")
def audit_pg_grants(
    role: Annotated[str, typer.Argument(help="The PostgreSQL role the service connects as.")],
) -> None:
    """Print the GRANT statements for the service's PostgreSQL role: append-only on the ledger tables.

    Run them as the schema owner after `hallmark` migrated the database (e.g. `hallmark audit pg-grants
    hallmark_service | psql ...`), then give the service a HALLMARK_DATABASE_URL with that role."""
    from app.store.grants import service_role_grants

    try:
        statements = service_role_grants(role)
    except ValueError as exc:
        error(str(exc), ExitCode.USAGE)
    typer.echo("\n".join(statements))


@audit_app.command("seal")
def audit_seal(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Link every unsealed ledger row into the chain and sign a checkpoint with the active signing key
    (the service does this every HALLMARK_AUDIT_SEAL_INTERVAL_SECONDS)."""
    from app.runtime import build_runtime
    from app.sealing import checkpoint_stamper
    from app.store.audit import Sealer

    cfg = settings()
    try:
        rt = build_runtime(cfg)
        try:
            ctx = rt.sign_ctx
            assert ctx is not None  # build_runtime raised otherwise
            sealer = Sealer(rt.db)
            result = sealer.seal(ctx.signer.key)
            stamper = checkpoint_stamper(rt)
            stamped = stamper.stamp_newest(sealer) if stamper else "off"
            status = sealer.status()
        finally:
            rt.close()
    except HallmarkError as exc:
        fail(exc)
    if as_json:
        summary: dict[str, object] = {"linked": result.linked, "tree_size": result.tree_size}
        summary |= {"checkpoints": result.checkpoints, "unsealed": status.unsealed, "timestamp": stamped}
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(
        f"sealed {result.linked} rows; the chain holds {result.tree_size}; {status.unsealed} unsealed; "
        f"newest checkpoint timestamp: {stamped}"
    )


@audit_app.command("prune-intents")
def audit_prune_intents(
    days: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Delete completed and abandoned intents older than this many days (default: "
            "HALLMARK_AUDIT_INTENT_RETENTION_DAYS; 0 deletes nothing).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete the sign intents past their retention now, in small batches (the service does this at start
    and hourly). Open intents, the signs never committed, are never deleted."""
    from app.runtime import open_database
    from app.sealing import DAY
    from app.store.intents import SqlSignIntents

    cfg = settings()
    retention = cfg.audit_intent_retention_days if days is None else days
    db = open_database(cfg)
    try:
        removed = SqlSignIntents(db).prune(retention * DAY)
    finally:
        db.dispose()
    if as_json:
        typer.echo(json.dumps({"pruned": removed, "retention_days": retention}, indent=2))
        return
    if retention <= 0:
        typer.echo("retention 0: every sign intent is kept")
        return
    typer.echo(f"pruned {removed} completed or abandoned sign intents older than {retention:g} days")


@audit_app.command("verify")
def audit_verify(
    public_key: Annotated[
        list[Path] | None,
        typer.Option(
            help="PEM public key, or certificate chain (its first certificate counts), checkpoints must be "
            "signed with; repeat for several; default: every key of the keyring."
        ),
    ] = None,
    tsa_root: Annotated[list[Path] | None, typer.Option(help=TSA_ROOT_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Walk the audit chain and its signed checkpoints; name the first row altered, removed, inserted or
    reordered. Exit 0 only when the ledger is intact (unsealed rows are reported, not faults); 4 when not.
    Also reports signatures attempted but never committed (a sign intent still open past its deadline and
    HALLMARK_AUDIT_INTENT_GRACE_SECONDS: the process died mid-sign); they do not change the exit code."""
    from app.runtime import open_database
    from app.store.audit import read_ledger
    from app.store.intents import SqlSignIntents

    cfg = settings()
    pins = _public_key_pins(public_key) if public_key else _keyring_pins(cfg)
    db = open_database(cfg)
    try:
        rows, links, checkpoints = read_ledger(db)
        intents = SqlSignIntents(db).report(cfg.audit_intent_grace_seconds)
    finally:
        db.dispose()
    report = verify_ledger(rows, links, checkpoints, trusted_keys=pins, tsa_roots=_tsa_roots(tsa_root))
    _print_report(report, as_json, source="ledger", intents=intents)
    if not report.intact:
        raise typer.Exit(ExitCode.INVALID)


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Argument(help="Where to write the bundle (JSON).")],
) -> None:
    """Write every ledger row, link and signed checkpoint (with its certificate chain) to one JSON file
    that a third party checks offline: `hallmark audit verify-bundle FILE --public-key KEY.pem`."""
    from app.runtime import open_database
    from app.store.audit import read_ledger

    db = open_database(settings())
    try:
        rows, links, checkpoints = read_ledger(db)
    finally:
        db.dispose()
    document = bundle_document(rows, links, checkpoints)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    tmp.replace(out)
    typer.echo(f"wrote {len(rows)} rows, {len(links)} links, {len(checkpoints)} checkpoints to {out}")


@audit_app.command("verify-bundle")
def audit_verify_bundle(
    bundle: Annotated[Path, typer.Argument(help="A file written by `hallmark audit export`.")],
    public_key: Annotated[
        list[Path],
        typer.Option(
            help="The service's signing key: a PEM public key or certificate chain (its first certificate "
            "counts); repeat for several (keys rotated)."
        ),
    ],
    tsa_root: Annotated[list[Path] | None, typer.Option(help=TSA_ROOT_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Verify an exported bundle offline with the service's public key alone (no database, no
    configuration). Exit 0 only when intact, 4 when not."""
    try:
        rows, links, checkpoints = read_bundle(json.loads(bundle.read_text()))
    except (OSError, ValueError) as exc:
        error(f"cannot read the bundle {bundle}: {exc}", ExitCode.USAGE)
    report = verify_ledger(
        rows, links, checkpoints, trusted_keys=_public_key_pins(public_key), tsa_roots=_tsa_roots(tsa_root)
    )
    _print_report(report, as_json, source="bundle")
    if not report.intact:
        raise typer.Exit(ExitCode.INVALID)


@audit_app.command("prove")
def audit_prove(
    manifest_id: Annotated[str, typer.Argument(help="The manifest id (urn:c2pa:...) of a signature.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """An RFC 9162 inclusion proof that this signature's ledger row is in the tree a signed checkpoint
    covers (JSON); check it offline with `hallmark audit verify-proof FILE --public-key KEY.pem`."""
    from app.runtime import open_database
    from app.store.audit import read_ledger

    db = open_database(settings())
    try:
        rows, links, checkpoints = read_ledger(db)
    finally:
        db.dispose()
    row = next(
        (r for r in rows if r.kind == "signature" and r.fields.get("manifest_id") == manifest_id), None
    )
    if row is None:
        error(f"no signature with manifest id {manifest_id} in the ledger", ExitCode.ERROR)
    position = next((lk.position for lk in links if (lk.kind, lk.seq) == (row.kind, row.seq)), None)
    covering = [c for c in checkpoints if position is not None and c.tree_size >= position]
    if position is None or not covering:
        error(
            f"the signature {manifest_id} is not sealed yet",
            ExitCode.ERROR,
            hint="Run `hallmark audit seal` (the service seals every HALLMARK_AUDIT_SEAL_INTERVAL_SECONDS).",
        )
    leaves = [bytes.fromhex(lk.leaf_hash) for lk in links]
    text = json.dumps(inclusion_document(row, position, leaves, covering[-1]), indent=1, sort_keys=True)
    if out is None:
        typer.echo(text)
        return
    out.write_text(text + "\n")
    typer.echo(f"wrote the inclusion proof of {manifest_id} to {out}")


@audit_app.command("verify-proof")
def audit_verify_proof(
    proof: Annotated[Path, typer.Argument(help="A file written by `hallmark audit prove`.")],
    public_key: Annotated[
        list[Path],
        typer.Option(
            help="The service's signing key: a PEM public key or certificate chain; repeat for several."
        ),
    ],
) -> None:
    """Check an inclusion proof offline with the service's public key alone. Exit 0 when it holds, 4 when
    not."""
    try:
        document = json.loads(proof.read_text())
    except (OSError, ValueError) as exc:
        error(f"cannot read the proof {proof}: {exc}", ExitCode.USAGE)
    problem = (
        inclusion_problem(document, _public_key_pins(public_key))
        if isinstance(document, dict)
        else ("not a JSON object")
    )
    if problem is not None:
        typer.echo(f"NOT PROVEN: {problem}")
        raise typer.Exit(ExitCode.INVALID)
    typer.echo(f"PROVEN: {document['row']['kind']} seq {document['row']['seq']} is in the signed tree of "
               f"{document['checkpoint']['tree_size']} rows")  # fmt: skip
