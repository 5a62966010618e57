"""What the engine said about one asset, before the core interprets it (no engine import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RawReading:
    """What the engine said about one asset, before the core interprets it."""

    kind: str  # "manifest" | "absent" | "remote" | "error"
    state: str | None = None  # Trusted | Valid | Invalid
    store: dict[str, Any] = field(default_factory=dict)  # Reader.json()
    crjson: dict[str, Any] = field(default_factory=dict)
    trust_profile: str | None = None
    remote_url: str | None = None
    error: str | None = None
