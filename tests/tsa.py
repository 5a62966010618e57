"""A real RFC 3161 timestamp authority on 127.0.0.1: OpenSSL's `ts -reply` behind a tiny HTTP handler.

`LocalTsa` makes its own CA (the TSA trust anchor, deliberately unrelated to the signing PKI) and a TSA
leaf (EKU timeStamping, critical), writes an `openssl ts` configuration and answers every
`application/timestamp-query` POST with a fresh `openssl ts -reply` (one subprocess per request). Modes:

- ``ok``: a real, signed timestamp response (the reply carries the TSA certificate and its CA);
- ``blackhole``: accepts the connection, reads the request and never answers until the TSA is closed;
- ``error``: HTTP 500;
- ``garbage``: HTTP 200 ``application/timestamp-reply`` with bytes that are not a timestamp response.

Use it as a context manager; leaving it stops the server and joins every thread it started.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.files import write_private, write_public
from signing.devpki import issue_ca, issue_leaf, key_pem, pem

Mode = Literal["ok", "blackhole", "error", "garbage"]
MODES: tuple[Mode, ...] = ("ok", "blackhole", "error", "garbage")
TSA_POLICY_OID = "1.3.6.1.4.1.99999.1.1"  # a private-arc policy; `openssl ts` needs one
MAX_QUERY = 16 * 1024


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hallmark Test TSA"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _tsa_leaf(
    key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name("Hallmark Test Time Stamping Unit"))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # digitalSignature + nonRepudiation (contentCommitment)
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
        .sign(issuer_key, hashes.SHA256())
    )


_CONFIG = """\
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa-cert.pem
certs = $dir/tsa-chain.pem
signer_key = $dir/tsa-key.pem
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class LocalTsa:
    """A local RFC 3161 TSA. `url`, `root_pem` (its trust anchor) and `requests` (POSTs received)."""

    def __init__(self, mode: Mode = "ok") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown TSA mode {mode!r}")
        if shutil.which("openssl") is None:
            raise RuntimeError("the `openssl` command is needed for the local TSA")
        self.mode: Mode = mode
        self.requests = 0
        self.last_query: bytes | None = None
        self._lock = threading.Lock()  # `openssl ts` increments a serial file: one reply at a time
        self._released = threading.Event()  # set on close: black-holed handlers give up
        self._tmp = tempfile.TemporaryDirectory(prefix="hallmark-tsa-")
        self.dir = Path(self._tmp.name)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = issue_ca(_name("Hallmark Test TSA Root CA"), root_key, path_length=0)
        tsa_key = ec.generate_private_key(ec.SECP256R1())
        tsa_cert = _tsa_leaf(tsa_key, root, root_key)
        self._root, self._root_key = root, root_key
        self.root_pem: bytes = pem(root)
        self.cert_pem: bytes = pem(tsa_cert)
        write_public(self.dir / "root.pem", self.root_pem)
        write_public(self.dir / "tsa-cert.pem", self.cert_pem)
        write_public(self.dir / "tsa-chain.pem", self.root_pem)
        write_private(self.dir / "tsa-key.pem", key_pem(tsa_key))
        write_public(self.dir / "serial", b"01\n")
        write_public(self.dir / "tsa.cnf", _CONFIG.format(dir=self.dir, policy=TSA_POLICY_OID).encode())
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = False  # server_close() joins the handler threads
        self._server.block_on_close = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-tsa", daemon=True
        )
        self._started = False

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/tsa"

    def __enter__(self) -> LocalTsa:
        self._thread.start()
        self._started = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._released.set()
        if self._started:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._started = False
        self._server.server_close()  # joins the request threads (they return once released)
        self._tmp.cleanup()

    def issue_claim_signer(self, out: Path) -> tuple[Path, Path]:
        """A C2PA claim-signing leaf (EKU emailProtection) issued by this TSA's root: (chain, key).

        For checking what trusting the TSA root also trusts."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name("Signer under the TSA root")
        leaf = issue_leaf(name, key, issuer=self._root, issuer_key=self._root_key)
        chain, key_path = out / "tsa-root-signer-chain.pem", out / "tsa-root-signer-key.pem"
        write_public(chain, pem(leaf))
        write_private(key_path, key_pem(key))
        return chain, key_path

    # --- the reply ----------------------------------------------------------------------------------

    def reply(self, query: bytes) -> bytes:
        """Run `openssl ts -reply` on one DER timestamp query; the DER response."""
        with self._lock, tempfile.NamedTemporaryFile(dir=self.dir, suffix=".tsq") as fh:
            fh.write(query)
            fh.flush()
            done = subprocess.run(
                [
                    "openssl",
                    "ts",
                    "-reply",
                    "-config",
                    str(self.dir / "tsa.cnf"),
                    "-queryfile",
                    fh.name,
                    "-signer",
                    str(self.dir / "tsa-cert.pem"),
                    "-inkey",
                    str(self.dir / "tsa-key.pem"),
                    "-chain",
                    str(self.dir / "tsa-chain.pem"),
                ],
                capture_output=True,
                timeout=10,
                check=False,
            )
        if done.returncode != 0 or not done.stdout:
            raise RuntimeError(f"openssl ts -reply failed: {done.stderr.decode(errors='replace')[:500]}")
        return done.stdout

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet test output

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                query = self.rfile.read(min(length, MAX_QUERY))
                with tsa._lock:
                    tsa.requests += 1
                    tsa.last_query = query
                if tsa.mode == "blackhole":
                    tsa._released.wait()
                    self.close_connection = True
                    return
                if tsa.mode == "error":
                    self._send(500, b"internal error", "text/plain")
                elif tsa.mode == "garbage":
                    self._send(200, b"\x30\x03\x02\x01\x07not a timestamp", "application/timestamp-reply")
                elif self.headers.get("Content-Type", "").split(";")[0].strip() != (
                    "application/timestamp-query"
                ):
                    self._send(415, b"expected application/timestamp-query", "text/plain")
                else:
                    try:
                        body = tsa.reply(query)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        self._send(500, str(exc).encode(), "text/plain")
                    else:
                        self._send(200, body, "application/timestamp-reply")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

        return Handler
