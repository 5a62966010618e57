"""The sealer on a real SQLite file: incremental checkpoints, one sealer at a time, rows below the sealed
head never sealed, the service's periodic sealing and its metrics, and the CLI changes it records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.pem_keys import CredentialFiles, load_pem_signer
from app.settings import Settings
from app.store.apikeys import ApiKeyStore
from app.store.audit import Sealer, read_ledger, record_event
from app.store.db import make_engine, migrate
from app.store.tables import ledger_checkpoints, ledger_events
from signing import AuditReport, KeySigner, LedgerError, public_key_sha256, verify_ledger
from tests.conftest import make_data_dir
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*

HALLMARK = Path(sys.executable).parent / "hallmark"


@pytest.fixture
def db(tmp_path: Path) -> sa.Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate(engine)
    return engine


@pytest.fixture(scope="module")
def key(pki: Pki) -> KeySigner:
    return load_pem_signer(CredentialFiles(pki.chain, pki.key, "test-key"))


def check(db: sa.Engine, key: KeySigner) -> AuditReport:
    rows, links, checkpoints = read_ledger(db)
    return verify_ledger(
        rows, links, checkpoints, trusted_keys=[public_key_sha256(key.certificate.public_key())]
    )


def add_events(db: sa.Engine, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        record_event(db, "trust.added", f"profile-{i}", {"n": i})


def test_incremental_seals_checkpoint_each_batch(db: sa.Engine, key: KeySigner) -> None:
    sealer = Sealer(db, batch=4)
    assert sealer.seal(key).linked == 0  # control: nothing to seal, no checkpoint
    add_events(db, 10)
    first = sealer.seal(key)
    assert (first.linked, first.tree_size, first.checkpoints) == (10, 10, 3)  # batches of 4, 4, 2
    add_events(db, 3, start=10)
    assert sealer.status().unsealed == 3
    second = sealer.seal(key)
    assert (second.linked, second.tree_size) == (3, 13)
    assert sealer.status().unsealed == 0
    report = check(db, key)
    assert report.intact
    assert report.checkpoints == 4


def test_concurrent_sealers_build_one_chain(db: sa.Engine, key: KeySigner) -> None:
    """Several sealers and writers at once: every row sealed exactly once, one consistent chain."""
    add_events(db, 20)
    errors: list[BaseException] = []

    def seal() -> None:
        try:
            for _ in range(5):
                Sealer(db, batch=7).seal(key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=seal) for _ in range(3)]
    writer = threading.Thread(target=add_events, args=(db, 20, 20))
    for t in [*threads, writer]:
        t.start()
    for t in [*threads, writer]:
        t.join()
    assert errors == []
    Sealer(db).seal(key)
    report = check(db, key)
    assert report.intact, report.faults
    assert report.sealed == 40


def test_a_row_below_the_sealed_head_is_never_sealed(db: sa.Engine, key: KeySigner) -> None:
    add_events(db, 3)
    with db.begin() as conn:  # a gap: seq 5 exists, 4 does not
        conn.execute(ledger_events.insert().values(seq=5, at=sa.func.now(), kind="k", subject="s", data="{}"))
    Sealer(db).seal(key)
    with db.begin() as conn:
        conn.execute(ledger_events.insert().values(seq=4, at=sa.func.now(), kind="k", subject="f", data="{}"))
    assert Sealer(db).seal(key).linked == 0
    report = check(db, key)
    first = report.first
    assert first is not None
    assert (first.kind.value, first.row_kind, first.seq) == ("inserted", "event", 4)


def test_sealer_refuses_links_no_checkpoint_signed(db: sa.Engine, key: KeySigner) -> None:
    add_events(db, 2)
    Sealer(db).seal(key)
    with db.connect() as conn:
        conn.exec_driver_sql("DROP TRIGGER ledger_checkpoints_no_delete")
        conn.execute(ledger_checkpoints.delete())
        conn.commit()
    add_events(db, 1, start=2)
    with pytest.raises(LedgerError, match="no checkpoint signed"):
        Sealer(db).seal(key)


def test_api_key_state_follows_the_events_across_stores(db: sa.Engine) -> None:
    """Two stores (two workers): a revocation or scope change through one is seen by the other."""
    one, two = ApiKeyStore(db), ApiKeyStore(db)
    key, token = one.create("k", {"sign"})
    assert two.authenticate(token) is not None
    changed = one.rescope(key.id, {"resolve"})
    assert changed is not None
    assert changed.scopes == frozenset({"resolve"})
    seen = two.authenticate(token)
    assert seen is not None
    assert seen.scopes == frozenset({"resolve"})
    assert one.revoke(key.id)
    assert two.authenticate(token) is None
    assert not one.revoke(key.id)  # control: revoking twice is refused
    assert [k.revoked_at is not None for k in two.list()] == [True]


def test_service_seals_periodically_and_reports_lag(tmp_path: Path, pki: Pki) -> None:
    from app.main import create_app

    settings = Settings(data_dir=make_data_dir(tmp_path / "var", pki), audit_seal_interval_seconds=0.05)
    with TestClient(create_app(settings)) as client:
        rt = client.app.state.runtime  # type: ignore[attr-defined]
        rt.api_keys.create("k", {"sign"})
        deadline = time.monotonic() + 60
        while Sealer(rt.db).status().unsealed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Sealer(rt.db).status().unsealed == 0
        metrics = client.get("/metrics").text
    assert "hallmark_audit_unsealed_rows" in metrics
    assert "hallmark_audit_seal_lag_seconds" in metrics
    chain_rows = [ln for ln in metrics.splitlines() if ln.startswith("hallmark_audit_chain_rows ")]
    assert chain_rows
    assert float(chain_rows[0].split()[1]) >= 1


def test_cli_changes_are_ledger_events(tmp_path: Path, pki: Pki) -> None:
    data_dir = make_data_dir(tmp_path / "var", pki)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLMARK_")}
    env["HALLMARK_DATA_DIR"] = str(data_dir)

    def run(*args: str) -> str:
        command = [str(HALLMARK), *args]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    token = run("apikey", "create", "--name", "ci", "--scope", "sign").strip().splitlines()[-1]
    key_id = token.split("_")[1]
    run("apikey", "scope", key_id, "--scope", "sign", "--scope", "resolve")
    run("apikey", "revoke", key_id)
    run("trust", "add", "extra", str(pki.root))
    run("trust", "remove", "extra")
    engine = make_engine(f"sqlite:///{data_dir / 'hallmark.db'}")
    with engine.connect() as conn:
        events = [
            (r.kind, r.subject) for r in conn.execute(ledger_events.select().order_by(ledger_events.c.seq))
        ]
    engine.dispose()
    assert events == [
        ("api_key.created", key_id),
        ("api_key.scoped", key_id),
        ("api_key.revoked", key_id),
        ("trust.added", "extra"),
        ("trust.removed", "extra"),
    ]
    run("audit", "seal")
    report = json.loads(run("audit", "verify", "--json"))
    assert report["intact"] is True
    assert report["sealed_rows"] >= 5


# --- the migration ------------------------------------------------------------------------------------


A1, B2 = "a1" * 8, "b2" * 8  # key ids as create() makes them: 16 hex digits


def test_migration_0007_keeps_existing_api_keys_working(tmp_path: Path) -> None:
    """Keys made before 0007 (rows in api_keys only) become ledger events: the active one still
    authenticates, the revoked one stays revoked; downgrading removes the chain tables and triggers."""
    from datetime import UTC, datetime

    from alembic import command

    from app.store.apikeys import PREFIX, _digest
    from app.store.db import alembic_config
    from app.store.tables import api_keys

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    try:
        command.upgrade(alembic_config(url), "0006")
        now = datetime.now(UTC)
        with engine.begin() as conn:
            for key_id, revoked in ((A1, None), (B2, now)):
                conn.execute(
                    api_keys.insert().values(
                        id=key_id, name=key_id, secret_sha256=_digest(f"secret-{key_id}"), scopes="sign",
                        created_at=now, revoked_at=revoked,
                    )
                )  # fmt: skip
        migrate(engine)
        store = ApiKeyStore(engine)
        assert store.authenticate(f"{PREFIX}_{A1}_secret-{A1}") is not None
        assert store.authenticate(f"{PREFIX}_{A1}_wrong") is None  # control: the secret still matters
        assert store.authenticate(f"{PREFIX}_{B2}_secret-{B2}") is None
        with engine.connect() as conn:
            names = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars()
            assert "signatures_no_update" in set(names)
        command.downgrade(alembic_config(url), "0006")
        tables = sa.inspect(engine).get_table_names()
        assert "ledger_events" not in tables
        assert "api_keys" in tables
    finally:
        engine.dispose()
