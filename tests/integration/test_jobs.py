"""The job API for large files: the real app (TestClient, its lifespan starts the job runner), the real c2pa
engine in the isolated workers, a real database (SQLite; PostgreSQL in the second pass of `make test`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.jobs.runner import Sweeper
from app.jobs.webhook import HEADER, WebhookSender, retry_after_seconds
from app.jobs.work import Watch, result_path, upload_path
from app.main import create_app
from app.settings import Settings
from app.store.jobs import JobStore
from tests import waiting
from tests.conftest import make_data_dir
from tests.pki import TestPki as Pki
from tests.tsa import LocalTsa

FORM = {"model_name": "test-diffusion", "model_version": "2.1"}
SECRET = "s" * 40


def key_for(client: TestClient, scopes: set[str] | None = None) -> dict[str, str]:
    _, token = client.app.state.runtime.api_keys.create("jobs", scopes or {"sign"})  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token}"}


def post_job(client: TestClient, auth: dict[str, str], data: bytes, **form: str) -> Any:
    return client.post(
        "/v1/jobs", headers=auth, data={**FORM, **form}, files={"file": ("in.jpg", data, "image/jpeg")}
    )


def wait_for(client: TestClient, auth: dict[str, str], job_id: str, *states: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {states}: {job}")


def service(client: TestClient) -> Any:
    return client.app.state.jobs  # type: ignore[attr-defined]


@pytest.fixture
def jpeg(interop_dir: Path) -> bytes:
    return (interop_dir / "no_manifest.jpg").read_bytes()


def app_with(tmp_path: Path, pki: Pki, **options: Any) -> TestClient:
    data_dir = make_data_dir(tmp_path / "var", pki)
    return TestClient(create_app(Settings(data_dir=data_dir, default_provider="Example AI", **options)))


@pytest.fixture
def idle(tmp_path: Path, pki: Pki) -> Iterator[TestClient]:
    """A service that queues jobs but runs none (HALLMARK_JOB_WORKERS=0)."""
    with app_with(tmp_path, pki, job_workers=0, job_max_queued_per_key=2) as client:
        yield client


def test_create_poll_download_verify(client: TestClient, jpeg: bytes) -> None:
    auth = key_for(client)
    created = post_job(client, auth, jpeg, title="big one")
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert len(job["id"]) >= 43
    assert (job["state"], job["phase"], job["progress"], job["result"]) == ("queued", "received", 0.05, None)
    done = wait_for(client, auth, job["id"], "succeeded", "failed")
    assert done["state"] == "succeeded", done
    assert (done["phase"], done["progress"], done["result"]) == ("done", 1.0, f"/v1/jobs/{job['id']}/result")
    result = client.get(done["result"], headers=auth)
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(result.content).hexdigest() == result.headers["Hallmark-Output-SHA256"]
    assert result.headers["Hallmark-Input-SHA256"] == hashlib.sha256(jpeg).hexdigest()
    assert result.headers["Content-Disposition"] == 'attachment; filename="in.signed.jpg"'
    report = client.post("/v1/verify", files={"file": ("x.jpg", result.content)}).json()
    assert report["outcome"] == "trusted"
    assert client.post("/v1/verify", files={"file": ("x.jpg", jpeg)}).json()["outcome"] != "trusted"
    # The same ledger row and repository entry as POST /v1/sign, naming the POST's request id.
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    (row,) = rt.ledger.list()
    assert row.manifest_id == result.headers["Hallmark-Manifest-Id"]
    assert row.request_id == created.headers["X-Request-Id"]
    assert rt.manifests.get(row.manifest_id) is not None
    assert not upload_path(service(client).jobs_dir, job["id"]).exists()  # the upload is gone once signed


def test_a_queued_job_is_cancelled_and_its_files_deleted(idle: TestClient, jpeg: bytes) -> None:
    auth = key_for(idle)
    job = post_job(idle, auth, jpeg).json()
    upload = upload_path(service(idle).jobs_dir, job["id"])
    assert upload.read_bytes() == jpeg
    early = idle.get(f"/v1/jobs/{job['id']}/result", headers=auth)
    assert early.status_code == 409
    assert early.json()["type"] == "/problems/job-not-finished"
    cancelled = idle.delete(f"/v1/jobs/{job['id']}", headers=auth)
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert not upload.exists()
    assert idle.get(f"/v1/jobs/{job['id']}/result", headers=auth).status_code == 409
    assert idle.app.state.runtime.ledger.count() == 0  # type: ignore[attr-defined]


@contextmanager
def silent_tsa(tmp_path: Path, pki: Pki, **options: Any) -> Iterator[tuple[LocalTsa, Settings]]:
    """A TSA that accepts the request and never answers, trusted by a service whose signs require it (with a
    30 s deadline: a sign that reaches it hangs until cancelled or stopped)."""
    with LocalTsa(mode="blackhole") as tsa:
        data_dir = make_data_dir(tmp_path / "var", pki)
        (data_dir / "trust" / "test-tsa.pem").write_bytes(tsa.root_pem)
        yield (
            tsa,
            Settings(
                data_dir=data_dir, tsa_url=tsa.url, tsa_deadline_seconds=30, tsa_policy="require", **options
            ),
        )


def post_hanging_job(
    client: TestClient, tsa: LocalTsa, jpeg: bytes, **form: str
) -> tuple[dict[str, str], str]:
    """Post a job and wait until its sign is running and waiting on the silent TSA; (auth, job id)."""
    auth = key_for(client)
    job = post_job(client, auth, jpeg, **form).json()
    wait_for(client, auth, job["id"], "running")
    deadline = time.monotonic() + 30
    while tsa.requests == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tsa.requests == 1
    return auth, job["id"]


def test_a_running_sign_is_cancelled_through_the_callback(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    """The sign waits on a TSA that never answers; DELETE makes the pool kill its worker."""
    with silent_tsa(tmp_path, pki) as (tsa, settings), TestClient(create_app(settings)) as client:
        auth, job_id = post_hanging_job(client, tsa, jpeg)
        assert client.get(f"/v1/jobs/{job_id}", headers=auth).json()["phase"] == "signing"
        pids = service(client).pool.pids
        assert len(pids) == 1
        started = time.monotonic()
        assert client.delete(f"/v1/jobs/{job_id}", headers=auth).json()["state"] == "cancelled"
        while service(client).pool.pids == pids and time.monotonic() - started < 10:
            time.sleep(0.05)
        assert service(client).pool.pids != pids  # the worker signing it was killed
        assert time.monotonic() - started < 10  # long before the TSA deadline
        assert client.app.state.runtime.ledger.count() == 0  # type: ignore[attr-defined]
        assert client.get(f"/v1/jobs/{job_id}", headers=auth).json()["state"] == "cancelled"


def test_the_watch_follows_the_row(idle: TestClient, jpeg: bytes) -> None:
    auth = key_for(idle)
    store = service(idle).store
    a, b = (post_job(idle, auth, jpeg).json()["id"] for _ in range(2))
    assert store.claim(a)
    assert store.claim(b)
    idle.delete(f"/v1/jobs/{a}", headers=auth)
    assert Watch(store, a, lambda: False)() is True
    assert Watch(store, b, lambda: False)() is False  # control: still running
    assert Watch(store, b, lambda: True)() is True  # this process stopping


def test_another_key_gets_404(client: TestClient, jpeg: bytes) -> None:
    owner, other = key_for(client), key_for(client)
    job = post_job(client, owner, jpeg).json()
    wait_for(client, owner, job["id"], "succeeded")
    for method, path in (
        ("GET", f"/v1/jobs/{job['id']}"),
        ("GET", f"/v1/jobs/{job['id']}/result"),
        ("DELETE", f"/v1/jobs/{job['id']}"),
    ):
        refused = client.request(method, path, headers=other)
        assert refused.status_code == 404, (method, path)
        assert refused.headers["content-type"] == "application/problem+json"
    assert client.get(f"/v1/jobs/{job['id']}/result", headers=owner).status_code == 200  # control
    assert client.get("/v1/jobs/" + "x" * 43, headers=owner).status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 401
    assert client.get(f"/v1/jobs/{job['id']}", headers=key_for(client, {"resolve"})).status_code == 403


def test_the_sweep_expires_results_and_requeues_stalled_jobs(client: TestClient, jpeg: bytes) -> None:
    auth = key_for(client)
    jobs = service(client)
    job = post_job(client, auth, jpeg).json()
    wait_for(client, auth, job["id"], "succeeded")
    result = result_path(jobs.jobs_dir, job["id"])
    assert result.exists()
    Sweeper(jobs.store, jobs.jobs_dir).sweep()  # control: not due yet
    assert client.get(f"/v1/jobs/{job['id']}/result", headers=auth).status_code == 200
    ttl = client.app.state.runtime.settings.job_result_ttl_seconds  # type: ignore[attr-defined]
    later = JobStore(jobs.store._engine, ttl_seconds=ttl, clock=lambda: time.time() + ttl + 1)
    Sweeper(later, jobs.jobs_dir).sweep()
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).json()["state"] == "expired"
    assert not result.exists()
    gone = client.get(f"/v1/jobs/{job['id']}/result", headers=auth)
    assert gone.status_code == 410
    assert gone.json()["type"] == "/problems/job-expired"


def test_a_stalled_job_is_requeued_then_failed(idle: TestClient, jpeg: bytes) -> None:
    auth = key_for(idle)
    jobs = service(idle)
    job_id = post_job(idle, auth, jpeg).json()["id"]
    after_lease = JobStore(jobs.store._engine, ttl_seconds=3600, clock=lambda: time.time() + 120)
    assert jobs.store.claim(job_id)
    Sweeper(jobs.store, jobs.jobs_dir).sweep()  # control: its lease still runs
    assert idle.get(f"/v1/jobs/{job_id}", headers=auth).json()["state"] == "running"
    for attempt in (1, 2):
        Sweeper(after_lease, jobs.jobs_dir).sweep()
        assert idle.get(f"/v1/jobs/{job_id}", headers=auth).json()["state"] == "queued", attempt
        assert jobs.store.claim(job_id)
    Sweeper(after_lease, jobs.jobs_dir).sweep()  # the third try's process died too
    failed = idle.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert failed["state"] == "failed"
    assert failed["problem"]["type"] == "/problems/job-interrupted"
    assert not upload_path(jobs.jobs_dir, job_id).exists()


def test_bad_input_is_refused_with_problems(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with app_with(tmp_path, pki, job_workers=0, job_max_upload_bytes=len(jpeg) + 2000) as client:
        auth = key_for(client)
        missing = client.post("/v1/jobs", headers=auth, data={"model_name": "m"}, files={"file": ("a", jpeg)})
        assert missing.status_code == 422
        assert missing.headers["content-type"] == "application/problem+json"
        assert "'model_version' is required" in missing.json()["detail"]
        text = post_job(client, auth, b"just some text, not a picture" * 10)
        assert text.status_code == 415
        assert text.headers["content-type"] == "application/problem+json"
        big = post_job(client, auth, jpeg + b"\0" * 5000)
        assert big.status_code == 413
        assert big.headers["content-type"] == "application/problem+json"
        hook = post_job(client, auth, jpeg, webhook_url="https://example.com/hook")
        assert hook.status_code == 422
        assert "does not send webhooks" in hook.json()["detail"]
        bad_type = post_job(client, auth, jpeg, digital_source_type="notAType")
        assert bad_type.status_code == 422
        assert list(service(client).jobs_dir.iterdir()) == []  # nothing refused left a file
        assert post_job(client, auth, jpeg).status_code == 202  # control: the same file is fine


def test_queued_jobs_per_key_are_limited(idle: TestClient, jpeg: bytes) -> None:
    auth, other = key_for(idle), key_for(idle)
    assert [post_job(idle, auth, jpeg).status_code for _ in range(2)] == [202, 202]
    third = post_job(idle, auth, jpeg)
    assert third.status_code == 429
    assert third.headers["Retry-After"] == "10"
    assert post_job(idle, other, jpeg).status_code == 202  # another key has its own allowance


class _Hooks(ThreadingHTTPServer):
    """A loopback webhook receiver: answers `answers` in turn (status, headers), then 204 to every request."""

    daemon_threads = True

    def __init__(self, answers: list[tuple[int, dict[str, str]]] | None = None, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.answers = list(answers or [])
        self.delay = delay
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        self.lock = threading.Lock()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def __enter__(self) -> _Hooks:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _HookHandler(BaseHTTPRequestHandler):
    server: _Hooks

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status, headers = self.server.answers.pop(0) if self.server.answers else (204, {})
        time.sleep(self.server.delay)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.arrived.set()

    def log_message(self, format: str, *args: object) -> None:
        pass


def expected_mac(secret: str, header: str, body: bytes) -> tuple[str, str]:
    parts = dict(p.split("=", 1) for p in header.split(","))
    mac = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return parts["v1"], mac


def hook_options(*servers: _Hooks, **more: Any) -> dict[str, Any]:
    """Webhooks on, allowed to these loopback receivers only, with retries quick enough for a test."""
    return {
        "webhooks": True, "webhook_secret": SECRET,
        "url_allowlist": [f"127.0.0.1:{s.server_address[1]}" for s in servers],
        "webhook_retry_base_seconds": 0.01, "webhook_retry_max_seconds": 0.05, **more,
    }  # fmt: skip


def outcome(client: TestClient, job_id: str) -> tuple[int, int | None]:
    """(attempts, last status) of the job's finished webhook delivery, once it is over."""
    sender = service(client).webhooks
    assert waiting.wait_for(lambda: any(o[0] == job_id for o in sender.outcomes)), "the delivery never ended"
    (found,) = [o for o in sender.outcomes if o[0] == job_id]
    return found[1], found[2]


def assert_signed(seen: list[tuple[dict[str, str], bytes]]) -> None:
    """Every attempt carries a Hallmark-Signature that verifies with the secret (and not with another)."""
    for headers, body in seen:
        sent, mac = expected_mac(SECRET, headers[HEADER.lower()], body)
        assert hmac.compare_digest(sent, mac)
        wrong, mac = expected_mac("w" * 40, headers[HEADER.lower()], body)
        assert not hmac.compare_digest(wrong, mac)


def test_the_webhook_is_signed(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with _Hooks() as hooks, _Hooks() as outside, app_with(tmp_path, pki, **hook_options(hooks)) as client:
        auth = key_for(client)
        # A loopback destination not on the allowlist: the SSRF policy refuses the delivery, once.
        first = post_job(client, auth, jpeg, webhook_url=outside.url()).json()
        job = post_job(client, auth, jpeg, webhook_url=hooks.url() + "?x=1").json()
        wait_for(client, auth, job["id"], "succeeded")
        assert outcome(client, job["id"]) == (1, 204)
        headers, body = hooks.seen[0]
        assert json.loads(body) == {
            "job_id": job["id"], "result": f"/v1/jobs/{job['id']}/result", "state": "succeeded",
        }  # fmt: skip
        assert_signed(hooks.seen)
        assert abs(int(headers[HEADER.lower()].split(",")[0][2:]) - time.time()) < 60
        assert wait_for(client, auth, first["id"], "succeeded")["state"] == "succeeded"
        assert outcome(client, first["id"]) == (1, None)  # refused: not tried again
        assert outside.seen == []
        assert len(hooks.seen) == 1


def test_a_failing_receiver_is_retried_until_it_takes_it(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    """503, 500, then 429 with a Retry-After of an hour (capped at 0.05 s), then 204: four attempts, each
    signed afresh over the same body."""
    answers = [(503, {}), (500, {}), (429, {"Retry-After": "3600"})]
    with _Hooks(answers) as hooks, app_with(tmp_path, pki, **hook_options(hooks)) as client:
        auth = key_for(client)
        job = post_job(client, auth, jpeg, webhook_url=hooks.url()).json()
        wait_for(client, auth, job["id"], "succeeded")
        assert outcome(client, job["id"]) == (4, 204)
        assert len(hooks.seen) == 4
        assert_signed(hooks.seen)
        assert len({body for _, body in hooks.seen}) == 1
        assert json.loads(hooks.seen[0][1])["state"] == "succeeded"


def test_retries_are_bounded_and_a_client_error_is_not_retried(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with (
        _Hooks([(503, {})] * 10) as down,
        _Hooks([(400, {})] * 10) as refusing,
        app_with(tmp_path, pki, **hook_options(down, refusing, webhook_attempts=3)) as client,
    ):
        auth = key_for(client)
        a = post_job(client, auth, jpeg, webhook_url=down.url()).json()
        b = post_job(client, auth, jpeg, webhook_url=refusing.url()).json()
        for job in (a, b):
            wait_for(client, auth, job["id"], "succeeded")
        assert outcome(client, a["id"]) == (3, 503)  # HALLMARK_WEBHOOK_ATTEMPTS, then it gives up
        assert outcome(client, b["id"]) == (1, 400)  # a 4xx other than 429 is final
        time.sleep(0.2)  # four times the longest retry wait: a retry would have come by now
        assert (len(down.seen), len(refusing.seen)) == (3, 1)
        assert_signed(down.seen + refusing.seen)


def test_retries_hold_up_neither_the_runner_nor_requests(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    """A receiver that answers 503 after 1 s, retried for seconds: the next job is signed meanwhile."""
    options = hook_options(webhook_attempts=5, webhook_retry_base_seconds=1.0, webhook_retry_max_seconds=1.0)
    with _Hooks([(503, {})] * 10, delay=1.0) as slow:
        options["url_allowlist"] = [f"127.0.0.1:{slow.server_address[1]}"]
        with app_with(tmp_path, pki, **options) as client:
            auth = key_for(client)
            a = post_job(client, auth, jpeg, webhook_url=slow.url()).json()
            wait_for(client, auth, a["id"], "succeeded")
            assert waiting.wait_for(lambda: len(slow.seen) >= 1)  # a's first attempt is under way
            b = post_job(client, auth, jpeg).json()
            assert wait_for(client, auth, b["id"], "succeeded", "failed")["state"] == "succeeded"
            assert client.get(f"/v1/jobs/{a['id']}", headers=auth).status_code == 200
            sender = service(client).webhooks
            assert not any(o[0] == a["id"] for o in sender.outcomes)  # a's delivery is still being retried
            assert 1 <= len(slow.seen) < 5


def test_a_cancelled_job_sends_its_webhook(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with _Hooks() as hooks, app_with(tmp_path, pki, job_workers=0, **hook_options(hooks)) as client:
        auth = key_for(client)
        job = post_job(client, auth, jpeg, webhook_url=hooks.url()).json()
        silent = post_job(client, auth, jpeg).json()  # control: no webhook_url, nothing sent
        assert client.delete(f"/v1/jobs/{job['id']}", headers=auth).json()["state"] == "cancelled"
        assert client.delete(f"/v1/jobs/{silent['id']}", headers=auth).json()["state"] == "cancelled"
        assert outcome(client, job["id"]) == (1, 204)
        assert [json.loads(body) for _, body in hooks.seen] == [{"job_id": job["id"], "state": "cancelled"}]
        assert_signed(hooks.seen)
        # Deleting it again (now a finished job: expired) sends nothing more.
        assert client.delete(f"/v1/jobs/{job['id']}", headers=auth).json()["state"] == "expired"
        time.sleep(0.2)
        assert len(hooks.seen) == 1
        assert not any(o[0] == silent["id"] for o in service(client).webhooks.outcomes)


def test_a_job_failed_by_interruption_sends_its_webhook(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with _Hooks() as hooks, app_with(tmp_path, pki, job_workers=0, **hook_options(hooks)) as client:
        auth = key_for(client)
        jobs = service(client)
        job_id = post_job(client, auth, jpeg, webhook_url=hooks.url()).json()["id"]
        after_lease = JobStore(jobs.store._engine, ttl_seconds=3600, clock=lambda: time.time() + 120)
        sweep = Sweeper(after_lease, jobs.jobs_dir, finished=jobs.webhooks.send)
        for _ in range(2):
            assert jobs.store.claim(job_id)
            sweep.sweep()  # requeued: no webhook (control)
        assert hooks.seen == []
        assert jobs.store.claim(job_id)
        sweep.sweep()  # the third try's process died too: failed
        assert client.get(f"/v1/jobs/{job_id}", headers=auth).json()["state"] == "failed"
        assert outcome(client, job_id) == (1, 204)
        assert [json.loads(body) for _, body in hooks.seen] == [{"job_id": job_id, "state": "failed"}]
        assert_signed(hooks.seen)


def test_the_retry_wait_doubles_and_is_capped(tmp_path: Path, pki: Pki) -> None:
    settings = Settings(
        data_dir=tmp_path, webhook_retry_base_seconds=1.0, webhook_retry_max_seconds=60.0
    )  # fmt: skip
    sender = WebhookSender(settings)
    assert [sender.delay(n, None) for n in (1, 2, 3, 4, 5, 6, 7, 8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert sender.delay(1, 7.0) == 7.0  # the receiver's Retry-After
    assert sender.delay(1, 3600.0) == 60.0  # capped
    assert retry_after_seconds("120", 0.0) == 120.0
    assert retry_after_seconds("Thu, 01 Jan 1970 00:01:00 GMT", 0.0) == 60.0
    assert retry_after_seconds("soon", 0.0) is None
    assert retry_after_seconds(None, 0.0) is None


def test_a_connection_error_is_retried(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    """Nothing listens on the port: every attempt fails to connect, and is tried again up to the bound."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    options = hook_options(webhook_attempts=3)
    options["url_allowlist"] = [f"127.0.0.1:{port}"]
    with app_with(tmp_path, pki, **options) as client:
        auth = key_for(client)
        job = post_job(client, auth, jpeg, webhook_url=f"http://127.0.0.1:{port}/hook").json()
        wait_for(client, auth, job["id"], "succeeded")
        assert outcome(client, job["id"]) == (3, None)


def test_webhooks_need_a_secret(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(Exception, match="HALLMARK_WEBHOOK_SECRET"), app_with(tmp_path, pki, webhooks=True):
        pass


def test_the_queue_follows_the_database(idle: TestClient, jpeg: bytes) -> None:
    """PostgreSQL: Procrastinate holds a task for the job, deferred with its row; SQLite: the in-process
    runner takes rows from the table and there is no Procrastinate."""
    jobs = service(idle)
    job_id = post_job(idle, key_for(idle), jpeg).json()["id"]
    engine = jobs.store._engine
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            tasks = conn.execute(
                sa.text("SELECT task_name, queue_name, args FROM procrastinate_jobs WHERE status = 'todo'")
            ).all()
        assert [(t.task_name, t.queue_name, t.args) for t in tasks] == [
            ("hallmark.sign_job", "hallmark-jobs", {"job_id": job_id})
        ]
    else:
        assert engine.dialect.name == "sqlite"
        assert jobs.queue is None
        assert jobs.on_insert is None


def test_a_job_row_commits_with_its_queue_entry_or_not_at_all(idle: TestClient) -> None:
    store = service(idle).store

    def failing_defer(_conn: sa.Connection, _job_id: str) -> None:
        raise RuntimeError("the queue refused it")

    with pytest.raises(RuntimeError, match="refused"):
        store.create("job-a", "key", {"fields": {}}, 1, None, failing_defer)
    assert store.get("job-a") is None  # rolled back with the failed defer
    store.create("job-b", "key", {"fields": {}}, 1, None, lambda _c, _j: None)
    assert store.get("job-b") is not None  # control


def test_a_job_running_at_shutdown_is_signed_after_the_restart(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    """The service stops while a job's sign waits on a silent TSA: the sign is cancelled, the job goes back to
    the queue (this try not counted), and the next start signs it."""
    with silent_tsa(tmp_path, pki) as (tsa, settings):
        with TestClient(create_app(settings)) as client:
            auth, job_id = post_hanging_job(client, tsa, jpeg)
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 10  # the shutdown did not wait for the TSA's deadline
        tsa.mode = "ok"
        with TestClient(create_app(settings)) as client:
            done = wait_for(client, auth, job_id, "succeeded", "failed")
            assert done["state"] == "succeeded", done
            assert service(client).store.get(job_id).attempts == 1  # the interrupted try did not count
            assert client.app.state.runtime.ledger.count() == 1  # type: ignore[attr-defined]
            assert client.get(done["result"], headers=auth).headers["Hallmark-Timestamped"] == "true"


# --- Idempotency-Key on POST /v1/jobs -----------------------------------------------------------------------


def post_keyed(client: TestClient, auth: dict[str, str], data: bytes, key: str, **form: str) -> Any:
    return client.post(
        "/v1/jobs",
        headers={**auth, "Idempotency-Key": key},
        data={**FORM, **form},
        files={"file": ("in.jpg", data, "image/jpeg")},
    )


def job_rows(client: TestClient) -> list[Any]:
    with service(client).store._engine.connect() as conn:
        query = "SELECT id, api_key_id, idempotency_key FROM jobs ORDER BY created_at"
        return list(conn.execute(sa.text(query)))


def queue_entries(client: TestClient) -> list[str]:
    """The job ids waiting in the queue: Procrastinate's tasks on PostgreSQL, queued rows on SQLite."""
    engine = service(client).store._engine
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(sa.text("SELECT args FROM procrastinate_jobs WHERE status = 'todo'")).all()
            return sorted(r.args["job_id"] for r in rows)
        return sorted(conn.execute(sa.text("SELECT id FROM jobs WHERE state = 'queued'")).scalars())


def test_a_retry_with_the_same_idempotency_key_answers_the_same_job(idle: TestClient, jpeg: bytes) -> None:
    auth = key_for(idle)
    first = post_keyed(idle, auth, jpeg, "key-1", title="t")
    assert first.status_code == 202, first.text
    assert "Hallmark-Idempotent-Replay" not in first.headers
    again = post_keyed(idle, auth, jpeg, "key-1", title="t")
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"] == f"/v1/jobs/{first.json()['id']}"
    assert again.headers["Hallmark-Idempotent-Replay"] == "true"
    assert [r.id for r in job_rows(idle)] == [first.json()["id"]]  # no second job
    assert queue_entries(idle) == [first.json()["id"]]  # nor a second queue entry
    uploads = [p.name for p in service(idle).jobs_dir.iterdir()]
    assert uploads == [upload_path(Path(), first.json()["id"]).name]  # nor a second upload
    # Negative controls: another key, or none at all, makes a new job each time.
    other = post_keyed(idle, auth, jpeg, "key-2", title="t")
    assert other.status_code == 202
    assert other.json()["id"] != first.json()["id"]
    assert "Hallmark-Idempotent-Replay" not in other.headers
    assert len(job_rows(idle)) == 2
    assert len(queue_entries(idle)) == 2


def test_the_same_idempotency_key_with_another_request_is_refused(idle: TestClient, jpeg: bytes) -> None:
    auth = key_for(idle)
    first = post_keyed(idle, auth, jpeg, "key-1")
    assert first.status_code == 202
    for changed in (
        {"data": jpeg, "title": "another title"},
        {"data": jpeg + b"\0"},
        {"data": jpeg, "webhook_url": "https://example.com/hook"},
    ):
        data = changed.pop("data")
        refused = post_keyed(idle, auth, data, "key-1", **changed)  # type: ignore[arg-type]
        assert refused.status_code == 422, changed
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "/problems/idempotency-key-reused"
    assert len(job_rows(idle)) == 1
    assert post_keyed(idle, auth, jpeg, "key-1").json()["id"] == first.json()["id"]  # control: exact retry
    unusable = post_keyed(idle, auth, jpeg, "k" * 256)  # longer than 255 characters
    assert unusable.status_code == 400
    assert unusable.json()["type"] == "/problems/invalid-idempotency-key"
    assert len(job_rows(idle)) == 1


def test_idempotency_keys_belong_to_their_api_key(idle: TestClient, jpeg: bytes) -> None:
    alice, bob = key_for(idle), key_for(idle)
    a = post_keyed(idle, alice, jpeg, "shared-key").json()
    b = post_keyed(idle, bob, jpeg, "shared-key")
    assert b.status_code == 202
    assert b.json()["id"] != a["id"]
    assert "Hallmark-Idempotent-Replay" not in b.headers
    assert post_keyed(idle, bob, jpeg, "shared-key").json()["id"] == b.json()["id"]  # control: bob's retry
    assert idle.get(f"/v1/jobs/{a['id']}", headers=bob).status_code == 404
    assert len(job_rows(idle)) == 2


def test_a_retry_after_the_job_ran_records_no_second_signature(client: TestClient, jpeg: bytes) -> None:
    auth = key_for(client)
    first = post_keyed(client, auth, jpeg, "run-once").json()
    assert wait_for(client, auth, first["id"], "succeeded", "failed")["state"] == "succeeded"
    again = post_keyed(client, auth, jpeg, "run-once")
    assert again.status_code == 202
    assert again.json()["id"] == first["id"]
    assert again.json()["state"] == "succeeded"  # the job as it is now
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    time.sleep(0.5)  # a second job, had one been made, would be running or done by now
    assert rt.ledger.count() == 1
    assert len(job_rows(client)) == 1
    other = post_keyed(client, auth, jpeg, "run-twice").json()  # control: a new key signs again
    assert wait_for(client, auth, other["id"], "succeeded", "failed")["state"] == "succeeded"
    assert rt.ledger.count() == 2


def test_simultaneous_duplicates_make_one_job(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with app_with(tmp_path, pki, job_workers=0, job_max_queued_per_key=20) as idle:
        simultaneous_duplicates(idle, jpeg)


def simultaneous_duplicates(idle: TestClient, jpeg: bytes) -> None:
    api_key, token = idle.app.state.runtime.api_keys.create("jobs", {"sign"})  # type: ignore[attr-defined]
    auth, api_key_id = {"Authorization": f"Bearer {token}"}, api_key.id
    jobs = service(idle)
    # The race itself, made certain: two requests both found no job for the key and both saved their upload;
    # the second insert hits the unique index, inserts nothing and answers the first job.
    params = {"fields": FORM, "output": "embedded", "filename": "in.jpg", "request_id": None}
    for job_id in ("race-a", "race-b"):
        upload_path(jobs.jobs_dir, job_id).write_bytes(jpeg)
    one, made_one = jobs.submit("race-a", api_key_id, params, len(jpeg), None, ("race", "f" * 64))
    two, made_two = jobs.submit("race-b", api_key_id, params, len(jpeg), None, ("race", "f" * 64))
    assert (one.id, made_one) == ("race-a", True)
    assert (two.id, made_two) == ("race-a", False)
    assert not upload_path(jobs.jobs_dir, "race-b").exists()  # the loser's upload is deleted
    assert upload_path(jobs.jobs_dir, "race-a").exists()
    assert jobs.store.get("race-b") is None
    assert "race-b" not in queue_entries(idle)
    with pytest.raises(Exception, match="different job request"):  # the loser's request differed
        jobs.submit("race-c", api_key_id, params, len(jpeg), None, ("race", "e" * 64))
    assert jobs.store.get("race-c") is None
    # Through HTTP: simultaneous posts with one key get one job; with distinct keys (control), one each.
    for keys, expected in ((["same"] * 4, 1), ([f"k{i}" for i in range(4)], 4)):
        before = len(job_rows(idle))
        answers: list[Any] = []
        start = threading.Barrier(len(keys))

        def post(k: str, start: threading.Barrier = start, answers: list[Any] = answers) -> None:
            start.wait()
            answers.append(post_keyed(idle, auth, jpeg, k))

        threads = [threading.Thread(target=post, args=(k,)) for k in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [a.status_code for a in answers] == [202] * len(keys)
        assert len({a.json()["id"] for a in answers}) == expected
        assert len(job_rows(idle)) - before == expected


def test_an_idempotency_key_is_free_again_after_its_time(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    with app_with(tmp_path, pki, job_workers=0, idempotency_ttl_seconds=1) as client:
        auth = key_for(client)
        first = post_keyed(client, auth, jpeg, "short").json()
        assert post_keyed(client, auth, jpeg, "short").json()["id"] == first["id"]  # control: within its time
        time.sleep(1.1)
        later = post_keyed(client, auth, jpeg, "short", title="a new request")
        assert later.status_code == 202
        assert later.json()["id"] != first["id"]
        retry = post_keyed(client, auth, jpeg, "short", title="a new request")
        assert retry.json()["id"] == later.json()["id"]


def test_a_timed_out_attempt_is_retried(tmp_path: Path, pki: Pki, jpeg: bytes) -> None:
    """The receiver takes 1 s to answer; each attempt may take 0.3 s: both attempts time out."""
    with _Hooks(delay=1.0) as slow:
        options = hook_options(slow, webhook_attempts=2, webhook_timeout=0.3)
        with app_with(tmp_path, pki, **options) as client:
            auth = key_for(client)
            job = post_job(client, auth, jpeg, webhook_url=slow.url()).json()
            wait_for(client, auth, job["id"], "succeeded")
            assert outcome(client, job["id"]) == (2, None)
            assert len(slow.seen) == 2
            assert_signed(slow.seen)
