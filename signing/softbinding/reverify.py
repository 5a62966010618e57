"""Re-reading a repository entry's stored manifest store with the engine, for `check_entry`."""

from __future__ import annotations

import copy
import dataclasses
from typing import IO, Any

from signing._c2pa import Engine
from signing.models import VerificationReport
from signing.reading import RawReading
from signing.report import build_report
from signing.softbinding.binding_assertions import declared_bindings
from signing.softbinding.repository import HARD_BINDING_MISMATCHES, EntryCheck, RepositoryEntry, check_entry


def check_stored_entry(engine: Engine, entry: RepositoryEntry, mime: str, asset: IO[bytes]) -> EntryCheck:
    """Verify the entry's manifest store against `asset` (the file being recovered, of type `mime`)."""
    return stored_entry_report(engine, entry, mime, asset)[0]


def stored_entry_report(
    engine: Engine, entry: RepositoryEntry, mime: str, asset: IO[bytes]
) -> tuple[EntryCheck, VerificationReport]:
    """`check_stored_entry`, and the report on the stored manifest (what the original asset declared)."""
    reading = _without_hard_binding(engine.read(mime, asset, entry.manifest_store))
    report = build_report(reading, mime, engine.config.trust)
    manifests = reading.store.get("manifests")
    active = manifests.get(report.manifest_id) if isinstance(manifests, dict) and report.manifest_id else None
    return check_entry(entry, report, declared_bindings(active if isinstance(active, dict) else {})), report


def _without_hard_binding(reading: RawReading) -> RawReading:
    """The reading as the engine would give it for the asset that was signed: the file being recovered
    differs from it, so its hard-binding mismatch is expected. The engine's state is Invalid for that alone;
    with it gone, the state follows from the remaining codes as the engine decides it."""
    results = reading.store.get("validation_results")
    active = results.get("activeManifest") if isinstance(results, dict) else None
    if reading.kind != "manifest" or not isinstance(active, dict):
        return reading
    failures = [f for f in active.get("failure") or [] if isinstance(f, dict)]
    remaining = [f for f in failures if f.get("code") not in HARD_BINDING_MISMATCHES]
    if remaining or not failures:
        return reading
    store: dict[str, Any] = copy.deepcopy(reading.store)
    store["validation_results"]["activeManifest"]["failure"] = []
    successes = [s.get("code") for s in active.get("success") or [] if isinstance(s, dict)]
    state = "Trusted" if "signingCredential.trusted" in successes else "Valid"
    return dataclasses.replace(reading, state=state, store=store)
