"""PostgreSQL as the service's database (tests/postgres.py starts a real server on 127.0.0.1): the URL gets
the psycopg 3 driver, the migrations bring an empty database to head, the service signs and verifies on
it, and the manifest repository indexes a row that commits after one with a higher number (which happens
on PostgreSQL when two signs run in parallel, never on SQLite's single writer)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.pem_keys import CredentialFiles, load_pem_signer
from app.settings import Settings
from app.store import manifests as manifest_store
from app.store.apikeys import ApiKeyStore
from app.store.audit import SOURCES, Sealer, event_row, read_ledger, record_event
from app.store.db import LEDGER_TABLES, driver_url, is_current, make_engine, migrate
from app.store.manifests import SqlManifestRepository, manifest_row
from app.store.tables import ledger_events, manifests, signatures
from signing import IsccKind, KeySigner, RepositoryEntry, iscc_code, public_key_sha256, verify_ledger
from tests.conftest import make_data_dir
from tests.pki import TestPki as Pki
from tests.postgres import PostgresServer
from tests.waiting import wait_for


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    return postgres.new_database()


@pytest.fixture
def pg(pg_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def test_a_postgresql_url_gets_the_psycopg_driver() -> None:
    assert driver_url("postgresql://u@127.0.0.1:5432/db") == "postgresql+psycopg://u@127.0.0.1:5432/db"
    assert driver_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    # A URL that names its driver, and SQLite, are left as they are.
    assert driver_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert driver_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_migrations_bring_an_empty_database_to_head(pg: sa.Engine) -> None:
    assert pg.dialect.name == "postgresql"
    assert pg.dialect.driver == "psycopg"
    assert not is_current(pg)
    migrate(pg)
    assert is_current(pg)
    tables = set(sa.inspect(pg).get_table_names())
    assert {"signatures", "key_events", "api_keys", "manifests", "feedback"} <= tables
    migrate(pg)  # idempotent, as every worker runs it at start
    assert is_current(pg)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((640, 480), 60).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def test_the_service_signs_and_verifies_on_postgresql(tmp_path: Path, pki: Pki, pg_url: str) -> None:
    settings = Settings(data_dir=make_data_dir(tmp_path / "var", pki), database_url=pg_url)
    app = create_app(settings)
    with TestClient(app) as client:
        _, token = ApiKeyStore(make_engine(pg_url)).create("pg-test", {"sign"})
        signed = client.post(
            "/v1/sign",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("a.jpg", jpeg(), "image/jpeg")},
            data={"model_name": "pg-model", "model_version": "1"},
        )
        assert signed.status_code == 200, signed.text
        report = client.post("/v1/verify", files={"file": ("a.jpg", signed.content, "image/jpeg")}).json()
    assert report["outcome"] == "trusted"
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        ledger = conn.execute(sa.select(signatures.c.manifest_id)).scalars().all()
        stored = conn.execute(sa.select(manifests.c.manifest_id)).scalars().all()
    engine.dispose()
    assert ledger == [report["manifest_id"]]
    assert stored == [report["manifest_id"]]


def entry(n: int) -> RepositoryEntry:
    body = (0x93C1D07E55AA0F3C ^ (n << 40)).to_bytes(8, "big")
    return RepositoryEntry(
        manifest_id=f"urn:c2pa:late-{n}",
        manifest_store=b"store",
        media_type="image/jpeg",
        watermark_id=None,
        iscc=iscc_code(body, IsccKind.IMAGE),
        pdq=None,
        key_id="test-key",
        created_at=datetime(2026, 12, 5, tzinfo=UTC),
    )


def found(repo: SqlManifestRepository, e: RepositoryEntry) -> bool:
    assert e.iscc is not None
    return e.manifest_id in [m.entry.manifest_id for m in repo.nearest(iscc=e.iscc, pdq=None)]


def late_commit(pg: sa.Engine, repo: SqlManifestRepository) -> tuple[RepositoryEntry, RepositoryEntry]:
    """Row A takes its number first but commits after row B, with a lookup in between."""
    a, b = entry(1), entry(2)
    with pg.connect() as first:
        first.begin()
        first.execute(manifests.insert(), manifest_row(a))  # number 1, not committed yet
        with pg.begin() as second:
            second.execute(manifests.insert(), manifest_row(b))  # number 2, committed
        assert found(repo, b)
        assert not found(repo, a)  # not committed: nobody can see it yet
        first.commit()
    return a, b


def test_a_row_that_commits_after_a_higher_number_is_still_indexed(pg: sa.Engine) -> None:
    migrate(pg)
    repo = SqlManifestRepository(pg)
    a, b = late_commit(pg, repo)
    assert found(repo, a)
    assert found(repo, b)


def test_without_remembering_skipped_numbers_the_late_row_is_lost(
    pg: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Negative control: the previous test fails on an index that only reads numbers above the last one.
    migrate(pg)
    monkeypatch.setattr(manifest_store, "MAX_GAPS", 0)
    repo = SqlManifestRepository(pg)
    a, b = late_commit(pg, repo)
    assert not found(repo, a)
    assert found(repo, b)


def test_workers_starting_together_migrate_once(pg_url: str) -> None:
    # Four engines (four worker processes' worth) migrate the same empty database at the same moment.
    from concurrent.futures import ThreadPoolExecutor

    engines = [make_engine(pg_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(migrate, engines))
        assert all(is_current(e) for e in engines)
    finally:
        for e in engines:
            e.dispose()


# --- the audit sealer and appends still in flight -----------------------------------------------------------


def _pins(key: KeySigner) -> list[str]:
    return [public_key_sha256(key.certificate.public_key())]


def test_every_ledger_table_takes_the_append_lock() -> None:
    assert {table.name for table, _ in SOURCES.values()} == LEDGER_TABLES


def _in_flight_append(pg: sa.Engine) -> tuple[sa.Connection, sa.Transaction]:
    """An API-key event inserted (seq 1 taken) but not committed, as a slow worker's append would be."""
    conn = pg.connect()
    tx = conn.begin()
    conn.execute(ledger_events.insert(), event_row("trust.added", "slow", {}))
    return conn, tx


def _waiting_for_append_lock(pg: sa.Engine) -> bool:
    with pg.connect() as conn:
        waiting = conn.execute(
            sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        ).scalar_one()
    return bool(waiting)


def test_the_sealer_waits_for_an_append_still_in_flight(pg: sa.Engine, pki: Pki) -> None:
    migrate(pg)
    key = load_pem_signer(CredentialFiles(pki.chain, pki.key, "test-key"))
    conn, tx = _in_flight_append(pg)
    record_event(pg, "trust.added", "fast", {})  # seq 2 commits first
    sealed: list[int] = []
    sealer = threading.Thread(target=lambda: sealed.append(Sealer(pg).seal(key).linked))
    sealer.start()
    assert wait_for(lambda: _waiting_for_append_lock(pg), timeout=30)
    assert sealed == []  # it has not sealed seq 2 past the in-flight seq 1
    tx.commit()
    conn.close()
    sealer.join(30)
    assert sealed == [2]
    rows, links, checkpoints = read_ledger(pg)
    report = verify_ledger(
        rows, links, checkpoints, trusted_keys=[public_key_sha256(key.certificate.public_key())]
    )
    assert report.intact, report.faults


def test_without_the_barrier_the_late_row_would_look_inserted(pg: sa.Engine, pki: Pki) -> None:
    """The hazard the barrier removes: sealing seq 2 while seq 1 is in flight turns seq 1's commit into an
    'inserted' fault."""
    migrate(pg)
    key = load_pem_signer(CredentialFiles(pki.chain, pki.key, "test-key"))
    conn, tx = _in_flight_append(pg)
    record_event(pg, "trust.added", "fast", {})
    Sealer(pg)._seal_batch(key, None)  # no barrier
    tx.commit()
    conn.close()
    rows, links, checkpoints = read_ledger(pg)
    report = verify_ledger(
        rows, links, checkpoints, trusted_keys=[public_key_sha256(key.certificate.public_key())]
    )
    assert report.first is not None
    assert (report.first.kind.value, report.first.seq) == ("inserted", 1)
