"""RFC 3161 timestamps on audit checkpoints, against a real local TSA (OpenSSL `ts`) and a real SQLite file:
the sealer stamps the newest checkpoint after the seal commits, the verifier checks the token covers that
checkpoint's signature and chains to the TSA root it is given, a token moved to another checkpoint or
signed by an untrusted TSA is a fault, and a TSA that fails leaves the checkpoint unstamped, not broken."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509

from app.pem_keys import CredentialFiles, load_pem_signer
from app.sealing import CheckpointStamper
from app.store.audit import Sealer, read_ledger, record_event
from app.store.db import make_engine, migrate
from app.store.tables import ledger_checkpoint_timestamps
from signing import AuditCheckpoint, AuditReport, KeySigner, public_key_sha256, verify_ledger
from tests.conftest import make_data_dir
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*
from tests.tsa import LocalTsa
from tests.waiting import wait_for

HALLMARK = Path(sys.executable).parent / "hallmark"


@pytest.fixture
def db(tmp_path: Path) -> sa.Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate(engine)
    return engine


@pytest.fixture(scope="module")
def key(pki: Pki) -> KeySigner:
    return load_pem_signer(CredentialFiles(pki.chain, pki.key, "test-key"))


@pytest.fixture(scope="module")
def tsa() -> Iterator[LocalTsa]:
    with LocalTsa() as server:
        yield server


def roots(server: LocalTsa) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(server.root_pem)


def check(db: sa.Engine, key: KeySigner, tsa_roots: list[x509.Certificate] | None) -> AuditReport:
    rows, links, checkpoints = read_ledger(db)
    pins = [public_key_sha256(key.certificate.public_key())]
    return verify_ledger(rows, links, checkpoints, trusted_keys=pins, tsa_roots=tsa_roots)


def seal_events(db: sa.Engine, key: KeySigner, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        record_event(db, "trust.added", f"profile-{i}", {"n": i})
    Sealer(db).seal(key)


def test_newest_checkpoint_is_stamped_and_verifies_against_the_tsa_root(
    db: sa.Engine, key: KeySigner, tsa: LocalTsa
) -> None:
    seal_events(db, key, 3)
    unstamped = check(db, key, roots(tsa))
    assert (unstamped.intact, unstamped.timestamped, unstamped.latest_timestamp) == (True, 0, None)  # control

    stamper = CheckpointStamper(tsa.url, 10.0)
    before = datetime.now(UTC)
    assert stamper.stamp_newest(Sealer(db)) == "stamped"
    assert stamper.stamp_newest(Sealer(db)) == "none"  # already stamped: no second request
    report = check(db, key, roots(tsa))
    assert report.intact, report.faults
    assert report.timestamped == 1
    assert report.latest_timestamp is not None
    size, when, tsa_checked = report.latest_timestamp
    assert size == 3
    assert tsa_checked is True
    assert before - timedelta(seconds=5) <= when <= datetime.now(UTC) + timedelta(seconds=5)

    # Without roots the binding is checked but the TSA is not: the time is reported as claimed.
    unchecked = check(db, key, None)
    assert unchecked.intact
    assert unchecked.latest_timestamp is not None
    assert unchecked.latest_timestamp[2] is False


def test_a_token_from_an_untrusted_tsa_is_a_fault(db: sa.Engine, key: KeySigner, tsa: LocalTsa) -> None:
    seal_events(db, key, 2)
    assert CheckpointStamper(tsa.url, 10.0).stamp_newest(Sealer(db)) == "stamped"
    with LocalTsa() as other:  # a TSA with its own, unrelated root
        report = check(db, key, roots(other))
    assert not report.intact
    assert report.first is not None
    assert "not signed by a trusted TSA" in report.first.message
    assert check(db, key, roots(tsa)).intact  # control: the right root


def test_a_token_moved_to_another_checkpoint_is_a_fault(db: sa.Engine, key: KeySigner, tsa: LocalTsa) -> None:
    stamper = CheckpointStamper(tsa.url, 10.0)
    seal_events(db, key, 2)
    assert stamper.stamp_newest(Sealer(db)) == "stamped"
    seal_events(db, key, 2, start=2)
    rows, links, checkpoints = read_ledger(db)
    first, second = checkpoints
    assert first.timestamp is not None
    assert second.timestamp is None
    moved = [replace(first, timestamp=None), replace(second, timestamp=first.timestamp)]
    pins = [public_key_sha256(key.certificate.public_key())]
    report = verify_ledger(rows, links, moved, trusted_keys=pins, tsa_roots=roots(tsa))
    assert not report.intact
    assert report.first is not None
    assert "does not cover this checkpoint's signature" in report.first.message
    honest = verify_ledger(rows, links, checkpoints, trusted_keys=pins, tsa_roots=roots(tsa))
    assert honest.intact  # control


@pytest.mark.parametrize("mode", ["error", "garbage"])
def test_a_failing_tsa_leaves_the_checkpoint_unstamped(
    db: sa.Engine, key: KeySigner, tsa: LocalTsa, mode: str
) -> None:
    seal_events(db, key, 2)
    with LocalTsa(mode) as broken:  # type: ignore[arg-type]
        assert CheckpointStamper(broken.url, 5.0).stamp_newest(Sealer(db)) == "failed"
    report = check(db, key, roots(tsa))
    assert (report.intact, report.timestamped) == (True, 0)
    assert CheckpointStamper(tsa.url, 10.0).stamp_newest(Sealer(db)) == "stamped"  # the next run catches up


def test_timestamps_are_append_only(db: sa.Engine, key: KeySigner, tsa: LocalTsa) -> None:
    seal_events(db, key, 1)
    assert CheckpointStamper(tsa.url, 10.0).stamp_newest(Sealer(db)) == "stamped"
    assert Sealer(db).record_timestamp(1, "AAAA") is False  # a second token for the same checkpoint
    with pytest.raises(sa.exc.DatabaseError), db.begin() as conn:
        conn.execute(ledger_checkpoint_timestamps.update().values(token="AAAA"))
    with pytest.raises(sa.exc.DatabaseError), db.begin() as conn:
        conn.execute(ledger_checkpoint_timestamps.delete())


def test_the_service_stamps_its_checkpoints(tmp_path: Path, pki: Pki, tsa: LocalTsa) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    def service(stamps: bool) -> list[AuditCheckpoint]:
        settings = Settings(
            data_dir=make_data_dir(tmp_path / f"var-{stamps}", pki),
            tsa_url=tsa.url,
            audit_seal_interval_seconds=0.05,
            audit_timestamps=stamps,
        )
        with TestClient(create_app(settings)) as client:
            rt = client.app.state.runtime  # type: ignore[attr-defined]
            rt.api_keys.create("k", {"sign"})
            assert wait_for(lambda: Sealer(rt.db).status().unsealed == 0, timeout=60)
            if stamps:
                assert wait_for(lambda: Sealer(rt.db).newest_unstamped() is None, timeout=60)
            checkpoints: list[AuditCheckpoint] = read_ledger(rt.db)[2]
        return checkpoints

    stamped = service(True)
    assert stamped
    assert stamped[-1].timestamp is not None
    plain = service(False)  # control: HALLMARK_AUDIT_TIMESTAMPS=false
    assert plain
    assert all(cp.timestamp is None for cp in plain)


def test_cli_seals_stamps_and_verifies_the_bundle_offline(tmp_path: Path, pki: Pki, tsa: LocalTsa) -> None:
    data_dir = make_data_dir(tmp_path / "var", pki)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLMARK_")}
    env |= {"HALLMARK_DATA_DIR": str(data_dir), "HALLMARK_TSA_URL": tsa.url}
    root = tmp_path / "tsa-root.pem"
    root.write_bytes(tsa.root_pem)

    def run(*args: str, expect: int = 0) -> str:
        command = [str(HALLMARK), *args]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
        assert done.returncode == expect, done.stdout + done.stderr
        return done.stdout

    run("trust", "add", "extra", str(pki.root))
    assert json.loads(run("audit", "seal", "--json"))["timestamp"] == "stamped"
    text = run("audit", "verify", "--tsa-root", str(root))
    assert "rows 1..1 existed by" in text
    assert "TSA verified against --tsa-root" in text

    bundle = tmp_path / "bundle.json"
    run("audit", "export", str(bundle))
    document = json.loads(bundle.read_text())
    assert document["checkpoints"][0]["timestamp"]
    report = json.loads(
        run(
            "audit",
            "verify-bundle",
            str(bundle),
            "--public-key",
            str(pki.chain),
            "--tsa-root",
            str(root),
            "--json",
        )
    )
    assert report["intact"] is True
    assert report["latest_timestamp"]["tsa_checked"] is True

    # The bundle's token altered by one byte: the offline check names the checkpoint.
    token = bytearray(base64.b64decode(document["checkpoints"][0]["timestamp"]))
    token[-10] ^= 0x01
    document["checkpoints"][0]["timestamp"] = base64.b64encode(bytes(token)).decode()
    bundle.write_text(json.dumps(document))
    out = run(
        "audit",
        "verify-bundle",
        str(bundle),
        "--public-key",
        str(pki.chain),
        "--tsa-root",
        str(root),
        expect=4,
    )
    assert "checkpoint 1 (size 1)" in out
