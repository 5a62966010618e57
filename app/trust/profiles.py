"""Profile bookkeeping: profile names, the profile.json a new version gets, and what an installed profile
holds (its bundles, EKUs, flag), read from its files so that an update can repair a broken profile."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.trust.bundles import Bundle
from app.trust.sources import Kind
from signing import (
    C2PA_CLAIM_SIGNING_EKU,
    TRUST_ANCHORS_FILE,
    TRUST_PROFILE_SCHEMA,
    TRUST_TSA_ANCHORS_FILE,
    ConfigError,
    profile_from_pem,
    valid_eku,
)

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_FILES: tuple[tuple[Kind, str, str], ...] = (
    ("signers", "anchors", TRUST_ANCHORS_FILE),
    ("tsa", "tsa_anchors", TRUST_TSA_ANCHORS_FILE),
)


def check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not a trust profile name.",
            hint="Use 1-64 characters: lower-case letters, digits, '.', '_' and '-', starting with a letter "
            "or digit.",
        )


def profile_document(
    name: str,
    *,
    anchors: Bundle | None,
    tsa_anchors: Bundle | None,
    allowed_ekus: tuple[str, ...],
    version: str | None,
    development: bool,
    replaces: dict[str, Any] | None,
) -> dict[str, Any]:
    """The profile.json of a new profile version. Parses the bundles first: a bad bundle fails with the
    core's message naming the profile."""
    ekus = tuple(dict.fromkeys(allowed_ekus))
    for eku in ekus:
        if not valid_eku(eku):
            raise ConfigError(
                f"{eku!r} is not an EKU OID in dotted form (e.g. {C2PA_CLAIM_SIGNING_EKU.dotted_string})."
            )
    for bundle in (anchors, tsa_anchors):
        if bundle is not None:
            profile_from_pem(name, bundle.data, source=bundle.source)
    primary = anchors or tsa_anchors
    if primary is None:
        raise ConfigError("A trust profile needs signer anchors, TSA anchors or both.")
    doc: dict[str, Any] = {
        "schema": TRUST_PROFILE_SCHEMA,
        "name": name,
        "version": version or primary.sha256[:12],
        "date": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "source": primary.source,
        "sha256": primary.sha256,
        "development": development,
        "allowed_ekus": list(ekus),
        "anchors": _entry(name, TRUST_ANCHORS_FILE, anchors),
        "tsa_anchors": _entry(name, TRUST_TSA_ANCHORS_FILE, tsa_anchors),
    }
    if replaces is not None:
        doc["replaces"] = replaces
    return doc


def _entry(name: str, file: str, bundle: Bundle | None) -> dict[str, Any] | None:
    if bundle is None:
        return None
    count = profile_from_pem(name, bundle.data, source=bundle.source).anchor_count
    return {"file": file, "source": bundle.source, "sha256": bundle.sha256, "count": count}


def installed_bundles(directory: Path, name: str, doc: dict[str, Any] | None) -> dict[Kind, Bundle | None]:
    """The bundles profile `name` holds now: a plain .pem profile (`doc` None) holds signer anchors."""
    if doc is None:
        path = directory / f"{name}.pem"
        return {"signers": Bundle(path.read_bytes(), str(path)), "tsa": None}
    out: dict[Kind, Bundle | None] = {"signers": None, "tsa": None}
    for kind, key, file in _FILES:
        entry = doc.get(key)
        path = directory / name / file
        if isinstance(entry, dict) and path.is_file():
            source = entry.get("source")
            out[kind] = Bundle(path.read_bytes(), source if isinstance(source, str) else str(path))
    return out


def single_kind(name: str, bundles: dict[Kind, Bundle | None]) -> Kind | None:
    """The one kind of anchors an existing profile has (None when it has none)."""
    present = [kind for kind, bundle in bundles.items() if bundle is not None]
    if len(present) > 1:
        raise ConfigError(
            f"Trust profile {name!r} has signer and TSA anchors: say which to update with --kind."
        )
    return present[0] if present else None
