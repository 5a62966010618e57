"""Sign intents (intent -> sign -> commit -> respond): every sign records its intent before the engine signs;
the ledger row's commit completes it, a failure or a cancel abandons it, and a process killed in between
leaves it open, which `hallmark audit verify` reports without calling the chain tampered.

Real engine, real database (SQLite; PostgreSQL in the second pass of `make test`), real `hallmark serve`
and CLI processes for the crash."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.main import create_app
from app.runtime import open_database
from app.settings import Settings
from app.store.db import make_engine
from app.store.intents import ABANDONED, COMPLETED, OPEN, SignIntent, SqlSignIntents, complete_intent
from app.store.ledger import SqlLedger
from app.store.tables import sign_intents, signatures
from signing import new_manifest_id
from tests.conftest import make_data_dir
from tests.e2e.server import API_KEY_LINE, HALLMARK, Server, serve
from tests.pki import TestPki as Pki
from tests.processes import descendants
from tests.tsa import LocalTsa
from tests.waiting import wait_for

FORM = {"model_name": "test-diffusion", "model_version": "2.1"}
WAIT_S = 60.0


@pytest.fixture
def jpeg(interop_dir: Path) -> bytes:
    return (interop_dir / "no_manifest.jpg").read_bytes()


def runtime(client: TestClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]


def token_for(client: TestClient) -> str:
    _, token = runtime(client).api_keys.create("intents", {"sign"})
    return str(token)


def sign(client: TestClient, token: str, data: bytes, **headers: str) -> Any:
    return client.post(
        "/v1/sign",
        headers={"Authorization": f"Bearer {token}", **headers},
        data=FORM,
        files={"file": ("in.jpg", data, "image/jpeg")},
    )


def all_intents(db: sa.Engine) -> list[SignIntent]:
    with db.connect() as conn:
        rows = conn.execute(sign_intents.select().order_by(sign_intents.c.created_at)).all()
    return [SignIntent(**dict(r._mapping)) for r in rows]


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment: this test's data directory and, in the PostgreSQL pass, its database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLMARK_")}
    env.update(HALLMARK_DATA_DIR=str(data_dir), HALLMARK_AUDIT_TIMESTAMPS="false", **extra)
    if "HALLMARK_DATABASE_URL" in os.environ:
        env["HALLMARK_DATABASE_URL"] = os.environ["HALLMARK_DATABASE_URL"]
    return env


def passed_on(data_dir: Path) -> dict[str, str]:
    """What a `hallmark serve` of this test gets besides its data directory (serve() adds that)."""
    env = {k: v for k, v in cli_env(data_dir).items() if k.startswith("HALLMARK_")}
    env.pop("HALLMARK_DATA_DIR")
    return env


def database(data_dir: Path) -> sa.Engine:
    """The database the service of `data_dir` uses (this test's PostgreSQL one in the second pass)."""
    return make_engine(os.environ.get("HALLMARK_DATABASE_URL") or f"sqlite:///{data_dir / 'hallmark.db'}")


def hallmark(data_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HALLMARK), *args], capture_output=True, text=True, env=cli_env(data_dir, **extra), timeout=120,
        check=False,
    )  # fmt: skip


def audit_verify(data_dir: Path, **extra: str) -> tuple[int, dict[str, Any]]:
    done = hallmark(data_dir, "audit", "verify", "--json", **extra)
    assert done.returncode in (0, 4), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


def seal(data_dir: Path) -> None:
    done = hallmark(data_dir, "audit", "seal")
    assert done.returncode == 0, done.stderr


# --- a normal sign ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 0], ids=["isolated", "in-process"])
def test_a_sign_leaves_a_completed_intent_and_a_clean_audit(
    tmp_path: Path, pki: Pki, jpeg: bytes, workers: int
) -> None:
    data_dir = make_data_dir(tmp_path / "var", pki)
    settings = Settings(data_dir=data_dir, default_provider="Example AI", isolation_workers=workers)
    with TestClient(create_app(settings)) as client:
        token = token_for(client)
        response = sign(client, token, jpeg)
        assert response.status_code == 200, response.text
        rt = runtime(client)
        (row,) = rt.ledger.list()
        (intent,) = all_intents(rt.db)
    assert intent.manifest_id == response.headers["Hallmark-Manifest-Id"] == row.manifest_id
    assert intent.state == COMPLETED
    assert intent.signature_id == row.id
    assert intent.reason is None
    assert intent.key_id == row.key_id == response.headers["Hallmark-Signing-Key-Id"]
    assert intent.certificate_sha256 == row.certificate_sha256
    assert intent.input_sha256 == hashlib.sha256(jpeg).hexdigest() == row.input_sha256
    assert intent.api_key_id == token.split("_")[1] == row.api_key_id
    assert intent.request_id == response.headers["X-Request-Id"] == row.request_id
    assert intent.created_at <= (intent.closed_at or 0) < intent.due_at
    assert intent.due_at - intent.created_at == pytest.approx(2 * settings.verify_deadline_seconds)
    seal(data_dir)
    code, report = audit_verify(data_dir, HALLMARK_AUDIT_INTENT_GRACE_SECONDS="0")
    assert (code, report["intact"], report["first_fault"]) == (0, True, None)
    assert report["sealed_rows"] >= 2  # the API key's event and the signature
    assert report["uncommitted_signs"] == {"count": 0, "oldest_at": None, "in_progress": 0, "intents": []}
    done = hallmark(data_dir, "audit", "verify")
    assert "signatures attempted but never committed: 0; 0 in progress" in done.stdout
    assert done.stdout.rstrip().endswith("INTACT: every sealed row is present, unchanged and in order")


def test_an_intent_is_completed_only_by_its_own_ledger_row(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    """The stores alone: the commit of one manifest's ledger row leaves another manifest's intent open;
    abandoning a completed intent changes nothing."""
    data_dir = make_data_dir(tmp_path / "var", pki)
    with TestClient(create_app(Settings(data_dir=data_dir, default_provider="Example AI"))) as client:
        response = sign(client, token_for(client), jpeg)
        assert response.status_code == 200
        rt = runtime(client)
        (signed,) = rt.ledger.list()
        db = rt.db
        entry = replace(signed, id=str(uuid.uuid4()), manifest_id=new_manifest_id())  # a second signature
        intents, ledger = SqlSignIntents(db), SqlLedger(db)
        facts: dict[str, Any] = {
            "key_id": "k", "certificate_sha256": "c" * 64, "input_sha256": "i" * 64, "api_key_id": None,
            "request_id": None, "deadline_seconds": 60.0,
        }  # fmt: skip
        mine = intents.open(manifest_id=entry.manifest_id, **facts)
        other = intents.open(manifest_id=new_manifest_id(), **facts)
        ledger.record(entry)
        state = {i.id: i for i in all_intents(db)}
        assert (state[mine].state, state[mine].signature_id) == (COMPLETED, entry.id)
        assert (state[other].state, state[other].signature_id) == (OPEN, None)  # negative control
        assert intents.abandon(mine, "LateError") is False  # already completed: stays completed
        assert intents.abandon(other, "ClientGoneError") is True
        state = {i.id: i for i in all_intents(db)}
    assert (state[mine].state, state[mine].reason) == (COMPLETED, None)
    assert (state[other].state, state[other].reason) == (ABANDONED, "ClientGoneError")


def test_the_cli_sign_records_its_intent(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    data_dir = make_data_dir(tmp_path / "var", pki)
    source = tmp_path / "in.jpg"
    source.write_bytes(jpeg)
    done = hallmark(data_dir, "sign", str(source), "--model-name", "m", "--model-version", "1")
    assert done.returncode == 0, done.stderr
    manifest_id = json.loads(done.stdout)["manifest_id"]
    db = database(data_dir)
    (intent,) = all_intents(db)
    db.dispose()
    assert (intent.manifest_id, intent.state, intent.api_key_id) == (manifest_id, COMPLETED, None)
    assert intent.input_sha256 == hashlib.sha256(jpeg).hexdigest()


# --- failed and cancelled signs ---------------------------------------------------------------------------


def test_a_failed_idempotent_sign_abandons_its_intent(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    """Signed, then refused before the commit (result too large to keep): abandoned with the error's type,
    no ledger row. The control: the same request with room for the result completes its intent, and its
    replay writes no second intent."""
    data_dir = make_data_dir(tmp_path / "var", pki)
    settings = Settings(data_dir=data_dir, idempotency_max_result_bytes=1000)
    with TestClient(create_app(settings)) as client:
        token = token_for(client)
        refused = sign(client, token, jpeg, **{"Idempotency-Key": "k-1"})
        assert refused.status_code == 413, refused.text
        rt = runtime(client)
        (intent,) = all_intents(rt.db)
        assert (intent.state, intent.reason, intent.signature_id) == (
            ABANDONED, "IdempotentResultTooLargeError", None,
        )  # fmt: skip
        assert intent.closed_at is not None
        assert rt.ledger.count() == 0
        assert "too large" not in (intent.reason or "")  # the type, not the message
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        token = token_for(client)
        first = sign(client, token, jpeg, **{"Idempotency-Key": "k-2"})
        again = sign(client, token, jpeg, **{"Idempotency-Key": "k-2"})
        assert (first.status_code, again.status_code) == (200, 200)
        assert again.headers["Hallmark-Idempotent-Replay"] == "true"
        done = [i for i in all_intents(runtime(client).db) if i.state == COMPLETED]
        (row,) = runtime(client).ledger.list()
    assert len(done) == 1
    assert (done[0].manifest_id, done[0].signature_id) == (first.headers["Hallmark-Manifest-Id"], row.id)


def test_a_sign_the_tsa_fails_abandons_its_intent(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with LocalTsa(mode="error") as tsa:
        data_dir = make_data_dir(tmp_path / "var", pki)
        settings = Settings(data_dir=data_dir, tsa_url=tsa.url, tsa_policy="require")
        with TestClient(create_app(settings)) as client:
            response = sign(client, token_for(client), jpeg)
            assert response.status_code == 503, response.text
            (intent,) = all_intents(runtime(client).db)
            assert runtime(client).ledger.count() == 0
    assert intent.state == ABANDONED
    assert intent.reason == "TimestampAuthorityError"
    assert intent.input_sha256 == hashlib.sha256(jpeg).hexdigest()


def test_no_intent_no_signature(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    """When the intent cannot be written, nothing is signed: 503 and no ledger row. The control: the same
    service signs once the table is back."""
    data_dir = make_data_dir(tmp_path / "var", pki)
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        token = token_for(client)
        rt = runtime(client)
        with rt.db.begin() as conn:
            conn.execute(sa.text("ALTER TABLE sign_intents RENAME TO sign_intents_away"))
        refused = sign(client, token, jpeg)
        assert refused.status_code == 503, refused.text
        assert refused.json()["type"].endswith("/ledger-unavailable")
        assert "before signing" in refused.json()["detail"]
        assert rt.ledger.count() == 0
        with rt.db.begin() as conn:
            conn.execute(sa.text("ALTER TABLE sign_intents_away RENAME TO sign_intents"))
        assert sign(client, token, jpeg).status_code == 200
        assert rt.ledger.count() == 1


def test_a_job_has_its_intent_completed_or_abandoned_when_cancelled(
    tmp_path: Path, pki: Pki, jpeg: bytes
) -> None:
    """A job signs through the same path: a cancelled job's sign (waiting on a silent TSA) is abandoned
    with the cancel's error type; the job that signs has its intent completed, naming the POST."""
    with LocalTsa(mode="blackhole") as tsa:
        data_dir = make_data_dir(tmp_path / "var", pki)
        settings = Settings(data_dir=data_dir, tsa_url=tsa.url, tsa_deadline_seconds=30, tsa_policy="require")
        with TestClient(create_app(settings)) as client:
            auth = {"Authorization": f"Bearer {token_for(client)}"}
            job = client.post(
                "/v1/jobs", headers=auth, data=FORM, files={"file": ("in.jpg", jpeg, "image/jpeg")}
            ).json()
            assert wait_for(lambda: tsa.requests == 1, timeout=WAIT_S)
            (open_intent,) = all_intents(runtime(client).db)
            assert open_intent.state == OPEN  # the engine is signing: the intent is there already
            assert client.delete(f"/v1/jobs/{job['id']}", headers=auth).json()["state"] == "cancelled"
            assert wait_for(lambda: all_intents(runtime(client).db)[0].state != OPEN, timeout=WAIT_S)
            (intent,) = all_intents(runtime(client).db)
            assert runtime(client).ledger.count() == 0
    assert (intent.id, intent.state, intent.reason) == (open_intent.id, ABANDONED, "ClientGoneError")
    # The job's intent is due by its own deadline (HALLMARK_JOB_DEADLINE_SECONDS), not the decode worker's.
    assert intent.due_at - intent.created_at >= settings.job_deadline_seconds
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        auth = {"Authorization": f"Bearer {token_for(client)}"}
        posted = client.post(
            "/v1/jobs", headers=auth, data=FORM, files={"file": ("in.jpg", jpeg, "image/jpeg")}
        )
        job_id = posted.json()["id"]
        assert wait_for(
            lambda: client.get(f"/v1/jobs/{job_id}", headers=auth).json()["state"] == "succeeded",
            timeout=WAIT_S,
        )
        (row,) = runtime(client).ledger.list()
        completed = [i for i in all_intents(runtime(client).db) if i.state == COMPLETED]
    assert len(completed) == 1
    assert (completed[0].manifest_id, completed[0].signature_id) == (row.manifest_id, row.id)
    assert completed[0].request_id == posted.headers["X-Request-Id"] == row.request_id


# --- the crash: SIGKILL between the engine and the commit -------------------------------------------------


def kill_service(server: Server) -> None:
    """SIGKILL the service and every process under it (its decode workers), as a crash would."""
    pids = [server.proc.pid, *descendants(server.proc.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.proc.wait(30)


def metric(server: Server, name: str) -> float | None:
    text = httpx2.get(server.base_url + "/metrics", timeout=30).text
    line = next((ln for ln in text.splitlines() if ln.startswith(name + " ")), None)
    return float(line.split()[1]) if line else None


@pytest.fixture
def crashed(tmp_path: Path, jpeg: bytes) -> tuple[Path, SignIntent, str]:
    """A real `hallmark serve --dev` whose sign waits on a silent TSA (the engine is signing: the claim's
    signature is made, its timestamp never comes) is killed with SIGKILL; the intent it left, and the API
    key (`serve --dev` prints one only on the first start)."""
    data_dir = tmp_path / "var"
    env = passed_on(data_dir)
    with LocalTsa(mode="blackhole") as tsa:
        service = serve(
            data_dir, tmp_path / "logs", "--dev",
            HALLMARK_TSA_URL=tsa.url, HALLMARK_TSA_POLICY="require", HALLMARK_TSA_DEADLINE_SECONDS="30",
            HALLMARK_VERIFY_DEADLINE_SECONDS="4", **env,
        )  # fmt: skip
        with service as server:
            server.wait_until_ready()
            token = server.wait_for_line(API_KEY_LINE)
            # No lost sign yet: the metric's negative control (counted at each scrape).
            assert wait_for(lambda: metric(server, "hallmark_audit_uncommitted_signs") == 0.0, timeout=WAIT_S)
            answers: list[object] = []

            def post() -> None:
                try:
                    answers.append(
                        httpx2.post(
                            server.base_url + "/v1/sign",
                            headers={"Authorization": f"Bearer {token}"},
                            data=FORM,
                            files={"file": ("in.jpg", jpeg, "image/jpeg")},
                            timeout=WAIT_S,
                        )
                    )
                except httpx2.TransportError as exc:
                    answers.append(exc)

            client = threading.Thread(target=post)
            client.start()
            assert wait_for(lambda: tsa.requests == 1, timeout=WAIT_S), server.output()
            kill_service(server)
            client.join(WAIT_S)
            assert len(answers) == 1
            assert isinstance(answers[0], httpx2.TransportError)  # no answer, no file
    db = database(data_dir)
    try:
        (intent,) = all_intents(db)
        with db.connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(signatures)).scalar_one()
    finally:
        db.dispose()
    assert rows == 0
    return data_dir, intent, token


def test_a_sign_killed_mid_way_is_reported_as_never_committed(crashed: tuple[Path, SignIntent, str]) -> None:
    data_dir, intent, token = crashed
    assert intent.state == OPEN
    assert intent.key_id == "default"
    assert intent.api_key_id == token.split("_")[1]
    assert intent.due_at - intent.created_at == pytest.approx(8.0)  # twice the decode worker's deadline
    while time.time() <= intent.due_at:
        time.sleep(0.2)
    code, report = audit_verify(data_dir, HALLMARK_AUDIT_INTENT_GRACE_SECONDS="0")
    assert code == 0  # a crash is not tampering: the chain is intact
    assert report["intact"] is True
    lost = report["uncommitted_signs"]
    assert (lost["count"], lost["in_progress"]) == (1, 0)
    assert lost["oldest_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(intent.created_at))
    (listed,) = lost["intents"]
    assert listed["manifest_id"] == intent.manifest_id
    assert listed["input_sha256"] == intent.input_sha256
    done = hallmark(data_dir, "audit", "verify", HALLMARK_AUDIT_INTENT_GRACE_SECONDS="0")
    assert done.returncode == 0
    assert f"signatures attempted but never committed: 1 (oldest at {lost['oldest_at']})" in done.stdout
    assert intent.manifest_id in done.stdout
    # Negative control: within the grace period (the default, 300 s) the same intent is still "in progress",
    # not reported as a lost sign.
    code, report = audit_verify(data_dir)
    counts = report["uncommitted_signs"]["count"], report["uncommitted_signs"]["in_progress"]
    assert (code, *counts) == (0, 0, 1)


def test_after_the_crash_the_service_signs_and_counts_the_lost_sign(
    crashed: tuple[Path, SignIntent, str], tmp_path: Path, jpeg: bytes
) -> None:
    """Restarted (no TSA), the service signs normally: its own intent is completed, the crashed one stays
    open (nothing closes it but a commit), the metric counts it, and after a seal the chain is intact."""
    data_dir, lost, token = crashed
    while time.time() <= lost.due_at:
        time.sleep(0.2)
    env = passed_on(data_dir)
    with serve(
        data_dir, tmp_path / "logs2", "--dev", HALLMARK_AUDIT_INTENT_GRACE_SECONDS="0", **env
    ) as server:
        server.wait_until_ready()
        response = httpx2.post(
            server.base_url + "/v1/sign",
            headers={"Authorization": f"Bearer {token}"},
            data=FORM,
            files={"file": ("in.jpg", jpeg, "image/jpeg")},
            timeout=WAIT_S,
        )
        assert response.status_code == 200, response.text
        assert wait_for(lambda: metric(server, "hallmark_audit_uncommitted_signs") == 1.0, timeout=WAIT_S)
    seal(data_dir)
    code, report = audit_verify(data_dir, HALLMARK_AUDIT_INTENT_GRACE_SECONDS="0")
    assert (code, report["intact"]) == (0, True)
    assert report["uncommitted_signs"]["count"] == 1
    assert report["uncommitted_signs"]["intents"][0]["manifest_id"] == lost.manifest_id
    db = database(data_dir)
    intents = {i.manifest_id: i for i in all_intents(db)}
    db.dispose()
    assert intents[lost.manifest_id].state == OPEN
    assert intents[response.headers["Hallmark-Manifest-Id"]].state == COMPLETED


# --- retention: closed intents are pruned, open ones never -----------------------------------------------

DAY = 86400.0
FACTS: dict[str, Any] = {
    "key_id": "k", "certificate_sha256": "c" * 64, "input_sha256": "i" * 64, "api_key_id": None,
    "request_id": None, "deadline_seconds": 60.0,
}  # fmt: skip


def add_intent(db: sa.Engine, age_days: float, state: str) -> str:
    """An intent opened `age_days` ago (due a minute later), left in `state`; its id."""
    store = SqlSignIntents(db, clock=lambda: time.time() - age_days * DAY)
    manifest_id = new_manifest_id()
    intent_id = store.open(manifest_id=manifest_id, **FACTS)
    if state == COMPLETED:
        with db.begin() as conn:
            complete_intent(conn, manifest_id=manifest_id, signature_id=str(uuid.uuid4()))
    elif state == ABANDONED:
        assert store.abandon(intent_id, "ClientGoneError")
    return intent_id


def intent_states(db: sa.Engine) -> dict[str, str]:
    return {i.id: i.state for i in all_intents(db)}


def seed(db: sa.Engine) -> tuple[set[str], set[str]]:
    """Five closed intents past a 30-day retention (to delete), and the ones to keep: closed ones within it,
    open ones however old (crash evidence)."""
    old = {add_intent(db, 40, COMPLETED) for _ in range(3)}
    old |= {add_intent(db, 31, ABANDONED) for _ in range(2)}
    kept = {
        add_intent(db, 29, COMPLETED), add_intent(db, 1, ABANDONED), add_intent(db, 0, COMPLETED),
        add_intent(db, 400, OPEN), add_intent(db, 31, OPEN), add_intent(db, 0, OPEN),
    }  # fmt: skip
    assert {intent_states(db)[i] for i in old} == {COMPLETED, ABANDONED}
    return old, kept


def migrated(tmp_path: Path, pki: Pki) -> tuple[Path, sa.Engine]:
    data_dir = make_data_dir(tmp_path / "var", pki)
    return data_dir, open_database(Settings(data_dir=data_dir))


def test_pruning_deletes_only_closed_intents_past_their_retention(tmp_path: Path, pki: Pki) -> None:
    _, db = migrated(tmp_path, pki)
    try:
        old, kept = seed(db)
        store = SqlSignIntents(db)
        assert store.prune(0) == 0  # retention 0: every intent is kept
        assert set(intent_states(db)) == old | kept
        assert store.prune(30 * DAY, batch=2) == 5  # three transactions of at most two rows
        states = intent_states(db)
        assert set(states) == kept
        assert sorted(states.values()) == sorted([COMPLETED, ABANDONED, COMPLETED, OPEN, OPEN, OPEN])
        assert store.prune(30 * DAY, batch=2) == 0  # nothing left past the retention
        assert set(intent_states(db)) == kept
    finally:
        db.dispose()


def test_the_cli_prunes_intents_past_the_retention_setting(tmp_path: Path, pki: Pki) -> None:
    data_dir, db = migrated(tmp_path, pki)
    try:
        old, kept = seed(db)
        keep_all = {"HALLMARK_AUDIT_INTENT_RETENTION_DAYS": "0"}
        done = hallmark(data_dir, "audit", "prune-intents", "--json", **keep_all)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"pruned": 0, "retention_days": 0.0}
        assert set(intent_states(db)) == old | kept
        done = hallmark(data_dir, "audit", "prune-intents")  # the default retention: 30 days
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "pruned 5 completed or abandoned sign intents older than 30 days"
        assert set(intent_states(db)) == kept
        done = hallmark(data_dir, "audit", "prune-intents", "--days", "0.5", "--json")
        # The 29- and 1-day-old closed ones; the one closed today and the open ones stay.
        assert json.loads(done.stdout) == {"pruned": 2, "retention_days": 0.5}
    finally:
        db.dispose()


def test_the_service_prunes_at_start_without_the_sealer(tmp_path: Path, pki: Pki) -> None:
    data_dir, db = migrated(tmp_path, pki)
    try:
        old, kept = seed(db)
        settings = Settings(data_dir=data_dir, default_provider="Example AI", audit_seal_interval_seconds=0)
        with TestClient(create_app(settings)):
            assert wait_for(lambda: not old & set(intent_states(db)), timeout=WAIT_S)
            assert set(intent_states(db)) == kept
    finally:
        db.dispose()


# --- the gauge: counted when /metrics is scraped, sealer or not ------------------------------------------


def scraped(client: TestClient) -> float:
    text = client.get("/metrics").text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("hallmark_audit_uncommitted_signs ")]
    return float(line.split()[1])


def test_the_uncommitted_signs_gauge_counts_at_scrape_time_with_the_sealer_off(
    tmp_path: Path, pki: Pki
) -> None:
    data_dir = make_data_dir(tmp_path / "var", pki)
    settings = Settings(
        data_dir=data_dir, default_provider="Example AI", audit_seal_interval_seconds=0,
        audit_intent_grace_seconds=60,
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        db = runtime(client).db
        assert scraped(client) == 0.0
        add_intent(db, 1, COMPLETED)  # closed ones never count, however old
        add_intent(db, 1, ABANDONED)
        add_intent(db, 0, OPEN)  # in progress: due in a minute
        assert scraped(client) == 0.0
        add_intent(db, 1, OPEN)  # past its due time and the grace period: a sign never committed
        assert scraped(client) == 1.0
        add_intent(db, 2, OPEN)
        assert scraped(client) == 2.0


def test_the_gauge_under_two_workers_is_the_count_at_the_latest_scrape(tmp_path: Path) -> None:
    """`serve --workers 2` (prometheus-client's multiprocess mode), sealer off: whichever worker answers, the
    gauge is the database's count at that scrape; it goes back to 0 once the lost sign's intent is closed
    (a "max" gauge would keep the other worker's 1)."""
    data_dir = tmp_path / "var"
    env = passed_on(data_dir)
    with serve(
        data_dir, tmp_path / "logs", "--dev", "--workers", "2", HALLMARK_AUDIT_SEAL_INTERVAL_SECONDS="0",
        HALLMARK_AUDIT_INTENT_GRACE_SECONDS="0", **env,
    ) as server:  # fmt: skip
        server.wait_until_ready()
        scrapes = 8  # enough for both workers to answer some
        assert [metric(server, "hallmark_audit_uncommitted_signs") for _ in range(scrapes)] == [0.0] * scrapes
        db = database(data_dir)
        try:
            add_intent(db, 1, COMPLETED)  # negative control: a closed intent never counts
            lost = add_intent(db, 1, OPEN)
            counts = [metric(server, "hallmark_audit_uncommitted_signs") for _ in range(scrapes)]
            assert counts == [1.0] * scrapes
            assert SqlSignIntents(db).abandon(lost, "Test")
            counts = [metric(server, "hallmark_audit_uncommitted_signs") for _ in range(scrapes)]
            assert counts == [0.0] * scrapes
        finally:
            db.dispose()
