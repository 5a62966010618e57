"""A real `hallmark serve`: a client that disconnects while its file is being decoded has its worker killed
(and counted), and the service answers the next request.

A raw socket sends a whole multipart verify of a box-storm MP4 (past a raised pre-scan limit, so it reaches
a worker, which would need ~16 s for it), waits until the worker has started, and closes. The control: the
same service then verifies a normal file, and its worker is a new process.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.e2e.server import API_KEY_LINE, Server, serve
from tests.processes import children
from tests.storms import box_storm_mp4, moov_storm_mp4
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

TIMEOUT_S = 30.0
BOUNDARY = "hallmarkstormboundary"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = {
        "HALLMARK_PRESCAN_MAX_BOXES": "10000000",
        "HALLMARK_ISOLATION_CPU_SECONDS": "600",
        "HALLMARK_VERIFY_DEADLINE_SECONDS": "600",
    }
    with serve(tmp_path / "var", tmp_path / "logs", "--dev", **env) as running:
        running.wait_until_ready()
        yield running


def metric(server: Server, event: str) -> float:
    text = httpx2.get(server.base_url + "/metrics", timeout=TIMEOUT_S).text
    found = re.search(rf'^hallmark_isolation_events_total\{{event="{event}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def workers(pid: int) -> set[int]:
    """The server's grandchildren: the processes its multiprocessing fork server forked (decode workers)."""
    return {grandchild for child in children(pid) for grandchild in children(child)}


def multipart(data: bytes, path: str = "/v1/verify", token: str | None = None, **form: str) -> bytes:
    fields = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in form.items()
    )
    body = (
        fields
        + (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="storm.mp4"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def test_a_client_that_disconnects_has_its_worker_killed(server: Server, interop_dir: Path) -> None:
    assert metric(server, "cancelled") == 0
    assert workers(server.proc.pid) == set()  # none before the first file
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(multipart(box_storm_mp4(64_000)))
        assert wait_for(lambda: metric(server, "started") == 1, timeout=TIMEOUT_S)
        busy = workers(server.proc.pid)
        assert len(busy) == 1, busy
    # The client is gone: the watchdog notices, kills the worker and counts it.
    assert wait_for(lambda: metric(server, "cancelled") == 1, timeout=TIMEOUT_S), server.output()
    assert wait_for(lambda: not workers(server.proc.pid), timeout=TIMEOUT_S)
    # Control: the service answers the next verify, from a new worker.
    response = httpx2.post(
        server.base_url + "/v1/verify",
        files={"file": ("C.jpg", (interop_dir / "C.jpg").read_bytes())},
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 200, response.text
    assert metric(server, "started") == 2
    assert len(workers(server.proc.pid) - busy) == 1
    assert metric(server, "cancelled") == 1


def test_a_client_that_disconnects_has_its_sign_worker_killed(server: Server, interop_dir: Path) -> None:
    """Sign decodes and signs in a worker too: the same watchdog ends it when the client goes. The storm
    is nested in a `moov` so that it passes sign's completeness check and reaches the engine's read."""
    token = server.wait_for_line(API_KEY_LINE)
    assert metric(server, "cancelled") == 0
    request = multipart(
        moov_storm_mp4(64_000), "/v1/sign", token, model_name="storm-model", model_version="1"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(request)
        assert wait_for(lambda: metric(server, "started") == 1, timeout=TIMEOUT_S)
        busy = workers(server.proc.pid)
        assert len(busy) == 1, busy
    assert wait_for(lambda: metric(server, "cancelled") == 1, timeout=TIMEOUT_S), server.output()
    assert wait_for(lambda: not workers(server.proc.pid), timeout=TIMEOUT_S)
    # Control: the service signs the next file, in a new worker, and nothing of the storm was recorded.
    response = httpx2.post(
        server.base_url + "/v1/sign",
        headers={"Authorization": f"Bearer {token}"},
        data={"model_name": "m", "model_version": "1"},
        files={"file": ("a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())},
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 200, response.text
    assert metric(server, "started") == 2
    assert metric(server, "cancelled") == 1
