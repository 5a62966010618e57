"""API keys: shown once at creation, stored as a SHA-256 of the secret, scoped, revocable.

A key reads `hm_<id>_<secret>`: the id finds the key, the secret (256 bits of randomness) is compared in
constant time against its stored hash. High-entropy secrets need no slow password hash.

A key's state (its secret's hash, scopes, policy, revocation) is derived from the ledger's API-key
events (api_key.created / api_key.scoped / api_key.policy / api_key.revoked), which are append-only and
sealed into the audit chain. The `api_keys` table is kept up to date for reading, but authentication never
consults it: editing `api_keys.revoked_at` (or the secret's hash, or the scopes) changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import sqlalchemy as sa

from app.store.audit import event_row
from app.store.tables import api_keys, ledger_events

SCOPES = frozenset({"sign", "resolve", "admin"})
PREFIX = "hm"
KEY_ID_BYTES = 8
KEY_ID = re.compile(f"[0-9a-f]{{{2 * KEY_ID_BYTES}}}")  # what create() makes
CREATED, SCOPED, REVOKED = "api_key.created", "api_key.scoped", "api_key.revoked"
POLICY = "api_key.policy"
EVENTS = (CREATED, SCOPED, REVOKED, POLICY)
POLICY_FIELDS = ("source_types", "formats", "rate_per_minute", "monthly_quota")


@dataclass(frozen=True)
class KeyPolicy:
    """What one API key may do beyond its scopes; None: no limit of that kind (the default).

    `source_types`: full IPTC digital source type URIs; `formats`: media types (MIME) identified from the
    bytes; `rate_per_minute`: sign requests per minute; `monthly_quota`: signatures per calendar month
    (UTC), counted from the ledger."""

    source_types: frozenset[str] | None = None
    formats: frozenset[str] | None = None
    rate_per_minute: int | None = None
    monthly_quota: int | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "source_types": sorted(self.source_types) if self.source_types is not None else None,
            "formats": sorted(self.formats) if self.formats is not None else None,
            "rate_per_minute": self.rate_per_minute,
            "monthly_quota": self.monthly_quota,
        }

    @classmethod
    def from_json(cls, values: dict[str, object]) -> KeyPolicy:
        def names(value: object) -> frozenset[str] | None:
            return frozenset(str(v) for v in value) if isinstance(value, list) else None

        def number(value: object) -> int | None:
            return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

        return cls(
            names(values.get("source_types")),
            names(values.get("formats")),
            number(values.get("rate_per_minute")),
            number(values.get("monthly_quota")),
        )


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None
    policy: KeyPolicy = KeyPolicy()

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class _State:
    key: ApiKey
    secret_sha256: str


class ApiKeyStore:
    """`cache_seconds` keeps successful look-ups in memory (saves a database round trip per request); a
    key revoked through another process stops working within that many seconds, through this one at once.

    Without a cached hit, authentication reads the API-key events newer than the last it has seen (one
    indexed query, usually empty) and folds them into the in-memory state of every key."""

    def __init__(self, engine: sa.Engine, *, cache_seconds: float = 0.0):
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}
        self._head = 0  # the newest API-key event folded into _states

    def cached(self, token: str) -> ApiKey | None:
        """A recent successful authentication of exactly this token, without touching the database."""
        with self._lock:
            hit = self._cache.get(token)
            if hit is None:
                return None
            if hit[1] < time.monotonic():
                del self._cache[token]
                return None
            return hit[0]

    def create(self, name: str, scopes: set[str]) -> tuple[ApiKey, str]:
        """Create a key; returns it with its plaintext token, which is never stored or shown again."""
        _check_scopes(scopes)
        if not name.strip() or len(name) > 200:
            raise ValueError("name must be 1 to 200 characters")
        key_id = secrets.token_hex(KEY_ID_BYTES)
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        data = {"name": name.strip(), "scopes": sorted(scopes), "secret_sha256": _digest(secret)}
        with self._engine.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    id=key_id,
                    name=name.strip(),
                    secret_sha256=data["secret_sha256"],
                    scopes=" ".join(sorted(scopes)),
                    created_at=now,
                    revoked_at=None,
                )
            )
            conn.execute(ledger_events.insert(), event_row(CREATED, key_id, data, now))
        return ApiKey(key_id, name.strip(), frozenset(scopes), now, None), f"{PREFIX}_{key_id}_{secret}"

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key this token belongs to, or None. Never raises for a malformed token."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not KEY_ID.fullmatch(parts[1]) or not parts[2]:
            return None  # the id's shape is checked first: PostgreSQL refuses text such as NUL bytes
        if len(token) > 200:
            return None
        state = self._current().get(parts[1])
        if state is None:
            return None
        if not hmac.compare_digest(state.secret_sha256, _digest(parts[2])):
            return None
        key = state.key
        if not key.active:
            return None
        if self._cache_seconds > 0:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[token] = (key, time.monotonic() + self._cache_seconds)
        return key

    def list(self) -> list[ApiKey]:
        return sorted((s.key for s in self._current().values()), key=lambda k: (k.created_at, k.id))

    def get(self, key_id: str) -> ApiKey | None:
        state = self._current().get(key_id)
        return state.key if state else None

    def revoke(self, key_id: str) -> bool:
        if not KEY_ID.fullmatch(key_id):
            return False
        with self._lock:
            self._cache = {t: hit for t, hit in self._cache.items() if hit[0].id != key_id}
        key = self.get(key_id)
        if key is None or not key.active:
            return False
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(ledger_events.insert(), event_row(REVOKED, key_id, {}, now))
            conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now))
        self._current()
        return True

    def rescope(self, key_id: str, scopes: set[str]) -> ApiKey | None:
        """Give an active key these scopes (recorded as api_key.scoped); None when no such active key."""
        _check_scopes(scopes)
        key = self.get(key_id)
        if key is None or not key.active:
            return None
        with self._lock:
            self._cache = {t: hit for t, hit in self._cache.items() if hit[0].id != key_id}
        with self._engine.begin() as conn:
            conn.execute(ledger_events.insert(), event_row(SCOPED, key_id, {"scopes": sorted(scopes)}))
            conn.execute(
                api_keys.update().where(api_keys.c.id == key_id).values(scopes=" ".join(sorted(scopes)))
            )
        return self.get(key_id)

    def set_policy(self, key_id: str, policy: KeyPolicy) -> ApiKey | None:
        """Give an active key this policy (the whole policy, recorded as api_key.policy); None when no such
        active key. Other processes apply it within `cache_seconds`."""
        key = self.get(key_id)
        if key is None or not key.active:
            return None
        with self._lock:
            self._cache = {t: hit for t, hit in self._cache.items() if hit[0].id != key_id}
        with self._engine.begin() as conn:
            conn.execute(ledger_events.insert(), event_row(POLICY, key_id, policy.to_json()))
        return self.get(key_id)

    def count_active(self) -> int:
        return sum(1 for s in self._current().values() if s.key.active)

    def _current(self) -> dict[str, _State]:
        """Every key's state, after folding in the API-key events written since the last look."""
        with self._lock:
            head = self._head
        query = (
            sa.select(ledger_events.c.seq, ledger_events.c.at, ledger_events.c.kind, ledger_events.c.subject,
                      ledger_events.c.data)
            .where(ledger_events.c.seq > head, ledger_events.c.kind.in_(EVENTS))
            .order_by(ledger_events.c.seq)
        )  # fmt: skip
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        with self._lock:
            for row in rows:
                if row.seq > self._head:
                    _fold(self._states, row.kind, row.subject, _utc(row.at), row.data)
                    self._head = row.seq
            return dict(self._states)


def _fold(states: dict[str, _State], kind: str, key_id: str, at: datetime, data: str) -> None:
    try:
        values = json.loads(data)
    except ValueError:
        return
    state = states.get(key_id)
    if kind == CREATED and state is None:  # the first creation stands; a second one changes nothing
        key = ApiKey(key_id, str(values.get("name", "")), frozenset(values.get("scopes", ())), at, None)
        states[key_id] = _State(key, str(values.get("secret_sha256", "")))
    elif kind == SCOPED and state is not None and state.key.active:
        states[key_id] = replace(state, key=replace(state.key, scopes=frozenset(values.get("scopes", ()))))
    elif kind == POLICY and state is not None and state.key.active:
        states[key_id] = replace(state, key=replace(state.key, policy=KeyPolicy.from_json(values)))
    elif kind == REVOKED and state is not None and state.key.active:
        states[key_id] = replace(state, key=replace(state.key, revoked_at=at))


def _check_scopes(scopes: set[str]) -> None:
    unknown = set(scopes) - SCOPES
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {sorted(SCOPES)}")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
