"""A real server answers refusals before the client has sent any of the body.

A raw socket sends only the request head (with a large Content-Length) and then waits: a 401 or 413 that
arrives proves the server decided without the body, because there was none to read. The control sends the
same head with a valid key: the server waits for the body (no answer), and answers 200 once it is sent.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.e2e.server import Server, key_lines, serve

pytestmark = pytest.mark.e2e

ANSWER_TIMEOUT_S = 30.0  # generous: only a server that waits for the body reaches it
CONTROL_WAIT_S = 2.0  # the control's server must still be waiting after this long (it cannot answer early)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    root = tmp_path_factory.mktemp("e2e-body")
    with serve(root / "var", root / "logs", "--dev") as running:
        running.wait_until_ready()
        [api_key] = key_lines(running)
        yield running, api_key


@pytest.fixture(scope="module")
def upload(interop_dir: Path) -> tuple[bytes, str]:
    request = httpx2.Request(
        "POST",
        "http://x/",
        data={"model_name": "m", "model_version": "1"},
        files={"file": ("a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())},
    )
    return request.read(), request.headers["content-type"]


def send_head(port: int, length: int, content_type: str, token: str | None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT_S)
    lines = [
        "POST /v1/sign HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}",
        *([f"Authorization: Bearer {token}"] if token else []),
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def status_of(sock: socket.socket) -> int:
    """Read until the end of the response head; its status code."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1])


@pytest.mark.parametrize(("token", "length", "status"), [(None, 50 << 20, 401), ("valid", 300 << 20, 413)])
def test_refused_before_any_body_byte_is_sent(
    server: tuple[Server, str], upload: tuple[bytes, str], token: str | None, length: int, status: int
) -> None:
    running, api_key = server
    with send_head(running.port, length, upload[1], api_key if token else None) as sock:
        assert status_of(sock) == status


def test_control_an_authorised_request_waits_for_its_body(
    server: tuple[Server, str], upload: tuple[bytes, str]
) -> None:
    running, api_key = server
    body, content_type = upload
    with send_head(running.port, len(body), content_type, api_key) as sock:
        sock.settimeout(CONTROL_WAIT_S)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing: the server is reading the body, which has not been sent
        sock.settimeout(ANSWER_TIMEOUT_S)
        sock.sendall(body)
        assert status_of(sock) == 200
