"""A body that keeps arriving, but slower than HALLMARK_BODY_MIN_RATE_BYTES once the grace period is over, is
cut with 408 wherever it is being read, and the server's own record says 408: its JSON access log and
`hallmark_http_requests_total`. Under bench/verify_load's drip-fed clients the server logged such cuts as
500 (5 to 19 a run): a drip that reached a saturated verification gate had its body read and dropped by
the door (app/admission.py), outside FastAPI's form parsing, and the cut escaped every handler; the Soft
Binding Resolution upload, which reads its body itself, did the same without any load.

Raw sockets drip 100 bytes every 0.2 s (500 B/s against a minimum of 1000 B/s after 0.5 s): the body never
pauses longer than the gap bound, so each cut is a rate cut, not a stall. The gate is held deterministically
by a verification whose audio fingerprint tool (HALLMARK_FPCALC_PATH, a shell script here) waits for the
test to release it.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import HTTP_TIMEOUT_S, Server, key_lines, read_response, serve
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

ANSWER_TIMEOUT_S = 20.0  # every answer expected here comes within about a second
BOUNDARY = "hallmark-rate-boundary"
DRIP_BYTES, DRIP_EVERY_S = 100, 0.2  # 500 B/s: under the minimum rate, far inside the gap bound
DECLARED = 500_000  # what each drip's head announces (it never gets there)
PACE = {
    "HALLMARK_BODY_MIN_RATE_BYTES": "1000",
    "HALLMARK_BODY_RATE_GRACE_SECONDS": "0.5",
    "HALLMARK_BODY_TIMEOUT_SECONDS": "2",  # the gap bound: ten times the drip's interval
}


def part_head(name: str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
# The file part is open when the cut comes: the cut is in the middle of a part.
MID_PART = part_head("file", "a.jpg") + b"\xff\xd8\xff\xe0"
# A sign's text fields first, complete; then the file part, cut in its middle.
SIGN_MID_PART = (
    part_head("model_name")
    + b"rate-test\r\n"
    + part_head("model_version")
    + b"1\r\n"
    + part_head("file", "a.jpg")
    + b"\xff\xd8\xff\xe0"
)


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for fpcalc that says when it has started and waits (without using CPU) until the test
    creates `release` (at most 30 s), then fails: the verification that runs it holds its slot meanwhile."""
    folder = tmp_path_factory.mktemp("slow-fpcalc")
    sleep = shutil.which("sleep")
    assert sleep is not None, "the `sleep` program is missing"
    script = folder / "fpcalc"
    script.write_text(
        "#!/bin/sh\n"
        f": > '{folder}/started'\n"
        "i=0\n"
        f"while [ ! -e '{folder}/release' ] && [ $i -lt 600 ]; do {sleep} 0.05; i=$((i+1)); done\n"
        "exit 1\n"
    )
    script.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tools: Path) -> Iterator[tuple[Server, str]]:
    root = tmp_path_factory.mktemp("e2e-rate-cut")
    settings = {
        **PACE,
        "HALLMARK_LOG_FORMAT": "json",
        "HALLMARK_PUBLIC_RATE_LIMIT": "0",
        "HALLMARK_PUBLIC_MAX_CONCURRENT_PER_CLIENT": "0",
        # One verification at a time and none waiting: one in progress saturates the gate.
        "HALLMARK_MAX_CONCURRENT_VERIFIES": "1",
        "HALLMARK_VERIFY_QUEUE": "0",
        "HALLMARK_FPCALC_PATH": str(tools / "fpcalc"),
    }
    with serve(root / "var", root / "logs", "--dev", **settings) as running:
        running.wait_until_ready()
        [api_key] = key_lines(running)
        yield running, api_key


@pytest.fixture(scope="module")
def jpeg(interop_dir: Path) -> bytes:
    return (interop_dir / "no_manifest.jpg").read_bytes()


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A short WAV without credentials: verify's recovery runs fpcalc on it."""
    path = tmp_path_factory.mktemp("wav") / "tone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(range(256)) * 64)
    return path.read_bytes()


# --- the server's own record ------------------------------------------------------------------------------


def access_status(server: Server, request_id: str) -> int:
    """The status the access log recorded for this request (its line is written just after the response)."""
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = [
            line
            for line in (json.loads(t) for t in server.stderr_path.read_text().splitlines() if t.strip())
            if line["logger"] == "hallmark.access" and line.get("request_id") == request_id
        ]
        return bool(found)

    assert wait_for(seen), f"no access line for {request_id}"
    assert len(found) == 1, found
    status: int = found[0]["status"]
    return status


def requests_by_status(server: Server) -> dict[str, float]:
    text = httpx2.get(server.base_url + "/metrics", timeout=HTTP_TIMEOUT_S).text
    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "hallmark_http_requests_total"
    }


def grown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Requests counted between two scrapes, by status (the scrape between them included)."""
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}


# --- a drip-fed client ------------------------------------------------------------------------------------


def drip(
    server: Server, path: str, content_type: str, first: bytes, request_id: str, token: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST a body declared DECLARED bytes long, `first` at once and then DRIP_BYTES every DRIP_EVERY_S until
    the server answers; the answer. The client stops writing as soon as the answer is readable, so the
    server's close finds no unread bytes (no reset that could eat the answer)."""
    head = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {content_type}",
        f"Content-Length: {DECLARED}",
        f"X-Request-Id: {request_id}",
        *([f"Authorization: Bearer {token}"] if token else []),
    ]
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_TIMEOUT_S) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + first)
        sent, give_up = len(first), time.monotonic() + ANSWER_TIMEOUT_S
        while not select.select([sock], [], [], DRIP_EVERY_S)[0]:
            assert time.monotonic() < give_up, f"no answer after {sent} bytes"
            assert sent + DRIP_BYTES < DECLARED, "the whole body went out: the rate was never enforced"
            sock.sendall(b"x" * DRIP_BYTES)
            sent += DRIP_BYTES
        return read_response(sock)


def assert_cut(answer: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = answer
    assert status == 408, body
    assert headers["content-type"].startswith("application/problem+json")
    assert headers["connection"] == "close"
    assert json.loads(body)["type"].endswith("request-timeout")


# --- tests ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type", "first", "signs"),
    [
        ("/v1/verify", MULTIPART, MID_PART, False),
        ("/v1/sign", MULTIPART, SIGN_MID_PART, True),
        ("/sbr/v1/matches/byContent", "image/jpeg", b"\xff\xd8\xff\xe0", False),
    ],
    ids=["verify-multipart-mid-part", "sign-multipart-mid-part", "sbr-by-content"],
)
def test_a_drip_under_the_minimum_rate_is_cut_and_recorded_as_408(
    server: tuple[Server, str], jpeg: bytes, path: str, content_type: str, first: bytes, signs: bool
) -> None:
    running, api_key = server
    name = path.replace("/", "-").strip("-")
    before = requests_by_status(running)
    assert_cut(drip(running, path, content_type, first, f"drip-{name}", api_key if signs else None))
    assert access_status(running, f"drip-{name}") == 408
    # Control: a whole upload in the same test is served and logged 200.
    response = httpx2.post(
        running.base_url + "/v1/verify",
        files={"file": ("a.jpg", jpeg, "image/jpeg")},
        headers={"X-Request-Id": f"control-{name}"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 200, response.text
    assert access_status(running, f"control-{name}") == 200
    # One 408 (the drip) and two 200s (the control and the first scrape); no 500.
    assert grown(before, requests_by_status(running)) == {"408": 1.0, "200": 2.0}


def test_a_drip_read_and_dropped_at_a_saturated_gate_is_cut_and_recorded_as_408(
    server: tuple[Server, str], tools: Path, wav: bytes
) -> None:
    """bench/verify_load's case: its drip declares an octet-stream body; while every verification slot is
    taken the door reads and drops a verify's body before answering 503, and the cut came there."""
    running, _ = server
    before = requests_by_status(running)
    held: list[httpx2.Response] = []
    holder = threading.Thread(
        target=lambda: held.append(
            httpx2.post(
                running.base_url + "/v1/verify",
                files={"file": ("tone.wav", wav, "audio/wav")},
                headers={"X-Request-Id": "holder"},
                timeout=HTTP_TIMEOUT_S,
            )
        )
    )
    holder.start()
    try:
        assert wait_for((tools / "started").exists), "the verification never ran fpcalc"
        # The only slot is held and nothing may wait: these two are refused at the door, which reads
        # their bodies to drop them.
        assert_cut(drip(running, "/v1/verify", "application/octet-stream", b"", "door-octets"))
        assert_cut(drip(running, "/v1/verify", MULTIPART, MID_PART, "door-multipart"))
        assert holder.is_alive(), "the slot was given back while the drips ran: the door was not tested"
    finally:
        (tools / "release").touch()
        holder.join(HTTP_TIMEOUT_S)
    assert access_status(running, "door-octets") == 408
    assert access_status(running, "door-multipart") == 408
    # Control: the verification that held the slot is answered and logged 200.
    [response] = held
    assert response.status_code == 200, response.text
    assert access_status(running, "holder") == 200
    assert grown(before, requests_by_status(running)) == {"408": 2.0, "200": 2.0}
