"""The fetcher itself (app/url_fetch.py) against real loopback servers: it connects to the address it checked
(not to a second DNS answer), speaks to the server by the URL's host name (Host, SNI, certificate), and
bounds name resolution by the deadline. Name resolution is the one part replaced here (a table instead of
DNS), so that a test can name hosts; the sockets, TLS and HTTP are real."""

from __future__ import annotations

import datetime
import io
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.url_fetch import FetchPolicy, open_url
from app.url_policy import AllowList, IPAddress
from signing import UrlFetchError, UrlFetchTimeoutError, UrlRefusedError
from tests.url_servers import LoopbackServer, serves

BODY = b"a file served over a pinned connection"
LOOPBACK = ipaddress.ip_address("127.0.0.1")


class TableResolver:
    """Answers from a table and counts the questions; a name it lacks is an error, like NXDOMAIN."""

    def __init__(self, table: dict[str, list[IPAddress]]):
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return self.table[host]


def policy(resolve: TableResolver, allow: list[str], tls: ssl.SSLContext | None = None) -> FetchPolicy:
    return FetchPolicy(
        allowlist=AllowList(allow),
        timeout=5.0,
        max_redirects=2,
        max_bytes=1_000_000,
        user_agent="Hallmark/test",
        tls=tls or ssl.create_default_context(),
        resolve=resolve,
    )


def fetch(url: str, rules: FetchPolicy) -> bytes:
    sink = io.BytesIO()
    with open_url(url, rules) as remote:
        remote.save(sink)
    return sink.getvalue()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(serves(BODY)) as running:
        yield running


def test_the_connection_goes_to_the_checked_address_with_the_original_host(server: LoopbackServer) -> None:
    resolver = TableResolver({"files.test": [LOOPBACK]})
    rules = policy(resolver, [f"files.test:{server.port}"])
    assert fetch(f"http://files.test:{server.port}/a.jpg?x=1", rules) == BODY
    assert resolver.asked == ["files.test"]  # resolved once: the connection used that answer
    assert server.requests[0].path == "/a.jpg?x=1"
    assert server.requests[0].headers["host"] == f"files.test:{server.port}"


def test_a_name_with_any_internal_address_is_refused_before_connecting(server: LoopbackServer) -> None:
    public = ipaddress.ip_address("93.184.215.14")
    resolver = TableResolver({"mixed.test": [public, LOOPBACK], "public.test": [public]})
    with pytest.raises(UrlRefusedError) as refused:
        fetch(f"http://mixed.test:{server.port}/", policy(resolver, []))
    assert refused.value.details["reason"] == "address"
    assert "127.0.0.1" not in refused.value.message
    assert server.requests == []
    # Control: the allow-list lets the same name through, to the loopback server.
    assert fetch(f"http://mixed.test:{server.port}/", policy(resolver, ["mixed.test"])) == BODY


def test_an_unknown_name_is_a_failed_fetch() -> None:
    with pytest.raises(UrlFetchError) as failed:
        fetch("http://nowhere.test/", policy(TableResolver({}), []))
    assert failed.value.details["reason"] == "dns"


def test_name_resolution_is_bounded_by_the_deadline() -> None:
    release = threading.Event()

    def stuck(host: str, port: int) -> list[IPAddress]:
        release.wait()
        return [LOOPBACK]

    rules = FetchPolicy(
        allowlist=AllowList([]), timeout=0.3, max_redirects=0, max_bytes=10, user_agent="t", resolve=stuck
    )
    try:
        with pytest.raises(UrlFetchTimeoutError):
            fetch("http://slow-dns.test/", rules)
    finally:
        release.set()


def test_ipv6_loopback_is_reached_when_allow_listed() -> None:
    if not socket.has_ipv6:
        pytest.fail("this machine has no IPv6 stack: the IPv6 path cannot be tested")
    with LoopbackServer(serves(BODY), host="::1") as v6:
        with pytest.raises(UrlRefusedError):
            fetch(v6.url(), policy(TableResolver({}), []))
        assert v6.requests == []
        assert fetch(v6.url(), policy(TableResolver({}), [v6.authority])) == BODY
        assert v6.requests[0].headers["host"] == v6.authority


# --- https: SNI and the certificate are checked against the URL's host name -----------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def tls_pair(tmp_path: Path, host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for `host` from a throw-away CA, and a client context that trusts
    only that CA."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("url-fetch test CA"))
        .issuer_name(_name("url-fetch test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{host}.pem", tmp_path / f"{host}.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


@pytest.mark.parametrize("cert_host", ["files.test", "other.test"])
def test_https_sends_sni_and_verifies_the_certificate_for_the_host(tmp_path: Path, cert_host: str) -> None:
    server_ctx, client_ctx = tls_pair(tmp_path, cert_host)
    with LoopbackServer(serves(BODY), tls=server_ctx) as tls_server:
        resolver = TableResolver({"files.test": [LOOPBACK]})
        rules = policy(resolver, [f"files.test:{tls_server.port}"], tls=client_ctx)
        url = f"https://files.test:{tls_server.port}/a.jpg"
        if cert_host == "files.test":
            assert fetch(url, rules) == BODY
            assert tls_server.requests[0].headers["host"] == f"files.test:{tls_server.port}"
        else:
            with pytest.raises(UrlFetchError) as failed:
                fetch(url, rules)
            assert failed.value.details["reason"] == "tls"
            assert tls_server.requests == []  # no HTTP request was sent over the unverified connection
        assert tls_server.server_names == ["files.test"]
