"""End to end: `hallmark serve` with JSON logs and request ids, and `--workers 2` sharing nothing but the
database and the key store (metrics added up across workers; API-key revocation, key rotation and trust
changes reach every worker).

Which worker answered a request is read from the server's own JSON log: every line carries the process id
and the request's id, and the test chooses the request ids.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import (
    API_KEY_LINE,
    HALLMARK,
    HTTP_TIMEOUT_S,
    START_TIMEOUT_S,
    Server,
    hallmark_env,
    serve,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
MAX_TRIES = 300  # requests sent to reach both workers before giving up (each try is a new connection)


# --- reading the server's log --------------------------------------------------------------------------


def log_lines(server: Server) -> list[dict[str, Any]]:
    """Every line the server wrote on stderr, each parsed as JSON (a line that is not JSON fails)."""
    lines = []
    for number, text in enumerate(server.stderr_path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            pytest.fail(f"stderr line {number} is not JSON: {text!r}")
    return lines


def access_line(server: Server, request_id: str) -> dict[str, Any]:
    """The access line of the request with this id (written just after its response: wait for it)."""
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = [
            ln
            for ln in log_lines(server)
            if ln["logger"] == "hallmark.access" and ln.get("request_id") == request_id
        ]
        return bool(found)

    assert wait_for(seen), f"no access line for {request_id}"
    assert len(found) == 1, found
    return found[0]


def worker_pids(server: Server, count: int) -> set[int]:
    """The pids of the workers that logged "ready" (waits for `count` of them)."""
    pids: set[int] = set()

    def ready() -> bool:
        pids.update(ln["pid"] for ln in log_lines(server) if ln["message"].startswith("ready:"))
        return len(pids) >= count

    assert wait_for(ready, START_TIMEOUT_S), f"only {len(pids)} workers ready"
    return pids


def on_every_worker(
    server: Server,
    workers: set[int],
    send: Callable[[dict[str, str]], httpx2.Response],
    done: Callable[[httpx2.Response], bool] = lambda _r: True,
) -> dict[int, list[httpx2.Response]]:
    """Send requests (each with a new id, on a new connection) until every worker has answered one for which
    `done` holds; the responses by worker, in order."""
    answered: dict[int, list[httpx2.Response]] = {pid: [] for pid in workers}
    finished: set[int] = set()
    for _ in range(MAX_TRIES):
        request_id = "t-" + uuid.uuid4().hex
        response = send({"X-Request-Id": request_id})
        pid = access_line(server, request_id)["pid"]
        assert pid in workers, f"answered by {pid}, not one of the workers {workers}"
        answered[pid].append(response)
        if done(response):
            finished.add(pid)
        if finished == workers:
            return answered
    pytest.fail(f"after {MAX_TRIES} requests only workers {finished} of {workers} answered as expected")


def metric(server: Server, name: str, **labels: str) -> float:
    text = httpx2.get(server.base_url + "/metrics", timeout=HTTP_TIMEOUT_S).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [str(HALLMARK), *args],
        env=hallmark_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"hallmark {' '.join(args)}: {done.stderr}"
    return done.stdout


def sign(server: Server, jpeg: bytes, token: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.post(
        server.base_url + "/v1/sign",
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
        data={"model_name": "workers-e2e", "model_version": "1"},
        files={"file": ("generated.jpg", jpeg, "image/jpeg")},
        timeout=HTTP_TIMEOUT_S,
    )


@pytest.fixture
def jpeg(interop_dir: Path) -> bytes:
    return (interop_dir / "no_manifest.jpg").read_bytes()


# --- request id and JSON logs ----------------------------------------------------------------------------


def test_request_id_round_trip_json_log_lines_and_ledger_row(tmp_path: Path, jpeg: bytes) -> None:
    data_dir = tmp_path / "var"
    with serve(data_dir, tmp_path / "logs", "--dev", HALLMARK_LOG_FORMAT="json") as server:
        token = server.wait_for_line(API_KEY_LINE)
        server.wait_until_ready()

        # A safe client id comes back as it was sent.
        ok = httpx2.get(server.base_url + "/healthz", headers={"X-Request-Id": "client-42.a:b_c"}, timeout=5)
        assert ok.headers["X-Request-Id"] == "client-42.a:b_c"
        # Hostile or oversized ones are replaced by a fresh id (never echoed, never logged).
        for hostile in ('x" injected="1', "<script>", "../../etc", "a b", "x" * 129, "é"):
            answer = httpx2.get(
                server.base_url + "/healthz",
                headers={b"X-Request-Id": hostile.encode()},
                timeout=5,
            )
            assert answer.status_code == 200
            assert GENERATED_ID.fullmatch(answer.headers["X-Request-Id"]), (hostile, answer.headers)
        # Without one, each request gets its own.
        first = httpx2.get(server.base_url + "/healthz", timeout=5).headers["X-Request-Id"]
        second = httpx2.get(server.base_url + "/healthz", timeout=5).headers["X-Request-Id"]
        assert GENERATED_ID.fullmatch(first)
        assert GENERATED_ID.fullmatch(second)
        assert first != second

        # A problem+json body names the request id too (and so does its header).
        refused = httpx2.post(
            server.base_url + "/v1/sign", headers={"X-Request-Id": "refused-1"}, timeout=HTTP_TIMEOUT_S
        )
        assert refused.status_code == 401
        assert refused.json()["request_id"] == "refused-1" == refused.headers["X-Request-Id"]

        # A sign: the id lands in its ledger row; a sign without one gets the generated id in its row.
        signed = sign(server, jpeg, token, {"X-Request-Id": "sign-req-1"})
        assert signed.status_code == 200, signed.text
        unnamed = sign(server, jpeg, token)
        assert unnamed.status_code == 200, unnamed.text
        generated = unnamed.headers["X-Request-Id"]
        assert GENERATED_ID.fullmatch(generated)

        secret_query = "qs-" + uuid.uuid4().hex
        httpx2.get(
            server.base_url + f"/healthz?token={secret_query}", headers={"X-Request-Id": "q-1"}, timeout=5
        )

        line = access_line(server, "sign-req-1")
        assert line["method"] == "POST"
        assert line["path"] == "/v1/sign"
        assert line["status"] == 200
        assert isinstance(line["duration_ms"], float)
        assert line["duration_ms"] > 0
        assert (line["level"], line["logger"], line["message"]) == ("INFO", "hallmark.access", "request")
        assert {"time", "pid"} <= line.keys()
        refused_line = access_line(server, "refused-1")
        assert (refused_line["path"], refused_line["status"]) == ("/v1/sign", 401)
        assert access_line(server, "q-1")["path"] == "/healthz"  # the path, without its query string

    rows = json.loads(cli(data_dir, "audit", "list", "--json"))
    by_manifest = {row["manifest_id"]: row for row in rows}
    assert by_manifest[signed.headers["Hallmark-Manifest-Id"]]["request_id"] == "sign-req-1"
    assert by_manifest[unnamed.headers["Hallmark-Manifest-Id"]]["request_id"] == generated
    # A sign from the CLI has no request: its row has no id.
    image = tmp_path / "cli.jpg"
    image.write_bytes(jpeg)
    cli(
        data_dir,
        "sign",
        str(image),
        "--model-name",
        "m",
        "--model-version",
        "1",
        "-o",
        str(tmp_path / "out.jpg"),
    )
    newest = json.loads(cli(data_dir, "audit", "list", "--json", "--limit", "1"))[0]
    assert newest["request_id"] is None

    # Every stderr line parsed as JSON above; what must never be in the log is not.
    log = server.stderr_path.read_text()
    assert "hallmark.access" in log  # the log is the one examined
    assert token not in log
    assert token.split("_", 2)[2] not in log  # the secret (it may itself hold an underscore)
    assert secret_query not in log
    assert "Bearer" not in log
    assert "Authorization" not in log
    assert "injected" not in log
    assert "<script>" not in log


# --- two workers -----------------------------------------------------------------------------------------


def test_two_workers_add_up_their_metrics(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with serve(data_dir, tmp_path / "logs", "--dev", "--workers", "2", HALLMARK_LOG_FORMAT="json") as server:
        server.wait_until_ready()
        workers = worker_pids(server, 2)
        # The workers' metrics directory: private, made by `serve` for this run.
        env = Path(f"/proc/{min(workers)}/environ").read_bytes().split(b"\0")
        [directory] = [
            Path(v.split(b"=", 1)[1].decode()) for v in env if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")
        ]
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700

        before = metric(server, "hallmark_problems_total", code="http-404")
        assert before == 0
        answered = on_every_worker(
            server, workers, lambda h: httpx2.get(server.base_url + "/no-such-page", headers=h, timeout=5)
        )
        sent = sum(len(r) for r in answered.values())
        assert all(r.status_code == 404 for rs in answered.values() for r in rs)
        # Each worker answered some and not all: a per-worker count could not show the total.
        assert all(0 < len(rs) < sent for rs in answered.values()), {p: len(r) for p, r in answered.items()}
        # Whichever worker answers /metrics, it reports the sum.
        for _ in range(6):
            assert metric(server, "hallmark_problems_total", code="http-404") == sent
        assert metric(server, "hallmark_workers") == 2

        # A worker killed outright: uvicorn starts another; its counts stay in the total, it no longer
        # counts as a running worker.
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replacement = worker_pids(server, 3) - workers
        assert len(replacement) == 1
        assert metric(server, "hallmark_problems_total", code="http-404") == sent
        assert wait_for(lambda: metric(server, "hallmark_workers") == 2)
        assert metric(server, "hallmark_workers") == 2
    assert not directory.exists()  # removed when `serve` ends


def test_two_workers_follow_revocation_rotation_and_trust(tmp_path: Path, jpeg: bytes) -> None:
    data_dir = tmp_path / "var"
    settings = {
        "HALLMARK_LOG_FORMAT": "json",
        "HALLMARK_API_KEY_CACHE_SECONDS": "0",
        "HALLMARK_KEYRING_POLL_SECONDS": "0.5",
        "HALLMARK_TRUST_POLL_SECONDS": "0.5",
    }
    with serve(data_dir, tmp_path / "logs", "--dev", "--workers", "2", **settings) as server:
        token = server.wait_for_line(API_KEY_LINE)
        server.wait_until_ready()
        workers = worker_pids(server, 2)

        # Trust: a dev-signed file verifies as trusted on both workers, then the profile is removed.
        signed = sign(server, jpeg, token)
        assert signed.status_code == 200, signed.text

        def verify(h: dict[str, str]) -> httpx2.Response:
            return httpx2.post(
                server.base_url + "/v1/verify",
                headers=h,
                files={"file": ("a.jpg", signed.content)},
                timeout=30,
            )

        trusted = on_every_worker(server, workers, verify)
        assert {r.json()["outcome"] for rs in trusted.values() for r in rs} == {"trusted"}
        cli(data_dir, "trust", "remove", "hallmark-dev")
        untrusted = on_every_worker(
            server, workers, verify, lambda r: r.json()["outcome"] == "valid_untrusted"
        )
        for responses in untrusted.values():  # once a worker reloaded, it stays on the new trust
            outcomes = [r.json()["outcome"] for r in responses]
            first = outcomes.index("valid_untrusted")
            assert set(outcomes[first:]) == {"valid_untrusted"}, outcomes

        # Rotation: both workers sign with the first key, then each switches to the newly activated one.
        old_key = signed.headers["Hallmark-Signing-Key-Id"]
        send = lambda h: sign(server, jpeg, token, h)  # noqa: E731
        before = on_every_worker(server, workers, send)
        assert {r.headers["Hallmark-Signing-Key-Id"] for rs in before.values() for r in rs} == {old_key}
        new_key = cli(data_dir, "keys", "generate", "--dev").strip().splitlines()[-1]
        cli(data_dir, "keys", "activate", new_key, "--yes")
        after = on_every_worker(
            server, workers, send, lambda r: r.headers["Hallmark-Signing-Key-Id"] == new_key
        )
        for responses in after.values():
            assert all(r.status_code == 200 for r in responses)
            keys = [r.headers["Hallmark-Signing-Key-Id"] for r in responses]
            assert set(keys[keys.index(new_key) :]) == {new_key}, keys

        # Revocation (cache 0): accepted by both workers before, refused by both from the next request on.
        def authenticated(h: dict[str, str]) -> httpx2.Response:  # stops after auth: no file (422)
            return httpx2.post(
                server.base_url + "/v1/sign", headers={"Authorization": f"Bearer {token}", **h}, timeout=30
            )

        accepted = on_every_worker(server, workers, authenticated)
        assert {r.status_code for rs in accepted.values() for r in rs} == {422}
        cli(data_dir, "apikey", "revoke", token.split("_")[1])
        refused = on_every_worker(server, workers, authenticated)
        assert {r.status_code for rs in refused.values() for r in rs} == {401}
