"""API keys: shown once at creation, stored as a SHA-256 of the secret, scoped, revocable.

A key reads `hm_<id>_<secret>`: the id finds the row, the secret (256 bits of randomness) is compared in
constant time against its stored hash. High-entropy secrets need no slow password hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from app.store.tables import api_keys

SCOPES = frozenset({"sign", "resolve", "admin"})
PREFIX = "hm"
KEY_ID_BYTES = 8
KEY_ID = re.compile(f"[0-9a-f]{{{2 * KEY_ID_BYTES}}}")  # what create() makes


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class ApiKeyStore:
    """`cache_seconds` keeps successful look-ups in memory (saves a database round trip per request); a
    key revoked through another process stops working within that many seconds, through this one at once."""

    def __init__(self, engine: sa.Engine, *, cache_seconds: float = 0.0):
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

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
        unknown = set(scopes) - SCOPES
        if unknown or not scopes:
            raise ValueError(f"scopes must be a non-empty subset of {sorted(SCOPES)}")
        if not name.strip() or len(name) > 200:
            raise ValueError("name must be 1 to 200 characters")
        key_id = secrets.token_hex(KEY_ID_BYTES)
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    id=key_id,
                    name=name.strip(),
                    secret_sha256=_digest(secret),
                    scopes=" ".join(sorted(scopes)),
                    created_at=now,
                    revoked_at=None,
                )
            )
        return ApiKey(key_id, name.strip(), frozenset(scopes), now, None), f"{PREFIX}_{key_id}_{secret}"

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key this token belongs to, or None. Never raises for a malformed token."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or not KEY_ID.fullmatch(parts[1]) or not parts[2]:
            return None  # the id's shape is checked first: PostgreSQL refuses text such as NUL bytes
        if len(token) > 200:
            return None
        with self._engine.connect() as conn:
            row = conn.execute(api_keys.select().where(api_keys.c.id == parts[1])).first()
        if row is None:
            return None
        if not hmac.compare_digest(row.secret_sha256, _digest(parts[2])):
            return None
        key = _key(row._mapping)
        if not key.active:
            return None
        if self._cache_seconds > 0:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[token] = (key, time.monotonic() + self._cache_seconds)
        return key

    def list(self) -> list[ApiKey]:
        with self._engine.connect() as conn:
            rows = conn.execute(api_keys.select().order_by(api_keys.c.created_at))
            return [_key(r._mapping) for r in rows]

    def revoke(self, key_id: str) -> bool:
        if not KEY_ID.fullmatch(key_id):
            return False
        with self._lock:
            self._cache = {t: hit for t, hit in self._cache.items() if hit[0].id != key_id}
        with self._engine.begin() as conn:
            result = conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        return result.rowcount == 1

    def count_active(self) -> int:
        with self._engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
            return int(conn.execute(query).scalar_one())


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _key(row: sa.RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        scopes=frozenset(row["scopes"].split()),
        created_at=_utc(row["created_at"]) or datetime.now(UTC),
        revoked_at=_utc(row["revoked_at"]),
    )
