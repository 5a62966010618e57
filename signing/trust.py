"""Trust profiles: named, pinned bundles of trust anchors, turned into engine settings.

A profile is one of two things in the trust directory:

- `<name>.pem`: a plain PEM bundle of signer anchors (the original layout; `keys init --dev` writes one);
- `<name>/profile.json` + `anchors.pem` (signer anchors) and/or `tsa-anchors.pem` (timestamp authority
  anchors): a pinned, versioned bundle. `profile.json` records the schema version, name, version, date,
  source, the SHA-256 of every anchors file (checked at every load), the development flag and the allowed
  extended key usages. The operator side (`hallmark trust ...`) writes these; the core only reads them.

How the engine (c2pa-rs 0.91.3) is told, measured rather than assumed (see `engine_trust_settings`):
every verifying context gets every profile's anchors in `trust.anchors`, each certificate once, with a
`trust_uri` naming its profile(s), so the engine's own statuses say which profile made a signer
(`trustListUri`, "found in [uri]") or a timestamp ("trust list: uri") trusted. The engine keeps ONE anchor
store for both purposes whatever the `trust_kind`; the report therefore never counts a TSA-only list for a
signer. Allowed EKUs work only as the top-level `trust.trust_config` (OIDs one per line; commas are
silently ignored; a per-anchor-set `trust_config` is ignored), so the engine gets the union of all
profiles' EKUs.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from signing.certs import is_development, load_chain
from signing.errors import ConfigError, HallmarkError

PROFILE_SCHEMA = 1
PROFILE_FILE = "profile.json"
ANCHORS_FILE = "anchors.pem"
TSA_ANCHORS_FILE = "tsa-anchors.pem"
MAX_PROFILE_JSON = 64 * 1024

# An EKU OID in dotted-decimal notation, as the engine's `trust_config` expects it.
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
# The URIs Hallmark gives the engine's anchor sets; the profile name is percent-encoded.
_URI_PREFIX = "hallmark-trust:"
_URI = re.compile(r"hallmark-trust:(signers|tsa|shared)/([A-Za-z0-9._~%-]+)(?:/([A-Za-z0-9._~%-]+))?")


@dataclass(frozen=True)
class TrustProfile:
    name: str
    anchors_pem: str  # signer anchors: zero or more PEM certificates
    development: bool  # anchors of the development PKI: never a production profile
    source: str
    sha256: str  # of the source bundle the profile was made from
    anchor_count: int
    tsa_anchors_pem: str = ""  # timestamp authority anchors: zero or more PEM certificates
    tsa_anchor_count: int = 0
    allowed_ekus: tuple[str, ...] = ()  # EKU OIDs accepted besides the engine's defaults
    version: str | None = None
    date: str | None = None
    layout: str = "pem"  # "pem": a plain <name>.pem file; "profile": a <name>/ directory with profile.json


def profile_from_pem(name: str, pem: bytes, *, source: str) -> TrustProfile:
    """A signer-anchors profile from one PEM bundle (the `<name>.pem` layout)."""
    certs = _certificates(name, pem, source)
    return TrustProfile(
        name=name,
        anchors_pem=_reserialise(certs),
        development=any(is_development(c) for c in certs),
        source=source,
        sha256=hashlib.sha256(pem).hexdigest(),
        anchor_count=len(certs),
    )


def _certificates(name: str, pem: bytes, source: str) -> list[x509.Certificate]:
    try:
        return load_chain(pem, source=source)
    except HallmarkError as exc:
        raise ConfigError(f"Trust profile {name!r}: {exc.message}") from None


def _reserialise(certs: list[x509.Certificate]) -> str:
    # Published bundles interleave (non-ASCII) commentary with the certificates: the engine gets PEM only.
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


def valid_eku(oid: str) -> bool:
    return bool(_OID.match(oid))


# --- a profile bundle, as the adapter read it from the trust directory ---------------------------------


def profile_from_bundle(
    name: str, profile_json: bytes, files: Mapping[str, bytes], *, location: str
) -> TrustProfile:
    """The profile a bundle describes: `profile_json` and the anchors files it names (`files`, by file
    name; absent ones are missing). Every recorded SHA-256 must match. `location` names the bundle in
    messages and is its default source."""
    doc = _profile_doc(name, profile_json, location)
    if doc.get("schema") != PROFILE_SCHEMA:
        raise ConfigError(
            f"Trust profile {name!r}: unsupported profile.json schema {doc.get('schema')!r}.",
            hint=f"This Hallmark reads schema {PROFILE_SCHEMA}; re-create the profile with `hallmark trust`.",
        )
    if doc.get("name") != name:
        raise ConfigError(
            f"Trust profile {name!r}: profile.json names {doc.get('name')!r}, not its directory's name."
        )
    signers = _anchor_file(name, location, files, doc, "anchors", ANCHORS_FILE)
    tsa = _anchor_file(name, location, files, doc, "tsa_anchors", TSA_ANCHORS_FILE)
    if not signers and not tsa:
        raise ConfigError(f"Trust profile {name!r}: profile.json lists no anchors file.")
    ekus = doc.get("allowed_ekus") or []
    if not isinstance(ekus, list) or not all(isinstance(e, str) and valid_eku(e) for e in ekus):
        raise ConfigError(
            f"Trust profile {name!r}: allowed_ekus must be a list of dotted OIDs, e.g. 1.3.6.1.4.1.62558.2.1."
        )
    signer_certs = signers[1] if signers else []
    tsa_certs = tsa[1] if tsa else []
    flagged = doc.get("development")
    if not isinstance(flagged, bool):
        raise ConfigError(f"Trust profile {name!r}: profile.json needs a boolean 'development'.")
    primary = signers or tsa
    assert primary is not None
    return TrustProfile(
        name=name,
        anchors_pem=_reserialise(signer_certs),
        # A development anchor taints the profile whatever profile.json says; the flag can only add.
        development=flagged or any(is_development(c) for c in (*signer_certs, *tsa_certs)),
        source=_text(doc.get("source")) or location,
        sha256=_text(doc.get("sha256")) or primary[0],
        anchor_count=len(signer_certs),
        tsa_anchors_pem=_reserialise(tsa_certs),
        tsa_anchor_count=len(tsa_certs),
        allowed_ekus=tuple(dict.fromkeys(ekus)),
        version=_text(doc.get("version")),
        date=_text(doc.get("date")),
        layout="profile",
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _profile_doc(name: str, raw: bytes, location: str) -> dict[str, Any]:
    if len(raw) > MAX_PROFILE_JSON:
        raise ConfigError(f"Trust profile {name!r}: {location}/{PROFILE_FILE} is too large to be a profile.")
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ConfigError(f"Trust profile {name!r}: {location}/{PROFILE_FILE} is not a JSON object.")
    return doc


def _anchor_file(
    name: str, location: str, files: Mapping[str, bytes], doc: Mapping[str, Any], key: str, expected_file: str
) -> tuple[str, list[x509.Certificate]] | None:
    """(sha256, certificates) of the anchors file `doc[key]` describes, or None when there is none."""
    entry = doc.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dict) or entry.get("file") != expected_file:
        raise ConfigError(f"Trust profile {name!r}: profile.json's {key!r} must name {expected_file}.")
    data = files.get(expected_file)
    if data is None:
        raise ConfigError(f"Trust profile {name!r}: {location}/{expected_file} is missing.")
    digest = hashlib.sha256(data).hexdigest()
    if entry.get("sha256") != digest:
        raise ConfigError(
            f"Trust profile {name!r}: {expected_file} does not match the SHA-256 recorded in profile.json.",
            hint="The file was changed by hand or damaged; re-install the profile with `hallmark trust`.",
            details={"recorded": str(entry.get("sha256")), "actual": digest},
        )
    return digest, _certificates(name, data, f"{location}/{expected_file}")


# --- engine settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustListRef:
    """Which profiles an engine trust list (a Hallmark `trust_uri`) stands for."""

    signer_profile: str | None  # the anchors are signer anchors of this profile
    tsa_profile: str | None  # the anchors are TSA anchors of this profile


def trust_list_uri(signer_profile: str | None, tsa_profile: str | None) -> str:
    """`signers/P`, `tsa/Q`, or `shared/P/Q` for anchors that P trusts for signers and Q for timestamps."""

    def part(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    if signer_profile is not None and tsa_profile is not None:
        return f"{_URI_PREFIX}shared/{part(signer_profile)}/{part(tsa_profile)}"
    if signer_profile is not None:
        return f"{_URI_PREFIX}signers/{part(signer_profile)}"
    if tsa_profile is not None:
        return f"{_URI_PREFIX}tsa/{part(tsa_profile)}"
    raise ValueError("a trust list stands for a signer profile, a TSA profile or both")


def parse_trust_list_uri(text: str) -> TrustListRef | None:
    """The first Hallmark trust-list URI in `text` (a URI or an engine message), or None."""
    match = _URI.search(text)
    if match is None:
        return None
    kind, first, second = match.group(1), urllib.parse.unquote(match.group(2)), match.group(3)
    if kind == "shared":
        return TrustListRef(first, urllib.parse.unquote(second)) if second else None
    return TrustListRef(first, None) if kind == "signers" else TrustListRef(None, first)


_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", re.DOTALL)


def _blocks(pem: str) -> list[str]:
    """The certificates of a re-serialised bundle, one PEM block each (identical certificates, identical
    text)."""
    return _PEM_BLOCK.findall(pem)


def engine_trust_settings(profiles: tuple[TrustProfile, ...], anchors: str | None) -> dict[str, Any]:
    """The engine's `trust` settings for one context; empty when the context needs none.

    `anchors` is what the engine wrapper asks a context to trust: None for a fresh signing context (no
    anchors: it has nothing to verify against them), otherwise one profile's `anchors_pem` or all of them.
    Every context that verifies gets EVERY profile's anchors, each certificate once, under a `trust_uri`
    naming its profiles, and the report takes the profile from the URI the engine quotes. Measured on
    c2pa-rs 0.91.3, per-profile contexts cannot be made right: the engine keeps one anchor store for
    signers and timestamps whatever the `trust_kind`, and an anchor listed twice is reported under one of
    its lists (the TSA list won). So a context holding profile A and the TSA lists would call a signer
    under a root that the C2PA trust list and the C2PA TSA list share (16 roots do) "Trusted" through the
    TSA list, and the first-trusting-context rule would stop there. With every anchor in every context,
    each certificate sits under `signers/P`, `tsa/Q`, or `shared/P/Q` (P trusts it for signers, Q for
    timestamps); the report counts P for a signer and Q (else P) for a timestamp, never a TSA-only list
    for a signer.
    """
    trust: dict[str, Any] = {}
    ekus = sorted({eku for p in profiles for eku in p.allowed_ekus})
    if ekus:
        # Also on the signing side: a claim-signing-only certificate does not sign without it.
        trust["trust_config"] = "\n".join(ekus) + "\n"
    if anchors is None:
        return trust
    tsa_owner: dict[str, str] = {}
    for profile in profiles:
        for block in _blocks(profile.tsa_anchors_pem):
            tsa_owner.setdefault(block, profile.name)
    groups: dict[tuple[str, str], list[str]] = {}  # (kind, uri) -> certificates, in a stable order
    placed: set[str] = set()
    for profile in profiles:
        for block in _blocks(profile.anchors_pem):
            if block not in placed:
                placed.add(block)
                uri = trust_list_uri(profile.name, tsa_owner.get(block))
                groups.setdefault(("manifest", uri), []).append(block)
    for block, owner in tsa_owner.items():
        if block not in placed:
            placed.add(block)
            groups.setdefault(("tsa", trust_list_uri(None, owner)), []).append(block)
    sets: list[dict[str, Any]] = [
        {"trust_anchors": "".join(blocks), "trust_kind": kind, "trust_uri": uri}
        for (kind, uri), blocks in groups.items()
    ]
    known = {p.anchors_pem for p in profiles} | {"".join(p.anchors_pem for p in profiles)}
    if anchors and anchors not in known:  # anchors that belong to no profile (a caller's own)
        sets.insert(0, {"trust_anchors": anchors, "trust_kind": "manifest"})
    if sets:
        trust["anchors"] = sets
    return trust
