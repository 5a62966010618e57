"""trust: trust profiles (pinned bundles of trust anchors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import error, fail, group, settings
from app.cli.exitcodes import ExitCode
from signing import HallmarkError, TrustProfile

if TYPE_CHECKING:
    from app.trust import DefaultSource, Kind, TrustStore

trust_app = group("Trust profiles: whose signatures and timestamps verify as trusted.")

RESTART = (
    "Running Hallmark services load the change within HALLMARK_TRUST_POLL_SECONDS (default 5 s), "
    "in every worker."
)
KIND_HELP = "Which anchors the bundle holds: signers (claim signers' CAs) or tsa (timestamp authorities)."


def _store() -> TrustStore:
    from app.trust import TrustStore

    return TrustStore(settings().resolved_trust_dir)


def _record(kind: str, name: str, profile: TrustProfile | None) -> None:
    """Append the change to the audit ledger (trust.added / trust.updated / trust.removed)."""
    from app.runtime import open_database
    from app.store.audit import record_event

    data: dict[str, Any] = {}
    if profile is not None:
        data = {
            "source": profile.source, "sha256": profile.sha256, "version": profile.version,
            "anchor_count": profile.anchor_count, "tsa_anchor_count": profile.tsa_anchor_count,
            "allowed_ekus": list(profile.allowed_ekus), "development": profile.development,
        }  # fmt: skip
    db = open_database(settings())
    try:
        record_event(db, kind, name, data, failure=f"The trust profile '{name}' changed but the audit ledger "
                     "could not record it.")  # fmt: skip
    except HallmarkError as exc:
        fail(exc)
    finally:
        db.dispose()


def _kind(value: str | None) -> Kind | None:
    if value not in (None, "signers", "tsa"):
        error("--kind must be 'signers' or 'tsa'.", ExitCode.USAGE)
    return None if value is None else "signers" if value == "signers" else "tsa"


def _summary(profile: TrustProfile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "layout": profile.layout,
        "version": profile.version,
        "date": profile.date,
        "development": profile.development,
        "signer_anchors": profile.anchor_count,
        "tsa_anchors": profile.tsa_anchor_count,
        "allowed_ekus": list(profile.allowed_ekus),
        "source": profile.source,
        "sha256": profile.sha256,
    }


def _anchors(pem: str) -> list[dict[str, Any]]:
    from cryptography import x509

    from signing import sha256_fingerprint

    if not pem:
        return []
    return [
        {
            "subject": cert.subject.rfc4514_string(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "sha256": sha256_fingerprint(cert),
        }
        for cert in x509.load_pem_x509_certificates(pem.encode("ascii"))
    ]


def _echo_profile(row: dict[str, Any]) -> None:
    for key, value in row.items():
        shown = ", ".join(str(v) for v in value) or "-" if isinstance(value, list) else value
        typer.echo(f"{key:15} {'-' if shown is None else shown}")


@trust_app.command("list")
def trust_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the trust profiles: signer and TSA anchor counts, version, development flag."""
    rows: list[dict[str, Any]] = []
    for name, entry in _store().entries():
        if isinstance(entry, HallmarkError):
            rows.append({"name": name, "error": entry.message})
        else:
            rows.append(_summary(entry))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("No trust profiles: no signer can be reported trusted. See `hallmark trust add --help`.")
        return
    for row in rows:
        if "error" in row:
            typer.echo(f"{row['name']:20} BROKEN: {row['error']}")
            continue
        flags = " (development)" if row["development"] else ""
        typer.echo(
            f"{row['name']:20} signers={row['signer_anchors']:<3} tsa={row['tsa_anchors']:<3} "
            f"version={row['version'] or '-'} sha256={row['sha256'][:16]}{flags}"
        )


@trust_app.command("show")
def trust_show(
    name: Annotated[str, typer.Argument(help="Profile name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one profile: where it came from, its hash, allowed EKUs and every anchor."""
    store = _store()
    try:
        profile = store.get(name)
    except HallmarkError as exc:
        fail(exc)
    row = _summary(profile)
    doc = store.document(name)
    if doc and isinstance(doc.get("replaces"), dict):
        row["replaces"] = doc["replaces"]
    signers, tsa = _anchors(profile.anchors_pem), _anchors(profile.tsa_anchors_pem)
    if as_json:
        typer.echo(json.dumps({**row, "signer_anchor_list": signers, "tsa_anchor_list": tsa}, indent=2))
        return
    _echo_profile(row)
    for title, items in (("signer anchors", signers), ("TSA anchors", tsa)):
        if items:
            typer.echo(f"{title}:")
            for item in items:
                typer.echo(
                    f"  {item['subject']}  (until {item['not_after'][:10]}, sha256 {item['sha256'][:16]})"
                )


@trust_app.command("add")
def trust_add(
    name: Annotated[str, typer.Argument(help="Profile name (lower case, digits, '.', '_', '-').")],
    file: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="PEM bundle of trust anchors."),
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help=KIND_HELP)] = None,
    tsa_anchors: Annotated[
        Path | None,
        typer.Option(
            "--tsa-anchors", exists=True, dir_okay=False, readable=True, help="PEM bundle of TSA anchors."
        ),
    ] = None,
    eku: Annotated[
        list[str] | None,
        typer.Option("--eku", help="Extended key usage OID signers may carry besides the defaults (repeat)."),
    ] = None,
    version: Annotated[str | None, typer.Option("--version", help="Version label of the bundle.")] = None,
    sha256: Annotated[
        str | None, typer.Option("--sha256", help="Refuse FILE unless it has this SHA-256.")
    ] = None,
    development: Annotated[
        bool, typer.Option("--development", help="Mark the profile as development (production refuses it).")
    ] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an existing profile.")] = False,
) -> None:
    """Add a profile from local PEM bundles. `trust add NAME FILE` makes a signer-anchors profile.

    For the names c2pa and c2pa-tsa, the kind and allowed EKUs default to those of the C2PA lists."""
    from app.trust import DEFAULT_SOURCES, Bundle, check_sha256, fetch_bundle

    default = DEFAULT_SOURCES.get(name)
    which = _kind(kind) or (default.kind if default else "signers")
    ekus = tuple(eku) if eku else (default.allowed_ekus if default else ())
    if file is None and tsa_anchors is None:
        error("give FILE, --tsa-anchors FILE, or both.", ExitCode.USAGE)
    if file is not None and tsa_anchors is not None and which == "tsa":
        error("with --tsa-anchors, FILE holds signer anchors (drop --kind tsa).", ExitCode.USAGE)
    try:
        main: Bundle | None = fetch_bundle(str(file)) if file is not None else None
        if main is not None and sha256:
            check_sha256(main, sha256)
        extra = fetch_bundle(str(tsa_anchors)) if tsa_anchors is not None else None
        signers = main if which == "signers" else None
        tsa = extra if extra is not None else (main if which == "tsa" else None)
        profile = _store().add(
            name,
            anchors=signers,
            tsa_anchors=tsa,
            allowed_ekus=ekus,
            version=version,
            development=development,
            replace=replace,
        )
    except HallmarkError as exc:
        fail(exc)
    _record("trust.added", profile.name, profile)
    dev = " It is a DEVELOPMENT profile: production refuses it." if profile.development else ""
    typer.echo(
        f"Added trust profile '{profile.name}': {profile.anchor_count} signer anchor(s), "
        f"{profile.tsa_anchor_count} TSA anchor(s), sha256 {profile.sha256}.{dev}"
    )
    typer.echo(RESTART)


@trust_app.command("update")
def trust_update(
    name: Annotated[str, typer.Argument(help="Profile name; c2pa and c2pa-tsa have a default source.")],
    sha256: Annotated[
        str,
        typer.Option("--sha256", help="The SHA-256 the bundle must have (from its publisher). Required."),
    ],
    source: Annotated[
        str | None,
        typer.Option("--from", help="A local file or an https URL. Default: the profile's source."),
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help=KIND_HELP)] = None,
    version: Annotated[str | None, typer.Option("--version", help="Version label of the new bundle.")] = None,
) -> None:
    """Install a new version of a profile (created if missing) from a file or URL, pinned by SHA-256.

    Nothing is fetched at verify time: this command is the only one that downloads."""
    from app.trust import DEFAULT_SOURCES, fetch_bundle

    store = _store()
    which = _kind(kind)
    origin = source or _default_source(store, name, DEFAULT_SOURCES)
    try:
        bundle = fetch_bundle(origin)
        profile = store.update(name, bundle, expected_sha256=sha256, kind=which, version=version)
    except HallmarkError as exc:
        fail(exc)
    _record("trust.updated", profile.name, profile)
    typer.echo(
        f"Updated trust profile '{profile.name}' to version {profile.version}: {profile.anchor_count} signer "
        f"anchor(s), {profile.tsa_anchor_count} TSA anchor(s), sha256 {profile.sha256}."
    )
    typer.echo(RESTART)


def _default_source(store: TrustStore, name: str, defaults: dict[str, DefaultSource]) -> str:
    if name in defaults:
        return defaults[name].url
    doc = store.document(name)
    recorded = doc.get("source") if doc else None
    if not (isinstance(recorded, str) and recorded.lower().startswith("https://")):
        error(
            f"profile {name!r} has no https source to update from; give --from FILE_OR_URL.", ExitCode.USAGE
        )
    return str(recorded)


@trust_app.command("remove")
def trust_remove(name: Annotated[str, typer.Argument(help="Profile name.")]) -> None:
    """Remove a profile. Signers it trusted verify as valid but untrusted once the service reloads trust."""
    store = _store()
    try:
        store.remove(name)
    except HallmarkError as exc:
        fail(exc)
    _record("trust.removed", name, None)
    typer.echo(f"Removed trust profile '{name}'.")
    typer.echo(RESTART)
