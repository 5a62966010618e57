"""Real loopback HTTP(S) servers on threads for the verify-by-URL tests: each records every request it saw
(path and headers) and answers with one behaviour (a file, a redirect, an endless or dripping body, none)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

DRIP_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]  # lower-case names


class Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
        with contextlib.suppress(OSError):  # the fetcher hung up: what several tests want
            owner.behaviour(self)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer


class _Server6(_Server):
    address_family = socket.AF_INET6


Behaviour = Callable[[BaseHTTPRequestHandler], None]


class LoopbackServer:
    """`with LoopbackServer(behaviour) as server:` serves on a free loopback port until the block ends."""

    def __init__(self, behaviour: Behaviour, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        self.behaviour = behaviour
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.server_names: list[str | None] = []  # SNI names seen (https only)
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, 0), Handler)
        self._server.owner = self
        if tls is not None:
            tls.sni_callback = self._record_sni
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.host = host
        self.port: int = self._server.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.server_names.append(name)

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, path: str = "/file") -> str:
        return f"{self.scheme}://{self.authority}{path}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


# --- behaviours ----------------------------------------------------------------------------------------


def serves(data: bytes, content_type: str = "application/octet-stream") -> Behaviour:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Set-Cookie", "session=from-the-remote-server")
        h.end_headers()
        h.wfile.write(data)

    return answer


def serves_table(table: dict[str, bytes]) -> Behaviour:
    """Each path in `table` (filled in later, if need be) serves its bytes; any other path is 404."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        if h.path in table:
            serves(table[h.path])(h)
        else:
            h.send_error(404)

    return answer


def redirects_to(location: str, status: int = 302) -> Behaviour:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return answer


def redirect_chain(hops: int, data: bytes) -> Behaviour:
    """/hop/0 -> /hop/1 -> ... -> /hop/<hops>, which serves `data`: `hops` redirects in all."""
    serve = serves(data)

    def answer(h: BaseHTTPRequestHandler) -> None:
        n = int(h.path.rsplit("/", 1)[-1])
        if n >= hops:
            serve(h)
        else:
            redirects_to(f"/hop/{n + 1}")(h)

    return answer


def endless_body(declared: int | None) -> Behaviour:
    """A body that never ends (until the client hangs up), with a Content-Length of `declared` or none."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        if declared is not None:
            h.send_header("Content-Length", str(declared))
        h.send_header("Connection", "close")
        h.end_headers()
        block = b"\0" * 65536
        server: LoopbackServer = h.server.owner  # type: ignore[attr-defined]
        for _ in itertools.count():
            if server.stop.is_set():
                return
            h.wfile.write(block)

    return answer


def cut_short(data: bytes, missing: int) -> Behaviour:
    """Declares `missing` bytes more than it sends, then closes the connection."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(data) + missing))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data)
        h.close_connection = True

    return answer


def drips() -> Behaviour:
    """Headers at once, then one byte of body every DRIP_INTERVAL_S: each read succeeds, the whole never
    ends."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000000")
        h.end_headers()
        h.wfile.flush()
        server: LoopbackServer = h.server.owner  # type: ignore[attr-defined]
        while not server.stop.wait(DRIP_INTERVAL_S):
            h.wfile.write(b"\0")
            h.wfile.flush()

    return answer


def never_answers() -> Behaviour:
    def answer(h: BaseHTTPRequestHandler) -> None:
        server: LoopbackServer = h.server.owner  # type: ignore[attr-defined]
        server.stop.wait()

    return answer
