"""RFC 3161 timestamps without letting a timestamp authority (TSA) hang or break signing.

The c2pa engine fetches the timestamp itself (native code) from the signer's TSA URL. It never falls back to
an untimestamped signature, and a TSA that accepts the connection but never answers blocks a sign for
~30 s. Three pieces keep that in check:

- `TsaRelay`: a loopback HTTP forwarder the engine is pointed at instead of the real TSA. It forwards the
  timestamp query with a hard deadline and answers 502 at once when the TSA is slow, down or misbehaving,
  so the engine fails in milliseconds.
- `CircuitBreaker`: after a run of TSA failures, stop asking the TSA for a while.
- `TimestampGuard`: the per-sign decision. Breaker closed: sign with the TSA. Breaker open, or the TSA
  failed: policy `require` raises `TimestampAuthorityError` (HTTP 503 + Retry-After); policy `best_effort`
  signs without a timestamp and says so.

Stdlib only: this module is part of the engine-free core.
"""

from __future__ import annotations

import contextlib
import enum
import http.client
import math
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

from signing.errors import ConfigError, TimestampAuthorityError

T = TypeVar("T")

QUERY_CONTENT_TYPE = "application/timestamp-query"
REPLY_CONTENT_TYPE = "application/timestamp-reply"
MAX_QUERY_BYTES = 8 * 1024  # a query is a hash, a nonce and a few flags: ~60-100 bytes
MAX_REPLY_BYTES = 64 * 1024  # a reply carries the TSA's certificates: a few KB


class TimestampPolicy(enum.StrEnum):
    """What a sign does when the TSA cannot be used."""

    REQUIRE = "require"  # fail the sign (HTTP 503 + Retry-After)
    BEST_EFFORT = "best_effort"  # sign without a timestamp and record that


# --- circuit breaker ------------------------------------------------------------------------------------


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker. Thread-safe; `clock` (monotonic seconds) is injectable.

    Closed: every call may go. `threshold` consecutive failures open it. Open: no call goes until
    `open_seconds` have passed; then it is half-open and exactly one call (the probe) may go. The probe's
    success closes it, its failure opens it again for another `open_seconds`. A probe that reports neither
    (`release()`, or nothing at all) frees the slot; an unreported probe slot expires after `open_seconds`.
    """

    def __init__(
        self,
        threshold: int = 3,
        open_seconds: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if open_seconds <= 0:
            raise ValueError("open_seconds must be positive")
        self.threshold = threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None  # None: closed
        self._probe_since: float | None = None  # a half-open probe is in flight since then

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state(self._clock())

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def _state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now - self._opened_at < self.open_seconds:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allow(self) -> bool:
        """May a call use the TSA now? In half-open state only the first caller gets True (the probe)."""
        with self._lock:
            now = self._clock()
            state = self._state(now)
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.OPEN:
                return False
            if self._probe_since is not None and now - self._probe_since < self.open_seconds:
                return False  # another caller is probing
            self._probe_since = now
            return True

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probe_since = None

    def failure(self) -> None:
        with self._lock:
            now = self._clock()
            self._failures += 1
            self._probe_since = None
            if self._opened_at is not None or self._failures >= self.threshold:
                self._opened_at = now  # (re)open: a failed probe, or the threshold reached

    def release(self) -> None:
        """The call ended without saying anything about the TSA (it failed for another reason)."""
        with self._lock:
            self._probe_since = None

    def retry_after(self) -> float:
        """Seconds until the breaker lets a probe through (0 when closed or half-open)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self._opened_at + self.open_seconds - self._clock())


# --- the per-sign decision ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimestampOutcome:
    """Whether the signature carries a timestamp and, if not, why (for the response and the ledger)."""

    timestamped: bool
    reason: str | None = None  # "breaker_open" | "tsa_failed" when not timestamped


class TimestampGuard:
    """Decides per sign whether to use the TSA, and what a TSA failure means under the policy.

    `sign(with_tsa, without_tsa)`: `with_tsa` signs with the relay-backed signer and raises
    `TimestampAuthorityError` when the TSA failed; `without_tsa` signs with a signer that has no TSA URL.
    Any other exception from `with_tsa` propagates and says nothing about the TSA.
    """

    def __init__(self, policy: TimestampPolicy, breaker: CircuitBreaker) -> None:
        self.policy = policy
        self.breaker = breaker

    def sign(self, with_tsa: Callable[[], T], without_tsa: Callable[[], T]) -> tuple[T, TimestampOutcome]:
        if not self.breaker.allow():
            return self._fallback(without_tsa, "breaker_open", None)
        try:
            result = with_tsa()
        except TimestampAuthorityError as exc:
            self.breaker.failure()
            return self._fallback(without_tsa, "tsa_failed", exc)
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.success()
        return result, TimestampOutcome(timestamped=True)

    def _fallback(
        self, without_tsa: Callable[[], T], reason: str, cause: TimestampAuthorityError | None
    ) -> tuple[T, TimestampOutcome]:
        if self.policy is TimestampPolicy.BEST_EFFORT:
            return without_tsa(), TimestampOutcome(timestamped=False, reason=reason)
        retry = max(1, math.ceil(self.breaker.retry_after()))
        details: dict[str, object] = {"reason": reason, "retry_after_seconds": retry}
        if cause is not None:
            details.update(cause.details)
        message = (
            "The timestamp authority failed repeatedly; signing is paused until it recovers."
            if reason == "breaker_open"
            else "The timestamp authority did not return a usable timestamp in time."
        )
        raise TimestampAuthorityError(
            message, hint=f"Retry in {retry} s; timestamps are required by this service.", details=details
        ) from None


# --- loopback relay -------------------------------------------------------------------------------------


class RelayError(Exception):
    """The TSA could not be used for one query (the relay answers 502)."""


@dataclass(frozen=True)
class _Upstream:
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> _Upstream:
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


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """One DER header at `at`: (tag, start of the value, end of the value). Raises ValueError."""
    if at + 2 > len(data):
        raise ValueError("truncated")
    tag, first = data[at], data[at + 1]
    start = at + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4 or start + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("truncated")
    return tag, start, end


def reply_problem(body: bytes) -> str | None:
    """Why `body` is not a granted RFC 3161 TimeStampResp, or None if its outer shape is right.

    Only the envelope is checked (the engine validates the token): SEQUENCE { PKIStatusInfo SEQUENCE {
    status INTEGER 0|1, ... }, timeStampToken SEQUENCE } with nothing after it. A reply that fails here is
    turned into a 502, so the engine reports a TSA failure instead of a vague decode error.
    """
    try:
        tag, start, end = _tlv(body, 0)
        if tag != 0x30 or end != len(body):
            return "reply is not a DER TimeStampResp"
        tag, status_start, status_end = _tlv(body, start)
        if tag != 0x30:
            return "reply has no PKIStatusInfo"
        tag, int_start, int_end = _tlv(body, status_start)
        if tag != 0x02 or not 0 < int_end - int_start <= 4 or int_end > status_end:
            return "reply has no PKIStatus"
        status = int.from_bytes(body[int_start:int_end], "big", signed=True)
        if status not in (0, 1):
            return f"the TSA refused the request (PKIStatus {status})"
        if status_end >= end:
            return "reply has no timeStampToken"
        tag, _, _ = _tlv(body, status_end)
    except ValueError as exc:
        return f"reply is not DER ({exc})"
    if tag != 0x30:
        return "reply has no timeStampToken"
    return None


class _Exchange:
    """One upstream request on a worker thread, abortable from the waiting thread."""

    def __init__(self, upstream: _Upstream, body: bytes, timeout: float) -> None:
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
        self._upstream = _Upstream.parse(tsa_url)
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
        exchange = _Exchange(self._upstream, query, self.deadline)
        worker = threading.Thread(target=exchange.run, name="tsa-relay-upstream", daemon=True)
        worker.start()
        if not exchange.done.wait(self.deadline):
            exchange.abort()
            raise RelayError(f"no reply within {self.deadline:g} s")
        if exchange.reply is None:
            raise RelayError(exchange.error or "no reply")
        return exchange.reply

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
