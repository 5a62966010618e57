"""Ports the core needs from the outside world, named by role. Adapters live in app/."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


@dataclass(frozen=True)
class LedgerEntry:
    """One row of the audit ledger: everything needed to answer "did we sign this, with what, for whom"."""

    id: str
    created_at: datetime
    api_key_id: str | None
    provider: str
    model_name: str
    model_version: str
    digital_source_type: str
    media_type: str
    output_mode: str
    input_sha256: str
    output_sha256: str
    manifest_id: str
    parent_manifest_id: str | None
    key_id: str
    certificate_sha256: str
    timestamped: bool = False
    # The id of the HTTP request that asked for the signature (the adapter fills it in), None from the CLI.
    request_id: str | None = None


class Ledger(Protocol):
    def record(self, entry: LedgerEntry) -> None:
        """Persist the entry durably, or raise `LedgerError`. Called before a signed file is released."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Breaker(Protocol):
    """A circuit breaker in front of the timestamp authority (`app.tsa.CircuitBreaker`), shared by the
    threads that sign."""

    def allow(self) -> bool:
        """May this call use the TSA now?"""
        ...

    def success(self) -> None: ...

    def failure(self) -> None: ...

    def release(self) -> None:
        """The call ended without saying anything about the TSA."""
        ...

    def retry_after(self) -> float:
        """Seconds until a call may use the TSA again."""
        ...
