"""The watermark keyring: which secret marks new images, and which older ones detection still tries.

A key is never deleted by rotation: images marked under a retired key must stay recoverable, so a retired
key keeps detecting and only stops marking. The file format is JSON (secrets in base64); reading and writing
the file is the adapter's business (`app/watermark_keyring.py`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from signing.errors import ConfigError
from signing.softbinding.port import WatermarkKey

FORMAT = "hallmark-watermark-keyring/1"
SECRET_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class WatermarkKeyState(StrEnum):
    ACTIVE = "active"  # marks new images and detects
    RETIRED = "retired"  # detects only


@dataclass(frozen=True)
class WatermarkKeyRecord:
    key: WatermarkKey
    state: WatermarkKeyState
    created_at: datetime
    retired_at: datetime | None = None


@dataclass(frozen=True)
class WatermarkKeyring:
    records: tuple[WatermarkKeyRecord, ...] = field(default_factory=tuple)

    @property
    def active(self) -> WatermarkKey | None:
        found = [r.key for r in self.records if r.state is WatermarkKeyState.ACTIVE]
        return found[0] if found else None

    @property
    def detection_keys(self) -> tuple[WatermarkKey, ...]:
        """Every key, the active one first, then the most recently retired."""
        ordered = sorted(
            self.records, key=lambda r: (r.state is not WatermarkKeyState.ACTIVE, -r.created_at.timestamp())
        )
        return tuple(r.key for r in ordered)

    def rotate(self, key_id: str, secret: bytes, now: datetime) -> WatermarkKeyring:
        """A new active key; the previous active key is retired (it keeps detecting)."""
        if not _KEY_ID.fullmatch(key_id):
            raise ConfigError(
                f"A watermark key id must be 1-64 letters, digits, '.', '_' or '-': {key_id!r}."
            )
        if any(r.key.key_id == key_id for r in self.records):
            raise ConfigError(f"The watermark keyring already has a key named {key_id!r}.")
        if len(secret) < SECRET_BYTES:
            raise ConfigError(f"A watermark key needs {SECRET_BYTES} random bytes.")
        kept = tuple(
            replace(r, state=WatermarkKeyState.RETIRED, retired_at=now)
            if r.state is WatermarkKeyState.ACTIVE
            else r
            for r in self.records
        )
        new = WatermarkKeyRecord(WatermarkKey(key_id, secret), WatermarkKeyState.ACTIVE, now)
        return WatermarkKeyring((*kept, new))


def encode(ring: WatermarkKeyring) -> bytes:
    keys = [
        {
            "key_id": r.key.key_id,
            "secret": base64.b64encode(r.key.secret).decode("ascii"),
            "state": r.state.value,
            "created_at": r.created_at.isoformat(),
            "retired_at": r.retired_at.isoformat() if r.retired_at else None,
        }
        for r in ring.records
    ]
    return (json.dumps({"format": FORMAT, "keys": keys}, indent=2) + "\n").encode()


def decode(data: bytes, where: str) -> WatermarkKeyring:
    """Parse a keyring file; anything malformed is a `ConfigError` naming the file (never its secrets)."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("keys"), list):
            raise ValueError("not a Hallmark watermark keyring")
        records = tuple(_record(item) for item in doc["keys"])
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise ConfigError(
            f"The watermark keyring {where} cannot be read: {type(exc).__name__}.",
            hint="Restore it from a backup; `hallmark watermark rotate` starts a new key.",
        ) from None
    if sum(r.state is WatermarkKeyState.ACTIVE for r in records) > 1:
        raise ConfigError(f"The watermark keyring {where} has more than one active key.")
    if len({r.key.key_id for r in records}) != len(records):
        raise ConfigError(f"The watermark keyring {where} names one key twice.")
    return WatermarkKeyring(records)


def _record(item: Any) -> WatermarkKeyRecord:
    if not isinstance(item, dict):
        raise ValueError("a key entry must be an object")
    retired = item.get("retired_at")
    return WatermarkKeyRecord(
        key=WatermarkKey(str(item["key_id"]), base64.b64decode(item["secret"], validate=True)),
        state=WatermarkKeyState(item["state"]),
        created_at=datetime.fromisoformat(item["created_at"]),
        retired_at=datetime.fromisoformat(retired) if isinstance(retired, str) else None,
    )
