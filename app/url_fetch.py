"""The SSRF-safe fetcher behind verify-by-URL.

Each hop: check the URL (app/url_policy.py), resolve the host here, refuse it unless every address is public
(or the host is allow-listed), connect to that checked address (so a second DNS answer cannot redirect the
connection: no rebinding), send the original Host header and, for https, SNI and certificate verification
against the host name. Redirects are followed by hand and each is checked again. Size is counted as bytes
arrive and time is bounded in all by a deadline that aborts whatever is blocking. No cookies, credentials
or client headers are ever sent.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import IO
from urllib.parse import urljoin

from app.url_policy import AllowList, IPAddress, Target, address_refusal, parse_target, refused
from signing import AssetTooLargeError, UrlFetchError, UrlFetchTimeoutError, UrlRefusedError

Resolver = Callable[[str, int], list[IPAddress]]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024


def system_resolve(host: str, port: int) -> list[IPAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(ip_address(info[4][0]) for info in infos))


@dataclass(frozen=True)
class FetchPolicy:
    allowlist: AllowList
    timeout: float  # seconds, for everything
    max_redirects: int
    max_bytes: int
    user_agent: str
    # The system trust store by default; tests pass one that trusts their own CA.
    tls: ssl.SSLContext = field(default_factory=ssl.create_default_context)
    resolve: Resolver = system_resolve


class _Deadline:
    """The fetch's overall deadline: when it passes, the socket in use is shut down, which ends any blocked
    connect, send or read at once (a per-read timeout alone lets a server drip one byte at a time)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0 or self.expired:
            raise TimeoutError
        return left

    def guard(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            expired = self.expired
        if expired:
            self._abort(sock)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            sock = self._sock
        if sock is not None:
            self._abort(sock)

    @staticmethod
    def _abort(sock: socket.socket) -> None:
        # The plain socket's shutdown, also for an SSLSocket: its own would tear down TLS state that the
        # reading thread is using.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to checked addresses only (the first that answers), speaking to the server by
    the URL's host name."""

    def __init__(
        self, target: Target, addresses: list[IPAddress], deadline: _Deadline, tls: ssl.SSLContext | None
    ):
        super().__init__(target.host, target.port, timeout=deadline.remaining())
        self.default_port = 443 if tls else 80  # so that Host carries no port when it is the default one
        self._addresses = addresses
        self._deadline = deadline
        self._tls = tls

    def connect(self) -> None:
        for address in self._addresses[:-1]:
            with contextlib.suppress(ConnectionError):
                self.sock = self._connect(address)
                return
        self.sock = self._connect(self._addresses[-1])

    def _connect(self, address: IPAddress) -> socket.socket:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        self._deadline.guard(sock)
        try:
            sock.settimeout(self._deadline.remaining())
            sock.connect((str(address), self.port))
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
                self._deadline.guard(sock)
        except BaseException:
            sock.close()
            raise
        return sock


class RemoteFile:
    """A response that passed every check; `save` copies its body, bounded in size and time."""

    def __init__(
        self, response: http.client.HTTPResponse, target: Target, max_bytes: int, deadline: _Deadline
    ):
        self._response = response
        self._deadline = deadline
        self.target = target
        self.max_bytes = max_bytes
        self.declared_size = response.length  # Content-Length, already checked against the limit

    def save(self, sink: IO[bytes]) -> int:
        total = 0
        while chunk := self._response.read(CHUNK):
            total += len(chunk)
            if total > self.max_bytes:
                raise _too_large(self.max_bytes)
            sink.write(chunk)
        # read(n) ends quietly when the connection does, also when the deadline cut it: a short body is
        # an error, never a smaller file to verify.
        if self._deadline.expired:
            raise TimeoutError
        if self.declared_size is not None and total != self.declared_size:
            raise http.client.IncompleteRead(b"", self.declared_size - total)
        return total


def _too_large(limit: int) -> AssetTooLargeError:
    return AssetTooLargeError(
        f"The file at the URL is larger than the limit of {limit} bytes.",
        hint="The operator sets the limit with HALLMARK_MAX_UPLOAD_BYTES.",
        details={"limit_bytes": limit},
    )


def _failed(message: str, reason: str) -> UrlFetchError:
    return UrlFetchError(message, details={"reason": reason})


@contextlib.contextmanager
def open_url(url: str, policy: FetchPolicy) -> Iterator[RemoteFile]:
    """Open `url` under `policy`; the body is read within the `with` block (RemoteFile.save)."""
    target = parse_target(url)  # before the deadline's timer starts: a refused URL costs no thread
    deadline = _Deadline(policy.timeout)
    conn: _PinnedConnection | None = None
    try:
        with _translated(lambda: target, deadline):
            for hop in range(policy.max_redirects + 1):
                addresses = _checked_addresses(target, policy, deadline, hop)
                tls = policy.tls if target.scheme == "https" else None
                conn = _PinnedConnection(target, addresses, deadline, tls)
                conn.request(
                    "GET",
                    target.request_path,
                    headers={"User-Agent": policy.user_agent, "Accept": "*/*", "Connection": "close"},
                )
                response = conn.getresponse()
                if response.status in REDIRECTS:
                    target = _redirect(target, response.getheader("Location"), policy, hop + 1)
                    conn.close()
                    continue
                if response.status != http.client.OK:
                    raise _failed(f"{target.origin} answered HTTP {response.status}.", "http-status")
                if response.length is not None and response.length > policy.max_bytes:
                    raise _too_large(policy.max_bytes)
                yield RemoteFile(response, target, policy.max_bytes, deadline)
                return
            raise _failed(f"The URL redirected more than {policy.max_redirects} times.", "too-many-redirects")
    finally:
        deadline.cancel()
        if conn is not None:
            conn.close()


def _checked_addresses(target: Target, policy: FetchPolicy, deadline: _Deadline, hop: int) -> list[IPAddress]:
    """The addresses to connect to: every address the host has must be public, unless it is allow-listed."""
    after = f" (after {hop} redirect{'s' if hop > 1 else ''})" if hop else ""
    if target.literal is not None:
        addresses = [target.literal]
    else:
        addresses = _resolve(policy.resolve, target, deadline)
        if not addresses:
            raise _failed(f"The host {target.host} has no address{after}.", "dns")
    if policy.allowlist.admits(target):
        return addresses
    for address in addresses:
        why = address_refusal(address)
        if why is None:
            continue
        if target.literal is not None:
            raise refused(
                f"{target.host} is not a public internet address ({why}){after}; this service fetches only "
                "from public addresses.",
                "address",
            )
        # The address itself is not shown: it may describe the operator's internal network.
        raise refused(
            f"The host {target.host} resolves to an address that is not on the public internet{after}; "
            "this service fetches only from public addresses.",
            "address",
        )
    return addresses


def _resolve(resolve: Resolver, target: Target, deadline: _Deadline) -> list[IPAddress]:
    """Name resolution within the deadline: the C resolver cannot be interrupted, so it runs on a thread that
    is left to finish on its own when the deadline passes first."""
    found: list[IPAddress] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            found.extend(resolve(target.host, target.port))
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, daemon=True, name="url-fetch-resolve")
    worker.start()
    worker.join(deadline.remaining())
    if worker.is_alive():
        raise TimeoutError
    if failure:
        raise failure[0]
    return found


def _redirect(current: Target, location: str | None, policy: FetchPolicy, hop: int) -> Target:
    if not location:
        raise _failed(f"{current.origin} answered with a redirect that names no location.", "protocol")
    base = f"{current.origin}{current.request_path}"
    try:
        target = parse_target(urljoin(base, location))
    except UrlRefusedError as exc:
        raise refused(f"A redirect{_nth(hop)} was refused: {exc.message}", exc.details["reason"]) from None
    if policy.allowlist.admits(current) and not policy.allowlist.admits(target):
        raise refused(
            f"{current.origin} is allow-listed, but it redirected{_nth(hop)} to {target.origin}, which is "
            "not; this service does not follow such redirects.",
            "redirect",
        )
    return target


def _nth(hop: int) -> str:
    return "" if hop == 1 else f" (redirect {hop})"


@contextlib.contextmanager
def _translated(current: Callable[[], Target], deadline: _Deadline) -> Iterator[None]:
    """Network and protocol errors as the error tree's: timeout (504) or a failed fetch (502), naming the
    host of the hop that failed."""
    try:
        yield
    except (UrlFetchError, AssetTooLargeError):
        raise
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise _translation(exc, current(), deadline) from None


def _translation(exc: Exception, target: Target, deadline: _Deadline) -> UrlFetchError:
    if deadline.expired or isinstance(exc, TimeoutError):
        return UrlFetchTimeoutError(
            f"Fetching from {target.host} took longer than the limit of {deadline.seconds:g} s.",
            hint="The operator sets the limit with HALLMARK_URL_FETCH_TIMEOUT.",
            details={"reason": "timeout"},
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _failed(f"The TLS certificate of {target.host} could not be verified.", "tls")
    if isinstance(exc, socket.gaierror):
        return _failed(f"The host {target.host} could not be resolved.", "dns")
    if isinstance(exc, ssl.SSLError):
        return _failed(f"A TLS connection to {target.host} could not be made.", "tls")
    if isinstance(exc, http.client.HTTPException):
        return _failed(f"{target.host} sent an incomplete or invalid HTTP response.", "protocol")
    return _failed(f"Could not connect to {target.host}.", "connect")


@dataclass(frozen=True)
class PostAnswer:
    status: int
    retry_after: str | None  # the answer's Retry-After header, as sent


def post(url: str, body: bytes, headers: dict[str, str], policy: FetchPolicy) -> PostAnswer:
    """POST `body` to `url` under the same checks as a fetch (no redirects are followed: a webhook
    destination answers itself); returns the HTTP status and Retry-After. The response body is not read."""
    target = parse_target(url)
    deadline = _Deadline(policy.timeout)
    conn: _PinnedConnection | None = None
    try:
        with _translated(lambda: target, deadline):
            addresses = _checked_addresses(target, policy, deadline, 0)
            tls = policy.tls if target.scheme == "https" else None
            conn = _PinnedConnection(target, addresses, deadline, tls)
            conn.request(
                "POST",
                target.request_path,
                body=body,
                headers={"User-Agent": policy.user_agent, "Connection": "close", **headers},
            )
            response = conn.getresponse()
            return PostAnswer(response.status, response.getheader("Retry-After"))
    finally:
        deadline.cancel()
        if conn is not None:
            conn.close()
