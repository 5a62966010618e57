"""Re-reading a repository entry's stored manifest store with the engine, for `check_entry`."""

from __future__ import annotations

from typing import IO

from signing._c2pa import Engine
from signing.report import build_report
from signing.softbinding.binding_assertions import declared_bindings
from signing.softbinding.repository import EntryCheck, RepositoryEntry, check_entry


def check_stored_entry(engine: Engine, entry: RepositoryEntry, mime: str, asset: IO[bytes]) -> EntryCheck:
    """Verify the entry's manifest store against `asset` (the file being recovered, of type `mime`)."""
    reading = engine.read(mime, asset, entry.manifest_store)
    report = build_report(reading, mime, engine.config.trust)
    manifests = reading.store.get("manifests")
    active = manifests.get(report.manifest_id) if isinstance(manifests, dict) and report.manifest_id else None
    return check_entry(entry, report, declared_bindings(active if isinstance(active, dict) else {}))
