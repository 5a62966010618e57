"""`TsaRelay`: the loopback HTTP forwarder the engine is pointed at instead of the real TSA.

It forwards the timestamp query with a hard deadline and answers 502 at once when the TSA is slow, down or
misbehaving, so the engine fails in milliseconds instead of waiting ~30 s.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.tsa.upstream import (
    MAX_QUERY_BYTES,
    QUERY_CONTENT_TYPE,
    REPLY_CONTENT_TYPE,
    RelayError,
    Upstream,
    query_within,
)
from signing import ConfigError


@dataclass
class RelayStats:
    forwarded: int = 0  # replies passed on to the engine
    failed: int = 0  # 502s: timeout, connection error, bad status, oversized reply
    refused: int = 0  # requests that were not a timestamp query
    last_error: str | None = None


class TsaRelay:
    """A loopback forwarder for RFC 3161 queries with a hard deadline.

    Point the engine's signer at `relay.url`. Each POST of `application/timestamp-query` to that URL is
    forwarded to `tsa_url`; the reply comes back if it arrives within `deadline` seconds (connect, send and
    receive together, DNS included), is HTTP 200 and at most `MAX_REPLY_BYTES`. Otherwise the relay answers
    502 at once, and the engine fails the sign in milliseconds instead of waiting ~30 s. Anything else
    (other methods, content types, paths, oversized queries) is refused without contacting the TSA. The URL
    carries a random path so that other local processes cannot use the relay.
    """

    def __init__(self, tsa_url: str, deadline: float = 3.0) -> None:
        if not deadline > 0:
            raise ConfigError("The timestamp authority deadline must be positive.")
        self.tsa_url = tsa_url
        self.deadline = deadline
        self.stats = RelayStats()
        self._upstream = Upstream.parse(tsa_url)
        self._path = "/" + secrets.token_urlsafe(16)
        self._stats_lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="tsa-relay", daemon=True
        )
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self._path}"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TsaRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def forward(self, query: bytes) -> bytes:
        """Forward one query within the deadline: the TSA's reply (DER TimeStampResp), or `RelayError`."""
        return query_within(self._upstream, query, self.deadline)

    def _count(self, *, forwarded: bool = False, failed: str | None = None, refused: bool = False) -> None:
        with self._stats_lock:
            if forwarded:
                self.stats.forwarded += 1
            if failed is not None:
                self.stats.failed += 1
                self.stats.last_error = failed
            if refused:
                self.stats.refused += 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 5  # a local client that stalls mid-request does not hold a thread forever

            def log_message(self, format: str, *args: object) -> None:
                return None

            def _refuse(self, status: int) -> None:
                relay._count(refused=True)
                self._answer(status, b"", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def do_GET(self) -> None:
                self._refuse(405)

            def do_POST(self) -> None:
                if self.path != relay._path:
                    self._refuse(404)
                    return
                content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if content_type != QUERY_CONTENT_TYPE:
                    self._refuse(415)
                    return
                length = self.headers.get("Content-Length") or ""
                if not length.isdigit() or not 0 < int(length) <= MAX_QUERY_BYTES:
                    self._refuse(413 if length.isdigit() else 411)
                    return
                try:
                    query = self.rfile.read(int(length))
                except OSError:
                    self.close_connection = True
                    return
                try:
                    body = relay.forward(query)
                except RelayError as exc:
                    relay._count(failed=str(exc))
                    self._answer(502, b"", "text/plain")
                    return
                relay._count(forwarded=True)
                self._answer(200, body, REPLY_CONTENT_TYPE)

        return Handler
