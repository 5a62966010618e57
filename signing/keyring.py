"""The keyring: every signing key Hallmark knows, its state, and the rules for moving between states.

States: pending -> active -> retired -> revoked (and pending -> revoked). Exactly one key is active at a
time; activating a key retires the one before it. The file is JSON with a schema number and a version that
grows with every write; running workers watch it and switch keys without a restart. This module is the
pure part (the entries, the transitions, the file's encoding); `app.keyring_file` reads and writes the file
atomically under a lock. No key material is ever stored here: only where the key lives.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from signing.errors import KeyNotFoundError, KeyringError

SCHEMA = 1
# Key ids name folders and appear in headers and the ledger: letters, digits, '.', '_', '-' only.
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_key_id(key_id: str) -> str:
    if not _KEY_ID.fullmatch(key_id) or ".." in key_id:
        raise KeyringError(
            f"'{key_id}' is not a usable key id.",
            hint="Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return key_id


class KeyState(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class KeyEntry:
    id: str
    algorithm: str
    state: KeyState
    storage: str  # "pem" (a PKCS#8 file) or "pkcs11" (an object in a token)
    created_at: str
    public_key_sha256: str
    key_path: str | None = None  # pem: relative to the keyring's folder
    key_encrypted: bool = False
    pkcs11_token: str | None = None
    pkcs11_label: str | None = None
    chain_path: str | None = None  # relative; None until a CA-issued chain is imported
    certificate_sha256: str | None = None
    subject: str | None = None
    issuer: str | None = None
    not_after: str | None = None
    development: bool = False
    activated_at: str | None = None
    retired_at: str | None = None
    revoked_at: str | None = None
    revocation_reason: str | None = None


@dataclass(frozen=True)
class KeyEvent:
    """One change of the keyring, for the audit ledger."""

    key_id: str
    event: str  # added | chain-imported | activated | retired | revoked
    from_state: str | None
    to_state: str | None
    at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class Keyring:
    version: int = 0
    entries: tuple[KeyEntry, ...] = field(default_factory=tuple)

    def get(self, key_id: str) -> KeyEntry:
        for entry in self.entries:
            if entry.id == key_id:
                return entry
        known = ", ".join(e.id for e in self.entries) or "none"
        raise KeyNotFoundError(f"No key '{key_id}' in the keyring.", hint=f"Known keys: {known}.")

    def active(self) -> KeyEntry | None:
        return next((e for e in self.entries if e.state is KeyState.ACTIVE), None)

    def _with(self, updated: KeyEntry) -> Keyring:
        return replace(self, entries=tuple(updated if e.id == updated.id else e for e in self.entries))


Change = tuple[Keyring, list[KeyEvent]]


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


# --- transitions (pure) ---------------------------------------------------------------------------------


def add(ring: Keyring, entry: KeyEntry, at: datetime) -> Change:
    check_key_id(entry.id)
    if any(e.id == entry.id for e in ring.entries):
        raise KeyringError(f"A key with id '{entry.id}' exists already.")
    if entry.state not in (KeyState.PENDING, KeyState.ACTIVE):
        raise KeyringError("A new key starts as pending (or active, for the very first key).")
    if entry.state is KeyState.ACTIVE and ring.active() is not None:
        raise KeyringError("Another key is active; add the new key as pending and activate it.")
    event = KeyEvent(entry.id, "added", None, entry.state.value, at)
    return replace(ring, entries=(*ring.entries, entry)), [event]


def import_chain(
    ring: Keyring, key_id: str, *, chain_path: str, certificate_sha256: str, subject: str, issuer: str,
    not_after: str, development: bool, at: datetime,
) -> Change:  # fmt: skip
    entry = ring.get(key_id)
    if entry.state is not KeyState.PENDING:
        raise KeyringError(
            f"Key '{key_id}' is {entry.state.value}: a chain can only be imported for a pending key.",
            hint="Generate a new key for a new certificate.",
        )
    updated = replace(
        entry, chain_path=chain_path, certificate_sha256=certificate_sha256, subject=subject, issuer=issuer,
        not_after=not_after, development=development,
    )  # fmt: skip
    return ring._with(updated), [KeyEvent(key_id, "chain-imported", "pending", "pending", at)]


def activate(ring: Keyring, key_id: str, at: datetime) -> Change:
    entry = ring.get(key_id)
    if entry.state is not KeyState.PENDING:
        raise KeyringError(
            f"Key '{key_id}' is {entry.state.value}; only a pending key can be activated.",
            hint="States move forward only: pending -> active -> retired -> revoked.",
        )
    if entry.chain_path is None:
        raise KeyringError(
            f"Key '{key_id}' has no certificate chain yet.",
            hint=f"Import the CA-issued chain first: hallmark keys import {key_id} --chain FILE",
        )
    events: list[KeyEvent] = []
    current = ring.active()
    if current is not None:
        ring = ring._with(replace(current, state=KeyState.RETIRED, retired_at=_stamp(at)))
        events.append(KeyEvent(current.id, "retired", "active", "retired", at, f"replaced by {key_id}"))
    ring = ring._with(replace(entry, state=KeyState.ACTIVE, activated_at=_stamp(at)))
    events.append(KeyEvent(key_id, "activated", "pending", "active", at))
    return ring, events


def retire(ring: Keyring, key_id: str, at: datetime) -> Change:
    entry = ring.get(key_id)
    if entry.state not in (KeyState.ACTIVE, KeyState.PENDING):
        raise KeyringError(
            f"Key '{key_id}' is {entry.state.value}; only an active or pending key can retire."
        )
    updated = replace(entry, state=KeyState.RETIRED, retired_at=_stamp(at))
    return ring._with(updated), [KeyEvent(key_id, "retired", entry.state.value, "retired", at)]


def revoke(ring: Keyring, key_id: str, reason: str, at: datetime) -> Change:
    entry = ring.get(key_id)
    if entry.state is KeyState.REVOKED:
        raise KeyringError(f"Key '{key_id}' is revoked already.")
    if not reason.strip():
        raise KeyringError("A revocation needs a reason (for example: key compromise, superseded).")
    if len(reason) > 500:
        raise KeyringError("A revocation reason is at most 500 characters.")
    updated = replace(entry, state=KeyState.REVOKED, revoked_at=_stamp(at), revocation_reason=reason.strip())
    return ring._with(updated), [
        KeyEvent(key_id, "revoked", entry.state.value, "revoked", at, reason.strip())
    ]


# --- the file format ----------------------------------------------------------------------------------


def encode(ring: Keyring) -> bytes:
    """The keyring file's bytes."""
    doc = {"schema": SCHEMA, "version": ring.version, "keys": [asdict(e) for e in ring.entries]}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def decode(data: bytes, source: str) -> Keyring:
    """The keyring in a file's bytes; `source` names the file in errors."""
    try:
        doc = json.loads(data)
        if doc.get("schema") != SCHEMA:
            raise KeyringError(
                f"{source} has keyring schema {doc.get('schema')!r}; this version reads schema {SCHEMA}."
            )
        entries = tuple(KeyEntry(**{**e, "state": KeyState(e["state"])}) for e in doc["keys"])
        return Keyring(version=int(doc["version"]), entries=entries)
    except KeyringError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyringError(f"{source} is not a valid keyring file ({type(exc).__name__}).") from None


def apply(ring: Keyring, change: Callable[[Keyring], Change]) -> Change:
    """Apply `change` to `ring`: the next version, checked against the invariants before anyone writes it."""
    changed, events = change(ring)
    changed = replace(changed, version=changed.version + 1)
    _check_invariants(changed)
    return changed, events


def _check_invariants(ring: Keyring) -> None:
    active = [e.id for e in ring.entries if e.state is KeyState.ACTIVE]
    if len(active) > 1:
        raise KeyringError(f"More than one active key ({', '.join(active)}): refusing to write the keyring.")
    ids = [e.id for e in ring.entries]
    if len(ids) != len(set(ids)):
        raise KeyringError("Duplicate key ids: refusing to write the keyring.")


def describe(entry: KeyEntry) -> dict[str, Any]:
    """A listing row: never key material (there is none in the keyring), only where it lives."""
    row = asdict(entry)
    row["state"] = entry.state.value
    return row
