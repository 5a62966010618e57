"""The keyring: forward-only states, exactly one active key, atomic versioned writes."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.keyring_file import KeyringFile
from signing import KeyEntry, KeyNotFoundError, KeyringError, KeyState
from signing import keyring_rules as rules

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def entry(key_id: str, state: KeyState = KeyState.PENDING, chain: str | None = "k/chain.pem") -> KeyEntry:
    return KeyEntry(
        id=key_id,
        algorithm="es256",
        state=state,
        storage="pem",
        created_at="2026-11-28T00:00:00+00:00",
        public_key_sha256="ab" * 32,
        key_path=f"{key_id}/key.pem",
        chain_path=chain,
    )


def ring_with(*entries: KeyEntry) -> rules.Keyring:
    ring = rules.Keyring()
    for e in entries:
        ring, _ = rules.add(ring, e, AT)
    return ring


def test_activate_retires_the_previous_key_and_logs_both() -> None:
    ring = ring_with(entry("old", KeyState.ACTIVE), entry("new"))
    ring, events = rules.activate(ring, "new", AT)
    assert ring.get("new").state is KeyState.ACTIVE
    assert ring.get("old").state is KeyState.RETIRED
    assert ring.active() == ring.get("new")
    assert [(e.key_id, e.event, e.from_state, e.to_state) for e in events] == [
        ("old", "retired", "active", "retired"),
        ("new", "activated", "pending", "active"),
    ]
    assert ring.get("new").activated_at
    assert ring.get("old").retired_at


@pytest.mark.parametrize("state", [KeyState.ACTIVE, KeyState.RETIRED, KeyState.REVOKED])
def test_only_pending_keys_activate(state: KeyState) -> None:
    ring = ring_with(entry("a", KeyState.ACTIVE)) if state is KeyState.ACTIVE else ring_with(entry("a"))
    if state is KeyState.RETIRED:
        ring, _ = rules.retire(ring, "a", AT)
    if state is KeyState.REVOKED:
        ring, _ = rules.revoke(ring, "a", "key compromise", AT)
    with pytest.raises(KeyringError, match="only a pending key"):
        rules.activate(ring, "a", AT)


def test_a_key_without_chain_cannot_activate() -> None:
    with pytest.raises(KeyringError, match="no certificate chain") as caught:
        rules.activate(ring_with(entry("a", chain=None)), "a", AT)
    assert "keys import a" in (caught.value.hint or "")


def test_chain_import_only_for_pending_keys() -> None:
    ring = ring_with(entry("a", chain=None))
    ring, events = rules.import_chain(
        ring,
        "a",
        chain_path="a/chain.pem",
        certificate_sha256="cd" * 32,
        subject="CN=x",
        issuer="CN=ca",
        not_after="2030-01-01T00:00:00+00:00",
        development=False,
        at=AT,
    )
    assert ring.get("a").chain_path == "a/chain.pem"
    assert events[0].event == "chain-imported"
    ring, _ = rules.activate(ring, "a", AT)
    with pytest.raises(KeyringError, match="only be imported for a pending key"):
        rules.import_chain(
            ring,
            "a",
            chain_path="x",
            certificate_sha256="",
            subject="",
            issuer="",
            not_after="",
            development=False,
            at=AT,
        )


def test_revoke_needs_a_reason_and_is_final() -> None:
    ring = ring_with(entry("a", KeyState.ACTIVE))
    with pytest.raises(KeyringError, match="reason"):
        rules.revoke(ring, "a", "  ", AT)
    ring, events = rules.revoke(ring, "a", "key compromise", AT)
    assert ring.get("a").state is KeyState.REVOKED
    assert ring.get("a").revocation_reason == "key compromise"
    assert events[0].reason == "key compromise"
    assert ring.active() is None
    with pytest.raises(KeyringError, match="revoked already"):
        rules.revoke(ring, "a", "again", AT)
    with pytest.raises(KeyringError):
        rules.retire(ring, "a", AT)


def test_add_refuses_duplicates_and_a_second_active_key() -> None:
    ring = ring_with(entry("a", KeyState.ACTIVE))
    with pytest.raises(KeyringError, match="exists already"):
        rules.add(ring, entry("a"), AT)
    with pytest.raises(KeyringError, match="Another key is active"):
        rules.add(ring, entry("b", KeyState.ACTIVE), AT)


def test_unknown_key_names_the_known_ones() -> None:
    with pytest.raises(KeyNotFoundError) as caught:
        ring_with(entry("alpha")).get("beta")
    assert "alpha" in (caught.value.hint or "")


def test_file_round_trip_and_version_grows(tmp_path: Path) -> None:
    file = KeyringFile(tmp_path)
    assert file.load() == rules.Keyring()
    assert file.stamp() is None
    file.update(lambda ring: rules.add(ring, entry("a", KeyState.ACTIVE), AT))
    first = file.stamp()
    ring, _ = file.update(lambda ring: rules.add(ring, entry("b"), AT))
    assert ring.version == 2
    loaded = file.load()
    assert loaded == ring
    assert file.stamp() != first
    doc = json.loads(file.path.read_text())
    assert doc["schema"] == 1
    assert doc["version"] == 2
    assert "PRIVATE" not in file.path.read_text()


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    file = KeyringFile(tmp_path)
    file.update(lambda ring: rules.add(ring, entry("a"), AT))
    before = file.path.read_bytes()
    ring, events = file.update(lambda ring: rules.activate(ring, "a", AT), dry_run=True)
    assert ring.get("a").state is KeyState.ACTIVE
    assert events
    assert file.path.read_bytes() == before


def test_a_failed_change_leaves_the_file_untouched(tmp_path: Path) -> None:
    file = KeyringFile(tmp_path)
    file.update(lambda ring: rules.add(ring, entry("a", chain=None), AT))
    before = file.path.read_bytes()
    with pytest.raises(KeyringError):
        file.update(lambda ring: rules.activate(ring, "a", AT))
    assert file.path.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


def test_schema_mismatch_and_garbage_are_clear_errors(tmp_path: Path) -> None:
    file = KeyringFile(tmp_path)
    file.path.write_text(json.dumps({"schema": 99, "version": 1, "keys": []}))
    with pytest.raises(KeyringError, match="schema 99"):
        file.load()
    file.path.write_text("{not json")
    with pytest.raises(KeyringError, match="not a valid keyring"):
        file.load()


def test_concurrent_writers_lose_no_change(tmp_path: Path) -> None:
    file = KeyringFile(tmp_path)

    def add_one(i: int) -> None:
        file.update(lambda ring: rules.add(ring, entry(f"k{i}"), AT))

    threads = [threading.Thread(target=add_one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ring = file.load()
    assert sorted(e.id for e in ring.entries) == sorted(f"k{i}" for i in range(16))
    assert ring.version == 16


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "x" * 65, "a..b", "key id", "ключ"])
def test_key_ids_that_could_escape_the_keys_folder_are_refused(bad: str) -> None:
    with pytest.raises(KeyringError, match="not a usable key id"):
        rules.add(rules.Keyring(), entry(bad), AT)


@pytest.mark.parametrize("good", ["default", "es256-20261128-193044-cf1d", "prod.2027_a"])
def test_ordinary_key_ids_are_accepted(good: str) -> None:
    ring, _ = rules.add(rules.Keyring(), entry(good), AT)
    assert ring.get(good).id == good
