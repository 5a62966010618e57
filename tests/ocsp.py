"""A real OCSP responder on 127.0.0.1 for tests, and a CA whose leaves point at it.

`LocalOcsp` binds a port first, then makes a root CA -> issuing CA, so every claim-signing leaf it issues
(`issue`) carries an Authority Information Access extension with the responder's URL. The responder is a
small HTTP handler around `cryptography`'s OCSP builder: it answers GET and POST requests for leaves of its
issuing CA with `good` or `revoked` (after `revoke`), signed by a delegated responder certificate (EKU
OCSPSigning) that the issuing CA issued, and counts every request it receives (`requests`), so a test can
prove that no connection was made.

Use it as a context manager; leaving it stops the server, joins its threads and deletes its files.
"""

from __future__ import annotations

import base64
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from app.files import write_private, write_public
from signing.devpki import issue_ca, key_pem, pem

MAX_REQUEST = 16 * 1024


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hallmark Test OCSP CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class Leaf:
    """A claim-signing credential issued by the local CA: chain PEM (leaf first) and PKCS#8 key files."""

    chain: Path
    key: Path
    serial: int


class LocalOcsp:
    """A CA and its OCSP responder. `url`, `host` (host:port), `root_pem`, `requests`."""

    def __init__(self) -> None:
        self.requests = 0
        self._lock = threading.Lock()
        self._revoked: dict[int, datetime] = {}
        self._issued: dict[int, x509.Certificate] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="hallmark-ocsp-")
        self.dir = Path(self._tmp.name)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = False
        self._server.block_on_close = True  # server_close() joins the handler threads
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-ocsp", daemon=True)
        self._started = False
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = issue_ca(_name("Hallmark Test OCSP Root CA"), root_key, path_length=1)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._ca = issue_ca(
            _name("Hallmark Test OCSP Issuing CA"),
            self._ca_key,
            issuer=root,
            issuer_key=root_key,
            path_length=0,
        )
        # A delegated responder (EKU OCSPSigning, issued by the issuing CA) signs the answers: the engine
        # checks the profile of the first certificate in a response and refuses a CA certificate there.
        self._responder_key = ec.generate_private_key(ec.SECP256R1())
        self._responder = self._responder_cert()
        self.root_pem: bytes = pem(root)
        write_public(self.dir / "root.pem", self.root_pem)

    @property
    def host(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def __enter__(self) -> LocalOcsp:
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
        if self._started:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._started = False
        self._server.server_close()
        self._tmp.cleanup()

    # --- the CA -------------------------------------------------------------------------------------

    def _responder_cert(self) -> x509.Certificate:
        now = datetime.now(UTC)
        public = self._responder_key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(_name("Hallmark Test OCSP Responder"))
            .issuer_name(self._ca.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
            .sign(self._ca_key, hashes.SHA256())
        )

    def issue(self, name: str, *, ocsp_url: str | None = None) -> Leaf:
        """A claim-signing leaf (the profile the engine accepts) whose AIA names this responder."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self._ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(ocsp_url or self.url),
                        )
                    ]
                ),
                critical=False,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        with self._lock:
            self._issued[cert.serial_number] = cert
        chain = self.dir / f"{name}-chain.pem"
        key_path = self.dir / f"{name}-key.pem"
        write_public(chain, pem(cert) + pem(self._ca))
        write_private(key_path, key_pem(key))
        return Leaf(chain, key_path, cert.serial_number)

    def revoke(self, serial: int, when: datetime | None = None) -> None:
        with self._lock:
            self._revoked[serial] = when or datetime.now(UTC)

    # --- the responder ------------------------------------------------------------------------------

    def respond(self, der: bytes) -> bytes:
        try:
            request = ocsp.load_der_ocsp_request(der)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(serialization.Encoding.DER)
        now = datetime.now(UTC).replace(microsecond=0)
        with self._lock:
            cert = self._issued.get(request.serial_number)
            revoked_at = self._revoked.get(request.serial_number)
        if cert is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            ).public_bytes(serialization.Encoding.DER)
        status = ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=cert,
                issuer=self._ca,
                algorithm=request.hash_algorithm,
                cert_status=status,
                this_update=now - timedelta(minutes=1),
                next_update=now + timedelta(hours=1),
                revocation_time=revoked_at.replace(microsecond=0) if revoked_at else None,
                revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self._responder)
            .certificates([self._responder])
        )
        return builder.sign(self._responder_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        responder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet test output

            def _count(self) -> None:
                with responder._lock:
                    responder.requests += 1

            def do_POST(self) -> None:
                self._count()
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(self.rfile.read(min(length, MAX_REQUEST)))

            def do_GET(self) -> None:
                self._count()
                # RFC 6960 A.1: GET {url}/{url-encoding of base-64 of the DER request}; the engine puts the
                # base-64 straight after the host, and base-64 itself may contain '/'.
                encoded = urllib.parse.unquote(self.path.lstrip("/"))
                try:
                    der = base64.b64decode(encoded)
                except ValueError:
                    der = b""
                self._answer(der)

            def _answer(self, der: bytes) -> None:
                body = responder.respond(der)
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

        return Handler
