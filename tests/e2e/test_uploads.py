"""Uploads against a real `hallmark serve` on loopback: the byte budget charges bytes received (drippers
declaring huge bodies starve no one), chunked bodies are bounded while they stream (also on disk), a body
that stops arriving is answered 408 and its connection closed, and SIGTERM ends the process within the
shutdown grace while an upload is in progress. Raw sockets play the slow clients.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.e2e.server import HTTP_TIMEOUT_S, Server, read_response, serve

pytestmark = pytest.mark.e2e

ANSWER_TIMEOUT_S = 20.0  # generous: every answer expected here comes within a few seconds
BOUNDARY = "hallmark-test-boundary"
PART_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
    "Content-Type: application/octet-stream\r\n\r\n"
).encode()
LIMIT = 2_000_000  # upload limit of these servers: above Starlette's 1 MiB in-memory spool
BUDGET = 1_000_000  # bytes in flight per worker: one small verify (2x ~98 KB) fits, 2x 600 KB does not
NO_PUBLIC_LIMITS = {"HALLMARK_PUBLIC_RATE_LIMIT": "0", "HALLMARK_PUBLIC_MAX_CONCURRENT_PER_CLIENT": "0"}


def start(root: Path, **env: str) -> Iterator[Server]:
    settings = {"HALLMARK_MAX_UPLOAD_BYTES": str(LIMIT), "HALLMARK_MAX_INFLIGHT_BYTES": str(BUDGET)}
    with serve(root / "var", root / "logs", "--dev", **settings, **NO_PUBLIC_LIMITS, **env) as running:
        running.wait_until_ready()
        yield running


@pytest.fixture(scope="module")
def spool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-spool")


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory, spool_dir: Path) -> Iterator[Server]:
    """Default pace (a dripper that sent a little stays connected for seconds); spools in its own TMPDIR."""
    yield from start(tmp_path_factory.mktemp("e2e-uploads"), TMPDIR=str(spool_dir))


@pytest.fixture(scope="module")
def hasty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A tiny pace: after 0.5 s a body must average 1000 B/s, no gap may exceed 1 s, a head takes <= 1 s."""
    root = tmp_path_factory.mktemp("e2e-pace")
    pace = {
        "HALLMARK_BODY_MIN_RATE_BYTES": "1000",
        "HALLMARK_BODY_RATE_GRACE_SECONDS": "0.5",
        "HALLMARK_BODY_TIMEOUT_SECONDS": "1",
        "HALLMARK_HEAD_TIMEOUT_SECONDS": "1",
    }
    yield from start(root, **pace)


@pytest.fixture(scope="module")
def jpeg(interop_dir: Path) -> bytes:
    return (interop_dir / "no_manifest.jpg").read_bytes()


def open_upload(server: Server, first: bytes, length: int | None) -> socket.socket:
    """A POST /v1/verify whose head declares `length` (None: chunked) and whose body begins with `first`."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_TIMEOUT_S)
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    head = (
        f"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\n{framing}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
    )
    sock.sendall(head.encode() + (first if length is not None else chunk(first)))
    return sock


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def closed(sock: socket.socket) -> bool:
    """True once the server has closed the connection (recv sees the end), bounded by the socket timeout."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""  # the server sent something: not a waiting connection either
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(ANSWER_TIMEOUT_S)


def verify(server: Server, content: bytes) -> httpx2.Response:
    files = {"file": ("upload.jpg", content, "application/octet-stream")}
    return httpx2.post(server.base_url + "/v1/verify", files=files, timeout=HTTP_TIMEOUT_S)


def spooled(server: Server, tmp: Path) -> list[int]:
    """Sizes of the files the server process holds open in `tmp` (its upload spools, deleted or not)."""
    fds = Path(f"/proc/{server.proc.pid}/fd")
    sizes = []
    for fd in fds.iterdir():
        try:
            if os.readlink(fd).startswith(str(tmp)):
                sizes.append(os.stat(fd).st_size)
        except FileNotFoundError:  # closed between the listing and the look
            continue
    return sizes


# --- the byte budget -------------------------------------------------------------------------------------


def test_drippers_declaring_huge_bodies_do_not_starve_a_verify(patient: Server, jpeg: bytes) -> None:
    """Each dripper declares 1.9 MB (x2 for verify: more than the whole budget) and sends 100 bytes. Charged
    by declaration, the first would hold the budget and the verify would get 503; charged by bytes received,
    the verify runs while all of them are still connected and waiting."""
    drippers = [open_upload(patient, PART_HEAD + b"\0" * 100, 1_900_000) for _ in range(5)]
    try:
        response = verify(patient, jpeg)
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "none"
        assert all(still_open(sock) for sock in drippers)
    finally:
        for sock in drippers:
            sock.close()


def test_bytes_received_past_the_budget_are_refused_503(patient: Server) -> None:
    """The budget still bites: with drippers holding a little, a client that really sends 600 KB (x2 for
    verify: over the budget) is refused with 503 + Retry-After once its bytes pass it, and disconnected."""
    drippers = [open_upload(patient, PART_HEAD + b"\0" * 100, 1_900_000) for _ in range(2)]
    try:
        assert all(still_open(sock) for sock in drippers)
        with open_upload(patient, PART_HEAD + b"\0" * 600_000, 1_900_000) as heavy:
            status, headers, body = read_response(heavy)
            assert status == 503, body
            assert headers["retry-after"] == "5"
            assert headers["content-type"].startswith("application/problem+json")
            assert json.loads(body)["type"].endswith("over-capacity")
            assert closed(heavy)
    finally:
        for sock in drippers:
            sock.close()


# --- chunked bodies --------------------------------------------------------------------------------------


def test_a_chunked_body_is_spooled_as_it_arrives_and_refused_at_the_limit(
    patient: Server, spool_dir: Path
) -> None:
    """1.5 MB of a chunked upload is on disk in the spool (Starlette keeps 1 MiB in memory); the chunk that
    takes the body past 2 MB is refused with 413, the spool never holds more than the limit and is gone."""
    assert spooled(patient, spool_dir) == []
    piece = b"\0" * 100_000
    with open_upload(patient, PART_HEAD, None) as sock:
        seen: list[int] = []
        for _ in range(15):
            sock.sendall(chunk(piece))
        # Wait (bounded) until the server has spooled what was sent: the spool is a real file by now.
        with httpx2.Client(timeout=HTTP_TIMEOUT_S) as client:
            for _ in range(100):
                seen = spooled(patient, spool_dir)
                if seen and max(seen) >= 1_400_000:
                    break
                client.get(patient.base_url + "/healthz")  # a round trip instead of a sleep
        assert 1_400_000 <= max(seen, default=0) <= LIMIT, seen
        for _ in range(6):  # 2.1 MB in all: the last piece crosses the limit
            sock.sendall(chunk(piece))
            seen += spooled(patient, spool_dir)
        status, headers, body = read_response(sock)
        assert status == 413, body
        assert json.loads(body)["details"]["limit_bytes"] == LIMIT
        assert headers["connection"] == "close"
        assert max(seen) <= LIMIT
        assert closed(sock)
    assert spooled(patient, spool_dir) == []


def test_control_a_chunked_body_under_the_limit_is_verified(patient: Server, jpeg: bytes) -> None:
    with open_upload(patient, PART_HEAD, None) as sock:
        for i in range(0, len(jpeg), 16_384):
            sock.sendall(chunk(jpeg[i : i + 16_384]))
        sock.sendall(chunk(f"\r\n--{BOUNDARY}--\r\n".encode()) + b"0\r\n\r\n")
        status, _, body = read_response(sock)
        assert status == 200, body
        assert json.loads(body)["outcome"] == "none"


# --- pace ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [10, 20_000], ids=["too-slow-on-average", "stopped-after-a-fast-start"])
def test_a_body_that_stops_arriving_gets_408_and_the_connection_closes(hasty: Server, sent: int) -> None:
    """10 bytes then nothing falls under 1000 B/s after the grace; 20 KB then nothing is on pace for 20 s
    but passes the 1 s gap. Both are answered 408 (problem+json) and the connection is closed."""
    with open_upload(hasty, PART_HEAD + b"\0" * sent, 500_000) as sock:
        status, headers, body = read_response(sock)
        assert status == 408, body
        assert headers["content-type"].startswith("application/problem+json")
        assert headers["connection"] == "close"
        assert json.loads(body)["type"].endswith("request-timeout")
        assert closed(sock)


def test_control_a_body_at_a_normal_rate_passes_the_pace(hasty: Server, jpeg: bytes) -> None:
    response = verify(hasty, jpeg)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "none"


@pytest.mark.parametrize(
    "head", [b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"], ids=["silent", "partial"]
)
def test_a_request_head_that_never_ends_is_dropped(hasty: Server, head: bytes) -> None:
    """uvicorn alone would keep these connections until shutdown; the head timeout (1 s here) closes them
    (the socket's 20 s timeout fails the test if it does not)."""
    with socket.create_connection(("127.0.0.1", hasty.port), timeout=ANSWER_TIMEOUT_S) as sock:
        sock.sendall(head)
        assert closed(sock)


def test_control_a_head_sent_in_pieces_in_time_is_served_and_the_next_one_is_bounded_too(
    hasty: Server,
) -> None:
    with socket.create_connection(("127.0.0.1", hasty.port), timeout=ANSWER_TIMEOUT_S) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        sock.sendall(b"Host: 127.0.0.1\r\n\r\n")
        status, headers, _ = read_response(sock)
        assert status == 200
        assert "connection" not in headers  # kept alive: a request without a body is not closed after
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a second head on the kept-alive connection, unfinished
        assert closed(sock)


# --- shutdown --------------------------------------------------------------------------------------------


def test_sigterm_mid_upload_exits_within_the_shutdown_grace(tmp_path: Path) -> None:
    """An upload in progress that would wait a minute for its body (pace set to 60 s) is cut after the 2 s
    grace: the process exits well within 15 s of SIGTERM (without a bound uvicorn waits for the request)."""
    pace = {"HALLMARK_BODY_RATE_GRACE_SECONDS": "60", "HALLMARK_BODY_TIMEOUT_SECONDS": "60"}
    for running in start(tmp_path, HALLMARK_SHUTDOWN_GRACE_SECONDS="2", **pace):
        with open_upload(running, PART_HEAD + b"\0" * 100, 500_000) as sock:
            assert verify(running, b"not media").status_code == 415  # the server is answering meanwhile
            assert still_open(sock)
            running.proc.send_signal(signal.SIGTERM)
            try:
                running.proc.wait(15)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running 15 s after SIGTERM\n{running.output()}")
            # Cut after the grace: uvicorn answers the cancelled request 500 (text/plain) and closes.
            status, headers, _ = read_response(sock)
            assert (status, headers["connection"]) == (500, "close")
            assert closed(sock)
