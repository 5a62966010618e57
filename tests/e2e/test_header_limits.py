"""A real `hallmark serve` bounds the request head it buffers, and logs no query string.

A raw socket sends part of a head, already over HALLMARK_MAX_HEADER_BYTES and not yet ended: uvicorn (h11)
refuses it (400) and closes without waiting for the rest, so a dripped head cannot grow memory. A whole head
over the limit in one read gets the service's 431; the control, a head under the limit, gets 200.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx2
import pytest

from tests.e2e.server import Server, serve

pytestmark = pytest.mark.e2e

LIMIT = 4096
TIMEOUT_S = 30.0
SECRET = "hm_0123456789abcdef_do-not-log-me"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("e2e-headers")
    with serve(root / "var", root / "logs", "--dev", HALLMARK_MAX_HEADER_BYTES=str(LIMIT)) as running:
        running.wait_until_ready()
        yield running


def raw_get(port: int, padding: int, ended: bool = True) -> bytes:
    """GET /healthz with one header of `padding` bytes; everything the server sends until it closes.
    Not `ended`: the head stops mid-header and the client sends nothing more."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        head = f"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: {'a' * padding}"
        sock.sendall((head + ("\r\n\r\n" if ended else "")).encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_an_unfinished_head_over_the_limit_is_refused_without_waiting_for_its_end(server: Server) -> None:
    answer = raw_get(server.port, 2 * LIMIT, ended=False)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in answer.lower()


def test_a_whole_head_over_the_limit_is_refused(server: Server) -> None:
    answer = raw_get(server.port, 2 * LIMIT)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"application/problem+json" in answer


def test_a_head_under_the_limit_is_served(server: Server) -> None:
    assert raw_get(server.port, LIMIT // 2).startswith(b"HTTP/1.1 200 ")


def test_a_key_in_the_query_string_is_refused_and_not_logged(server: Server) -> None:
    response = httpx2.get(f"{server.base_url}/healthz?api_key={SECRET}", timeout=TIMEOUT_S)
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/credentials-in-query"
    output = server.output()
    assert "ready:" in output  # the log read is the server's
    assert SECRET not in output
