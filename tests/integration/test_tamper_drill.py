"""The tamper drill (issue 10): as the database superuser (raw sqlite3, triggers dropped) UPDATE, DELETE,
INSERT and reorder ledger rows, and un-revoke an API key by editing its table. `hallmark audit verify`
(a real process) names the first fault with its kind and seq and exits 4; the untouched copy exits 0; the
un-revoked key stays refused (401) through HTTP while an untouched key still signs."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.conftest import make_data_dir
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*

HALLMARK = Path(sys.executable).parent / "hallmark"
FORM = {"model_name": "test-diffusion", "model_version": "2.1"}
SIGNS = 5
LEDGER_TABLES = ("signatures", "key_events", "ledger_events", "ledger_links", "ledger_checkpoints")


def hallmark(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLMARK_")}
    env.update(HALLMARK_DATA_DIR=str(data_dir), COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [str(HALLMARK), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def app_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, default_provider="Example AI", audit_seal_interval_seconds=0)


def sign(client: TestClient, token: str, data: bytes) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    return client.post("/v1/sign", headers=headers, data=FORM, files={"file": ("in.jpg", data)})


@dataclass(frozen=True)
class Sealed:
    data_dir: Path
    active_token: str
    revoked_token: str
    revoked_id: str
    jpeg: bytes


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory, pki: Pki, interop_dir: Path) -> Sealed:
    """A data directory with SIGNS signatures, two API keys (one revoked), all sealed by the CLI."""
    from app.main import create_app

    data_dir = make_data_dir(tmp_path_factory.mktemp("drill") / "var", pki)
    jpeg = (interop_dir / "no_manifest.jpg").read_bytes()
    with TestClient(create_app(app_settings(data_dir))) as client:
        keys = client.app.state.runtime.api_keys  # type: ignore[attr-defined]
        _, active = keys.create("drill", {"sign"})
        revoked_key, revoked = keys.create("to-revoke", {"sign"})
        for _ in range(SIGNS):
            assert sign(client, active, jpeg).status_code == 200
        assert keys.revoke(revoked_key.id)
    seal = hallmark(data_dir, "audit", "seal")
    assert seal.returncode == 0, seal.stderr
    return Sealed(data_dir, active, revoked, revoked_key.id, jpeg)


@pytest.fixture
def copy(sealed: Sealed, tmp_path: Path) -> Path:
    """A private copy of the sealed data directory to tamper with."""
    return Path(shutil.copytree(sealed.data_dir, tmp_path / "copy"))


def as_superuser(data_dir: Path, *statements: str) -> None:
    """Raw sqlite3, like an operator with the file: drop the append-only triggers, then edit."""
    conn = sqlite3.connect(data_dir / "hallmark.db")
    try:
        for table in LEDGER_TABLES:
            for action in ("update", "delete"):
                conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def verify(data_dir: Path) -> tuple[int, str, dict[str, Any]]:
    text = hallmark(data_dir, "audit", "verify")
    as_json = hallmark(data_dir, "audit", "verify", "--json")
    assert text.returncode == as_json.returncode
    return text.returncode, text.stdout, json.loads(as_json.stdout)


# --- the control ----------------------------------------------------------------------------------------


def test_untouched_ledger_verifies_intact(copy: Path) -> None:
    code, out, report = verify(copy)
    assert code == 0, out
    assert "INTACT" in out
    assert report["intact"] is True
    # every signature, both API keys' creation and the revocation are in the chain
    assert report["sealed_rows"] >= SIGNS + 3
    assert report["checkpointed_rows"] == report["sealed_rows"]
    assert report["unsealed_rows"] == {}


def test_triggers_refuse_update_and_delete_without_the_superuser(copy: Path) -> None:
    conn = sqlite3.connect(copy / "hallmark.db")
    try:
        for statement in (
            "UPDATE signatures SET model_name = 'forged' WHERE seq = 3",
            "DELETE FROM signatures WHERE seq = 3",
            "UPDATE ledger_events SET data = '{}'",
            "DELETE FROM ledger_checkpoints",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
        # Control: an insert is allowed (that is how rows are written).
        conn.execute("INSERT INTO ledger_sealer (id) VALUES (2)")
    finally:
        conn.close()


# --- the drill ----------------------------------------------------------------------------------------


def shift_up_from(seq: int) -> list[str]:
    """Move signatures seq >= `seq` one up (via negative seqs: the primary key stays unique)."""
    return [
        f"UPDATE signatures SET seq = -seq WHERE seq >= {seq}",
        "UPDATE signatures SET seq = 1 - seq WHERE seq < 0",
    ]


FORGED = (
    "INSERT INTO signatures (seq, id, created_at, api_key_id, provider, model_name, model_version, "
    "digital_source_type, media_type, output_mode, input_sha256, output_sha256, manifest_id, key_id, "
    "certificate_sha256, timestamped) SELECT 3, 'forged-id', created_at, api_key_id, provider, 'forged', "
    "model_version, digital_source_type, media_type, output_mode, input_sha256, output_sha256, "
    "'urn:c2pa:forged', key_id, certificate_sha256, timestamped FROM signatures WHERE seq = 2"
)

DRILLS: dict[str, tuple[list[str], str, int]] = {
    "update": (["UPDATE signatures SET model_name = 'forged' WHERE seq = 3"], "altered", 3),
    "delete": (["DELETE FROM signatures WHERE seq = 3"], "removed", 3),
    "insert": ([*shift_up_from(3), FORGED], "inserted", 3),
    "reorder": (
        [
            "UPDATE signatures SET seq = -1 WHERE seq = 2",
            "UPDATE signatures SET seq = 2 WHERE seq = 4",
            "UPDATE signatures SET seq = 4 WHERE seq = -1",
        ],
        "reordered",
        2,
    ),
}


@pytest.mark.parametrize("drill", DRILLS, ids=list(DRILLS))
def test_audit_verify_pinpoints_each_tamper(copy: Path, drill: str) -> None:
    statements, kind, seq = DRILLS[drill]
    as_superuser(copy, *statements)
    code, out, report = verify(copy)
    assert code == 4, out
    assert f"TAMPERED: first fault: {kind} signature seq {seq} " in out
    assert report["intact"] is False
    assert report["first_fault"]["kind"] == kind
    assert report["first_fault"]["row_kind"] == "signature"
    assert report["first_fault"]["seq"] == seq


def test_deleting_the_revocation_event_is_named(sealed: Sealed, copy: Path) -> None:
    """Un-revoking for real means removing the api_key.revoked event: verify names it."""
    conn = sqlite3.connect(copy / "hallmark.db")
    try:
        (seq,) = conn.execute(
            "SELECT seq FROM ledger_events WHERE kind = 'api_key.revoked' AND subject = ?",
            (sealed.revoked_id,),
        ).fetchone()
    finally:
        conn.close()
    as_superuser(copy, f"DELETE FROM ledger_events WHERE seq = {seq}")
    code, out, report = verify(copy)
    assert code == 4, out
    assert f"TAMPERED: first fault: removed event seq {seq} " in out
    assert report["first_fault"]["seq"] == seq


def test_editing_a_link_to_match_an_altered_row_breaks_the_signed_checkpoint(copy: Path) -> None:
    """A superuser who also re-hashes the altered row's link is caught by the chain and the signed root."""
    from app.store.audit import ledger_row
    from app.store.db import make_engine
    from app.store.tables import signatures

    as_superuser(copy, "UPDATE signatures SET model_name = 'forged' WHERE seq = 3")
    engine = make_engine(f"sqlite:///{copy / 'hallmark.db'}")
    with engine.connect() as conn:
        row = conn.execute(signatures.select().where(signatures.c.seq == 3)).one()._mapping
    engine.dispose()
    assert row["model_name"] == "forged"
    leaf = ledger_row("signature", row).leaf().hex()  # what the sealer would have linked
    as_superuser(
        copy, f"UPDATE ledger_links SET leaf_hash = '{leaf}' WHERE source = 'signature' AND row_seq = 3"
    )
    code, out, report = verify(copy)
    assert code == 4, out
    assert {f["kind"] for f in report["faults"]} == {"link", "checkpoint"}, out
    assert "tree root does not match" in out


# --- API keys -------------------------------------------------------------------------------------------


def status_with(data_dir: Path, *tokens: str, jpeg: bytes) -> list[int]:
    """Sign once per token through HTTP in a freshly started app (nothing cached from before)."""
    from app.main import create_app

    with TestClient(create_app(app_settings(data_dir))) as client:
        return [sign(client, token, jpeg).status_code for token in tokens]


def test_unrevoked_key_stays_refused(sealed: Sealed, copy: Path) -> None:
    as_superuser(copy, f"UPDATE api_keys SET revoked_at = NULL WHERE id = '{sealed.revoked_id}'")
    conn = sqlite3.connect(copy / "hallmark.db")
    try:
        revoked_at = conn.execute(
            "SELECT revoked_at FROM api_keys WHERE id = ?", (sealed.revoked_id,)
        ).fetchone()
    finally:
        conn.close()
    assert revoked_at == (None,)  # the table says "active" ...
    # ... and the key is still refused; the untouched key (control) still signs.
    assert status_with(copy, sealed.revoked_token, sealed.active_token, jpeg=sealed.jpeg) == [401, 200]


def test_key_table_edits_change_nothing(sealed: Sealed, copy: Path) -> None:
    """Replacing the stored secret hash or the scopes in the table gives no key new powers."""
    as_superuser(
        copy,
        "UPDATE api_keys SET scopes = 'resolve'",  # the sign scope taken away in the table only
        f"UPDATE api_keys SET secret_sha256 = '{'0' * 64}' WHERE id != '{sealed.revoked_id}'",
    )
    assert status_with(copy, sealed.active_token, jpeg=sealed.jpeg) == [200]


# --- the bundle ----------------------------------------------------------------------------------------


def test_exported_bundle_verifies_offline_with_the_public_key(sealed: Sealed, copy: Path, pki: Pki) -> None:
    bundle = copy / "bundle.json"
    assert hallmark(copy, "audit", "export", str(bundle)).returncode == 0
    offline = Path(shutil.copyfile(bundle, copy.parent / "alone.json"))
    shutil.rmtree(copy)  # no database, no keys: the bundle and the public key alone
    check: Callable[..., subprocess.CompletedProcess[str]] = lambda *a: hallmark(  # noqa: E731
        copy.parent / "nowhere", "audit", "verify-bundle", str(offline), *a
    )
    ok = check("--public-key", str(pki.chain))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "INTACT" in ok.stdout
    # Negative control 1: another public key (the root CA's) is not the service's.
    other = check("--public-key", str(pki.root))
    assert other.returncode == 4
    assert "not trusted" in other.stdout
    # Negative control 2: one field of one row changed in the bundle.
    document = json.loads(offline.read_text())
    row = next(r for r in document["rows"] if r["kind"] == "signature" and r["seq"] == 2)
    row["fields"]["model_name"] = "forged"
    offline.write_text(json.dumps(document))
    altered = check("--public-key", str(pki.chain))
    assert altered.returncode == 4
    assert "TAMPERED: first fault: altered signature seq 2 " in altered.stdout


def test_inclusion_proof_of_one_signature(copy: Path, pki: Pki) -> None:
    conn = sqlite3.connect(copy / "hallmark.db")
    try:
        (manifest_id,) = conn.execute("SELECT manifest_id FROM signatures WHERE seq = 2").fetchone()
    finally:
        conn.close()
    proof = copy.parent / "proof.json"
    made = hallmark(copy, "audit", "prove", manifest_id, "--out", str(proof))
    assert made.returncode == 0, made.stderr
    held = hallmark(copy, "audit", "verify-proof", str(proof), "--public-key", str(pki.chain))
    assert held.returncode == 0, held.stdout + held.stderr
    assert held.stdout.startswith("PROVEN: signature seq 2 ")
    # Negative control: the proof's row altered.
    document = json.loads(proof.read_text())
    document["row"]["fields"]["model_name"] = "forged"
    proof.write_text(json.dumps(document))
    refused = hallmark(copy, "audit", "verify-proof", str(proof), "--public-key", str(pki.chain))
    assert refused.returncode == 4
    assert refused.stdout.startswith("NOT PROVEN: the row is not in the tree")
