"""`hallmark verify URL`: the CLI fetches with the service's SSRF-safe fetcher and settings
(app/url_fetch.py), against real loopback servers (tests/url_servers.py). Exit 6: refused by this
configuration (fetching off, an address or redirect not allowed, too large); exit 7: the fetch failed (here:
past the time limit)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.cli.exitcodes import ExitCode
from tests.conftest import make_data_dir
from tests.integration.test_cli import hallmark, no_traceback, ok
from tests.url_servers import LoopbackServer, never_answers, redirects_to, serves

if TYPE_CHECKING:
    from tests.pki import TestPki


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Path:
    return make_data_dir(tmp_path_factory.mktemp("cli-url") / "var", pki)


@pytest.fixture(scope="module")
def signed_jpeg(data_dir: Path, interop_dir: Path) -> bytes:
    """A JPEG signed by `hallmark sign` with the test key, which the data directory's trust profile trusts."""
    src = data_dir.parent / "generated.jpg"
    shutil.copyfile(interop_dir / "no_manifest.jpg", src)
    out = data_dir.parent / "generated.signed.jpg"
    ok(
        hallmark(
            data_dir, "sign", str(src), "--model-name", "url-cli", "--model-version", "1", "-o", str(out)
        )
    )
    return out.read_bytes()


@pytest.fixture
def file_server(signed_jpeg: bytes) -> Iterator[LoopbackServer]:
    with LoopbackServer(serves(signed_jpeg, "image/jpeg")) as server:
        yield server


def verify(data_dir: Path, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = hallmark(data_dir, "verify", "--json", url, **env)
    no_traceback(result)
    return result


def refused(result: subprocess.CompletedProcess[str], code: ExitCode, error_code: str) -> dict[str, Any]:
    assert result.returncode == code, result.stdout + result.stderr
    body: dict[str, Any] = json.loads(result.stdout)
    assert body["exit_code"] == code
    assert body["error"]["code"] == error_code, body
    return body


def test_a_signed_file_by_allow_listed_url_verifies(data_dir: Path, file_server: LoopbackServer) -> None:
    env = {"HALLMARK_URL_FETCH": "true", "HALLMARK_URL_ALLOWLIST": file_server.authority}
    report = json.loads(ok(verify(data_dir, file_server.url(), **env)).stdout)
    assert report["outcome"] == "trusted"
    assert report["ai"]["model_name"] == "url-cli"
    human = ok(hallmark(data_dir, "verify", file_server.url(), **env)).stdout
    assert "outcome:     trusted" in human
    assert [seen.path for seen in file_server.requests] == ["/file", "/file"]
    assert {seen.headers["user-agent"] for seen in file_server.requests} == {f"Hallmark/{version()}"}


def version() -> str:
    from app.runtime import HALLMARK_VERSION

    return HALLMARK_VERSION


def test_an_unsigned_file_by_url_exits_5(data_dir: Path, interop_dir: Path) -> None:
    """The negative control of the one above: the exit code follows what the fetched file carries."""
    with LoopbackServer(serves((interop_dir / "no_manifest.jpg").read_bytes())) as server:
        result = verify(
            data_dir, server.url(), HALLMARK_URL_FETCH="true", HALLMARK_URL_ALLOWLIST=server.authority
        )
    assert result.returncode == ExitCode.NONE, result.stdout + result.stderr
    assert json.loads(result.stdout)["outcome"] == "none"


def test_a_loopback_url_not_allow_listed_is_refused_before_any_connection(
    data_dir: Path, file_server: LoopbackServer
) -> None:
    body = refused(
        verify(data_dir, file_server.url(), HALLMARK_URL_FETCH="true"), ExitCode.URL_REFUSED, "url-refused"
    )
    assert "not a public internet address (loopback)" in body["error"]["message"]
    assert body["error"]["details"] == {"reason": "address"}
    assert "HALLMARK_URL_ALLOWLIST" in body["error"]["hint"]
    assert file_server.requests == []
    text = hallmark(data_dir, "verify", file_server.url(), HALLMARK_URL_FETCH="true")
    assert text.returncode == ExitCode.URL_REFUSED
    assert text.stdout == ""
    assert text.stderr.startswith("error: 127.0.0.1 is not a public internet address")


def test_a_redirect_to_a_host_not_allowed_is_refused(data_dir: Path, file_server: LoopbackServer) -> None:
    """127.0.0.1:PORT is allow-listed and redirects to localhost, which is not: the file is not asked for."""
    other = f"http://localhost:{file_server.port}/file"
    with LoopbackServer(redirects_to(other)) as hop:
        env = {"HALLMARK_URL_FETCH": "true", "HALLMARK_URL_ALLOWLIST": hop.authority}
        body = refused(verify(data_dir, hop.url(), **env), ExitCode.URL_REFUSED, "url-refused")
    assert body["error"]["details"] == {"reason": "redirect"}
    assert f"redirected to http://localhost:{file_server.port}" in body["error"]["message"]
    assert [seen.path for seen in hop.requests] == ["/file"]
    assert file_server.requests == []


def test_with_fetching_switched_off_nothing_is_fetched(data_dir: Path, file_server: LoopbackServer) -> None:
    """HALLMARK_URL_FETCH is off by default: even an allow-listed URL is not fetched."""
    result = verify(data_dir, file_server.url(), HALLMARK_URL_ALLOWLIST=file_server.authority)
    body = refused(result, ExitCode.URL_REFUSED, "url-fetch-disabled")
    assert "HALLMARK_URL_FETCH=true" in body["error"]["hint"]
    assert file_server.requests == []


def test_a_file_over_the_size_limit_is_refused(data_dir: Path, file_server: LoopbackServer) -> None:
    env = {
        "HALLMARK_URL_FETCH": "true",
        "HALLMARK_URL_ALLOWLIST": file_server.authority,
        "HALLMARK_MAX_UPLOAD_BYTES": "1000",
    }
    body = refused(verify(data_dir, file_server.url(), **env), ExitCode.URL_REFUSED, "asset-too-large")
    assert "larger than the limit of 1000 bytes" in body["error"]["message"]


def test_a_server_that_never_answers_is_a_failed_fetch_at_the_time_limit(data_dir: Path) -> None:
    with LoopbackServer(never_answers()) as server:
        env = {
            "HALLMARK_URL_FETCH": "true",
            "HALLMARK_URL_ALLOWLIST": server.authority,
            "HALLMARK_URL_FETCH_TIMEOUT": "0.5",
        }
        body = refused(verify(data_dir, server.url(), **env), ExitCode.URL_FAILED, "url-fetch-timeout")
    assert "took longer than the limit of 0.5 s" in body["error"]["message"]
    assert len(server.requests) == 1
