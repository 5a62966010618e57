"""The interop corpus at core level: every file of EXPECTED.tsv, inspected by the real core.

EXPECTED.tsv is what the reference library reports with remote fetching and OCSP off and no trust anchors.
Our engine fixture trusts only the test PKI, so every foreign signature is untrusted, as in the reference
run. Each file must answer in bounded time without touching the network.
"""

from __future__ import annotations

import csv
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import c2pa
import pytest

import signing
from tests.fixtures import INTEROP
from tests.interop_corpus import refused_as_malformed
from tests.waiting import wait_for

T = TypeVar("T")

HANG_LIMIT_S = 60.0
UNTRUSTED = "signingCredential.untrusted"
CREDENTIAL_PREFIXES = ("signingCredential.", "timeStamp.", "cawg.")


@dataclass(frozen=True)
class Row:
    file: str
    state: str  # Valid | Invalid | Error:<kind>
    failure_codes: tuple[str, ...]
    note: str


def read_expected(path: Path) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            Row(
                file=r["file"],
                state=r["c2pa_state"],
                failure_codes=tuple(c for c in (r["failure_codes"] or "").split(",") if c),
                note=r["note"] or "",
            )
            for r in reader
        ]


def _names_at_collection() -> list[str]:
    # Parametrization needs the names before fixtures exist: read the vendored corpus directly.
    return [row.file for row in read_expected(INTEROP / "EXPECTED.tsv")]


@pytest.fixture(scope="session")
def expected(interop_dir: Path) -> dict[str, Row]:
    return {row.file: row for row in read_expected(interop_dir / "EXPECTED.tsv")}


@pytest.fixture
def no_python_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Python-level way to open a connection raises (and is recorded). The engine is native Rust, so
    this cannot see its sockets: `test_remote_manifest_is_not_fetched_by_the_native_engine` covers that."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise OSError("network access is forbidden during verification")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def bounded(fn: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    """Run `fn` in a daemon thread; fail the test (instead of hanging) if it never returns. The bound is
    generous: it catches a hang (a remote fetch that waits on a socket, a parser loop), not slowness."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the test thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(HANG_LIMIT_S)
    if worker.is_alive():
        pytest.fail(f"no answer after {HANG_LIMIT_S:.0f} s: the call hangs (thread abandoned)", pytrace=False)
    return box.get("value"), box.get("error")


def _inspect(engine: signing.Engine, path: Path) -> Callable[[], signing.VerificationReport]:
    def call() -> signing.VerificationReport:
        with path.open("rb") as stream:
            return signing.inspect_asset(engine, stream)

    return call


@pytest.mark.parametrize("name", _names_at_collection())
def test_interop_file_matches_reference_verdict(
    name: str,
    interop_dir: Path,
    expected: dict[str, Row],
    engine: signing.Engine,
    no_python_network: list[str],
) -> None:
    row = expected[name]
    path = interop_dir / name
    assert path.is_file(), f"{path} is listed in EXPECTED.tsv but missing"
    report, error = bounded(_inspect(engine, path))
    assert no_python_network == [], f"{name}: network access attempted: {no_python_network}"

    if row.state == "Error:Other":
        # Hostile or malformed input: each file gets the one answer tests/interop_corpus.py lists for it.
        if refused_as_malformed(name):
            # MalformedAssetError is an AssetError: the client's file is at fault (HTTP 422, never a 500).
            assert isinstance(error, signing.MalformedAssetError), repr(error)
            return
        assert error is None, repr(error)
        assert report is not None
        assert report.outcome is signing.Outcome.INVALID, report
        assert report.integrity is signing.Integrity.UNREADABLE, report
        assert report.engine_error
        return

    assert error is None, f"{name}: {error!r}"
    assert report is not None
    failures = {c.code for c in report.codes.failure}
    if row.state == "Valid":
        assert report.outcome is signing.Outcome.VALID_UNTRUSTED, report.summary
        assert report.integrity is signing.Integrity.INTACT, report.summary
        assert report.signer is not None
        assert not report.signer.trusted
        assert UNTRUSTED in failures
        assert set(row.failure_codes) <= failures
        assert all(code.startswith(CREDENTIAL_PREFIXES) for code in failures), failures
    elif row.state == "Invalid":
        assert report.outcome is signing.Outcome.INVALID, report.summary
        assert report.integrity is signing.Integrity.TAMPERED, report.summary
        missing = set(row.failure_codes) - {UNTRUSTED} - failures
        assert not missing, (
            f"{name}: reference failure codes not reported: {sorted(missing)} (got {failures})"
        )
    elif row.state == "Error:ManifestNotFound":
        assert report.outcome is signing.Outcome.NONE, report.summary
        assert report.integrity is signing.Integrity.ABSENT
        assert report.remote_manifest is None
        assert report.manifest_id is None
    elif row.state == "Error:Error" and row.note.startswith("Remote:"):
        match = re.search(r"\burl (\S+)", row.note)
        assert match, f"no URL in the note of {name}: {row.note!r}"
        assert report.outcome is signing.Outcome.NONE, report.summary
        assert report.integrity is signing.Integrity.ABSENT
        assert report.remote_manifest is not None
        # The note is cut at 80 characters: the URL it shows is a prefix of the real one.
        assert report.remote_manifest.url.startswith(match.group(1)), report.remote_manifest
        assert report.remote_manifest.fetched is False
    else:
        pytest.fail(f"EXPECTED.tsv row for {name} has a state this test does not know: {row.state!r}")


def test_every_corpus_file_is_listed(interop_dir: Path, expected: dict[str, Row]) -> None:
    on_disk = {p.name for p in interop_dir.iterdir() if p.is_file()} - {"EXPECTED.tsv", "README.md"}
    assert on_disk == set(expected)
    assert set(_names_at_collection()) == set(expected)


# --- the native engine does not fetch a remote manifest ----------------------------------------------------


@dataclass
class Listener:
    connections: list[Any]  # peer addresses of the accepted connections
    endpoints: list[tuple[socket.AddressFamily, str, int]] = field(default_factory=list)

    def drain(self) -> bool:
        """Connect once to every listening socket and wait (bounded) until each marker connection has been
        accepted, then forget the markers. False if one was never accepted."""
        for family, host, port in self.endpoints:
            with socket.socket(family, socket.SOCK_STREAM) as marker:
                marker.connect((host, port))
                me = tuple(marker.getsockname()[:2])

                def accepted(me: tuple[Any, ...] = me) -> bool:
                    return any(tuple(a[:2]) == me for a in self.connections)

                if not wait_for(accepted):
                    return False
                self.connections[:] = [a for a in self.connections if tuple(a[:2]) != me]
        return True


def _listen(host: str, family: socket.AddressFamily, port: int) -> socket.socket | None:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(16)
    except OSError:
        sock.close()
        return None
    sock.settimeout(0.1)
    return sock


@pytest.fixture
def listener_on_remote_port(interop_dir: Path, expected: dict[str, Row]) -> Iterator[Listener]:
    """Listen where libpng-test_with_url.png's remote manifest lives (localhost:5000): a native fetch by the
    engine would show up here as an accepted connection."""
    match = re.search(r"url https?://localhost:(\d+)/", expected["libpng-test_with_url.png"].note)
    assert match, "the corpus note no longer names a localhost URL"
    port = int(match.group(1))
    ipv4 = _listen("127.0.0.1", socket.AF_INET, port)
    if ipv4 is None:
        # Another process serves that port (a concurrent run of this test, a local dev server): whatever the
        # engine did would reach it, not us. The Python-level guard and the timing checks still apply.
        pytest.skip(f"127.0.0.1:{port} is busy; cannot watch for a native remote-manifest fetch")
    ipv6 = _listen("::1", socket.AF_INET6, port)  # best effort: localhost may resolve to ::1 as well
    socks = [s for s in (ipv4, ipv6) if s is not None]
    state = Listener(connections=[], endpoints=[(s.family, *s.getsockname()[:2]) for s in socks])
    stop = threading.Event()

    def serve(sock: socket.socket) -> None:
        while not stop.is_set():
            try:
                conn, addr = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            state.connections.append(addr)  # recorded before the client can see the connection end
            conn.close()

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in socks]
    for t in threads:
        t.start()
    try:
        yield state
    finally:
        stop.set()
        for t in threads:
            t.join(2)
        for s in socks:
            s.close()


def test_remote_manifest_is_not_fetched_by_the_native_engine(
    interop_dir: Path, engine: signing.Engine, listener_on_remote_port: Listener
) -> None:
    path = interop_dir / "libpng-test_with_url.png"
    # Control: the engine with its default settings does fetch, and the listener sees it.
    with path.open("rb") as stream, pytest.raises(c2pa.C2paError):
        c2pa.Reader(
            "image/png", stream, context=c2pa.Context.from_dict({"verify": {"remote_manifest_fetch": True}})
        )
    assert listener_on_remote_port.drain()
    assert listener_on_remote_port.connections, "control failed: the listener did not see the engine's fetch"
    listener_on_remote_port.connections.clear()

    report, error = bounded(_inspect(engine, path))
    assert error is None, repr(error)
    assert report is not None
    assert report.remote_manifest is not None
    assert report.remote_manifest.fetched is False
    # Connections are accepted in order: once a marker connection made now has been accepted, any
    # connection the engine made during the inspection has been accepted (and recorded) too.
    assert listener_on_remote_port.drain(), "the listener did not accept its own marker connection"
    assert listener_on_remote_port.connections == [], "Hallmark's engine fetched the remote manifest"
