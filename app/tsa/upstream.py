"""One timestamp query to the real TSA, on a worker thread that the relay can abort at its deadline."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass

from app.tsa.reply import reply_problem
from signing import ConfigError

QUERY_CONTENT_TYPE = "application/timestamp-query"
REPLY_CONTENT_TYPE = "application/timestamp-reply"
MAX_QUERY_BYTES = 8 * 1024  # a query is a hash, a nonce and a few flags: ~60-100 bytes
MAX_REPLY_BYTES = 64 * 1024  # a reply carries the TSA's certificates: a few KB


class RelayError(Exception):
    """The TSA could not be used for one query (the relay answers 502)."""


@dataclass(frozen=True)
class Upstream:
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Upstream:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"The timestamp authority URL must be an http(s) URL, not {url!r}.")
        if parts.username or parts.password:
            raise ConfigError("The timestamp authority URL must not carry credentials.")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigError(f"The timestamp authority URL has an invalid port: {url!r}.") from None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.scheme, parts.hostname, port, path)


class Exchange:
    """One upstream request on a worker thread, abortable from the waiting thread."""

    def __init__(self, upstream: Upstream, body: bytes, timeout: float) -> None:
        self._upstream = upstream
        self._body = body
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._aborted = False
        self.done = threading.Event()
        self.reply: bytes | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            self.reply = self._fetch()
        except (RelayError, OSError, http.client.HTTPException) as exc:
            self.error = str(exc)[:200] or type(exc).__name__
        finally:
            self._close()
            self.done.set()

    def _fetch(self) -> bytes:
        up = self._upstream
        conn: http.client.HTTPConnection
        if up.scheme == "https":
            conn = http.client.HTTPSConnection(
                up.host, up.port, timeout=self._timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(up.host, up.port, timeout=self._timeout)
        with self._lock:
            if self._aborted:
                raise RelayError("deadline passed")
            self._conn = conn
        conn.request(
            "POST",
            up.path,
            body=self._body,
            headers={
                "Content-Type": QUERY_CONTENT_TYPE,
                "Accept": REPLY_CONTENT_TYPE,
                "Connection": "close",
                "User-Agent": "hallmark-tsa-relay",
            },
        )
        response = conn.getresponse()
        if response.status != http.client.OK:
            raise RelayError(f"HTTP {response.status}")
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
            raise RelayError("reply too large")
        body = response.read(MAX_REPLY_BYTES + 1)
        if len(body) > MAX_REPLY_BYTES:
            raise RelayError("reply too large")
        problem = reply_problem(body)
        if problem is not None:
            raise RelayError(problem)
        return body

    def abort(self) -> None:
        """Called at the deadline: break a blocked connect/send/recv so the worker ends now."""
        with self._lock:
            self._aborted = True
            conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def _close(self) -> None:
        with self._lock:
            conn = self._conn
        if conn is not None:
            conn.close()


def query_within(upstream: Upstream, query: bytes, deadline: float) -> bytes:
    """One query to the TSA within `deadline` seconds: its reply (a granted DER TimeStampResp), or
    `RelayError`. The exchange runs on its own thread so a stalled TSA is cut off at the deadline."""
    exchange = Exchange(upstream, query, deadline)
    worker = threading.Thread(target=exchange.run, name="tsa-upstream", daemon=True)
    worker.start()
    if not exchange.done.wait(deadline):
        exchange.abort()
        raise RelayError(f"no reply within {deadline:g} s")
    if exchange.reply is None:
        raise RelayError(exchange.error or "no reply")
    return exchange.reply
