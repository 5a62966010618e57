"""POST /v1/verify with {"url": ...} through HTTP, against real loopback servers: off by default, what is
refused before any connection, redirects, size and time limits, and what the fetcher sends."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.routes.verify_url import USER_AGENT
from app.settings import Settings
from tests.url_servers import (
    LoopbackServer,
    cut_short,
    drips,
    endless_body,
    never_answers,
    redirect_chain,
    redirects_to,
    serves,
)


@pytest.fixture(scope="module")
def signed_jpeg(tmp_path_factory: pytest.TempPathFactory, interop_dir: Path, pki: Any) -> bytes:
    """A JPEG signed by the test key (trusted by the test root every client here uses)."""
    from tests.conftest import make_data_dir

    settings = Settings(data_dir=make_data_dir(tmp_path_factory.mktemp("signer") / "var", pki))
    with TestClient(create_app(settings)) as client:
        _, token = client.app.state.runtime.api_keys.create("t", {"sign"})  # type: ignore[attr-defined]
        response = client.post(
            "/v1/sign",
            headers={"Authorization": f"Bearer {token}"},
            data={"model_name": "url-diffusion", "model_version": "1"},
            files={"file": ("a.jpg", (interop_dir / "no_manifest.jpg").read_bytes())},
        )
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture
def file_server(signed_jpeg: bytes) -> Iterator[LoopbackServer]:
    with LoopbackServer(serves(signed_jpeg, "image/jpeg")) as server:
        yield server


def url_client(settings: Settings, **update: Any) -> TestClient:
    return TestClient(create_app(settings.model_copy(update={"url_fetch": True, **update})))


def verify_url(client: TestClient, url: str, **kwargs: Any) -> httpx2.Response:
    response: httpx2.Response = client.post("/v1/verify", json={"url": url}, **kwargs)
    return response


def problem(response: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{code}", body
    return body


# --- on, off, and the allow-list ------------------------------------------------------------------------


def test_an_allow_listed_loopback_server_serves_a_file_that_verifies(
    settings: Settings, file_server: LoopbackServer
) -> None:
    with url_client(settings, url_allowlist=[file_server.authority]) as client:
        response = verify_url(client, file_server.url())
        full = client.post("/v1/verify?detail=full", json={"url": file_server.url()})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["outcome"] == "trusted"
    assert report["ai"]["model_name"] == "url-diffusion"
    assert "manifest_store" not in report
    assert full.status_code == 200
    assert "manifest_store" in full.json()  # the query parameters work as for an upload
    assert [seen.path for seen in file_server.requests] == ["/file", "/file"]


def test_an_unsigned_file_by_url_reports_none(settings: Settings, interop_dir: Path) -> None:
    """The negative control: the URL path reports what the file carries, not a fixed answer."""
    with (
        LoopbackServer(serves((interop_dir / "no_manifest.jpg").read_bytes())) as server,
        url_client(settings, url_allowlist=[server.authority]) as client,
    ):
        response = verify_url(client, server.url())
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "none"


def test_url_input_is_off_by_default(settings: Settings, file_server: LoopbackServer) -> None:
    assert Settings().url_fetch is False
    on = settings.model_copy(update={"url_allowlist": [file_server.authority]})
    with TestClient(create_app(on)) as client:
        response = verify_url(client, file_server.url())
        options = client.get("/v1/verify/options")
    body = problem(response, 403, "url-fetch-disabled")
    assert "HALLMARK_URL_FETCH" in body["hint"]
    assert file_server.requests == []  # no request was made
    assert options.json() == {"url_input": False, "max_file_bytes": settings.max_upload_bytes}


def test_the_options_endpoint_says_when_url_input_is_on(settings: Settings) -> None:
    with url_client(settings) as client:
        assert client.get("/v1/verify/options").json()["url_input"] is True


def test_the_same_url_without_the_allow_list_is_refused_before_any_connection(
    settings: Settings, file_server: LoopbackServer
) -> None:
    with url_client(settings) as client:
        response = verify_url(client, file_server.url())
    body = problem(response, 422, "url-refused")
    assert body["details"]["reason"] == "address"
    assert "127.0.0.1 is not a public internet address (loopback)" in body["detail"]
    assert file_server.requests == []


def test_an_allow_list_entry_without_a_port_admits_any_port(
    settings: Settings, file_server: LoopbackServer
) -> None:
    with url_client(settings, url_allowlist=["127.0.0.1"]) as client:
        assert verify_url(client, file_server.url()).status_code == 200
    with url_client(settings, url_allowlist=[f"127.0.0.1:{file_server.port + 1}"]) as client:
        problem(verify_url(client, file_server.url()), 422, "url-refused")  # another port: not admitted
    assert len(file_server.requests) == 1


def test_a_host_name_that_resolves_to_loopback_is_refused_unless_allow_listed(
    settings: Settings, file_server: LoopbackServer
) -> None:
    url = f"http://localhost:{file_server.port}/file"
    with url_client(settings) as client:
        body = problem(verify_url(client, url), 422, "url-refused")
    assert "localhost resolves to an address that is not on the public internet" in body["detail"]
    assert "127.0.0.1" not in body["detail"]  # the resolved address is not shown
    assert file_server.requests == []
    with url_client(settings, url_allowlist=[f"localhost:{file_server.port}"]) as client:
        assert verify_url(client, url).status_code == 200
    assert file_server.requests[0].headers["host"] == f"localhost:{file_server.port}"


# --- what is refused before any connection --------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::127.0.0.1]",
        "0.0.0.0",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "198.18.0.1",
        "192.0.2.1",
        "224.0.0.1",
        "240.0.0.1",
        "[fe80::1]",
        "[fc00::1]",
        "[fec0::1]",
        "[ff02::1]",
        "[2002:7f00:1::]",
        "[64:ff9b::a00:1]",
        "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
        "2130706433",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "127.1",
    ],
)
def test_internal_and_odd_address_literals_are_refused(
    settings: Settings, file_server: LoopbackServer, host: str
) -> None:
    with url_client(settings) as client:
        body = problem(verify_url(client, f"http://{host}:{file_server.port}/file"), 422, "url-refused")
    assert body["details"]["reason"] in {"address", "host"}
    assert file_server.requests == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:70/_x", "scheme"),
        ("ftp://example.com/file.jpg", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("example.com/file.jpg", "scheme"),
        ("http://user:secret@example.com/file.jpg", "userinfo"),
        ("http://@example.com/file.jpg", "userinfo"),
        ("http://example.com:99999/file.jpg", "port"),
        ("http:///file.jpg", "host"),
        ("http://exa mple.com/", "malformed"),
    ],
)
def test_urls_that_are_not_plain_http_are_refused(settings: Settings, url: str, reason: str) -> None:
    with url_client(settings) as client:
        body = problem(verify_url(client, url), 422, "url-refused")
    assert body["details"]["reason"] == reason


def test_credentials_in_an_allow_listed_url_are_refused(
    settings: Settings, file_server: LoopbackServer
) -> None:
    with url_client(settings, url_allowlist=[file_server.authority]) as client:
        url = f"http://user:pw@{file_server.authority}/file"
        problem(verify_url(client, url), 422, "url-refused")
    assert file_server.requests == []


# --- redirects ------------------------------------------------------------------------------------------


def test_a_redirect_to_a_host_not_allowed_is_refused_and_never_contacted(
    settings: Settings, file_server: LoopbackServer
) -> None:
    with (
        LoopbackServer(redirects_to(file_server.url())) as first,
        url_client(settings, url_allowlist=[first.authority]) as client,
    ):
        body = problem(verify_url(client, first.url("/start")), 422, "url-refused")
        assert body["details"]["reason"] == "redirect"
        assert [seen.path for seen in first.requests] == ["/start"]
        assert file_server.requests == []
        # Control: with both allow-listed the same redirect is followed.
        with url_client(settings, url_allowlist=[first.authority, file_server.authority]) as both:
            response = verify_url(both, first.url("/start"))
        assert response.status_code == 200, response.text
        assert [seen.path for seen in file_server.requests] == ["/file"]


def test_an_allow_listed_host_may_not_redirect_to_a_public_one(settings: Settings) -> None:
    """The allow-list admits hosts, not whatever they point at: refused before any connection leaves."""
    with (
        LoopbackServer(redirects_to("http://93.184.215.14/file.jpg")) as first,
        url_client(settings, url_allowlist=[first.authority]) as client,
    ):
        body = problem(verify_url(client, first.url("/start")), 422, "url-refused")
    assert body["details"]["reason"] == "redirect"


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:70/_x", "scheme"),
        ("http://user:pw@127.0.0.1/", "userinfo"),
        ("http://169.254.169.254/latest/meta-data/", "redirect"),
    ],
)
def test_a_redirect_is_checked_like_the_first_url(settings: Settings, location: str, reason: str) -> None:
    with (
        LoopbackServer(redirects_to(location, 301)) as first,
        url_client(settings, url_allowlist=[first.authority]) as client,
    ):
        body = problem(verify_url(client, first.url("/start")), 422, "url-refused")
    assert body["details"]["reason"] == reason
    assert "redirect" in body["detail"]


def test_redirects_are_followed_up_to_the_limit(settings: Settings, signed_jpeg: bytes) -> None:
    with (
        LoopbackServer(redirect_chain(2, signed_jpeg)) as server,
        url_client(settings, url_allowlist=[server.authority], url_max_redirects=2) as client,
    ):
        response = verify_url(client, server.url("/hop/0"))
        assert response.status_code == 200, response.text
        assert [s.path for s in server.requests] == ["/hop/0", "/hop/1", "/hop/2"]


def test_one_redirect_more_than_the_limit_fails(settings: Settings, signed_jpeg: bytes) -> None:
    with (
        LoopbackServer(redirect_chain(3, signed_jpeg)) as server,
        url_client(settings, url_allowlist=[server.authority], url_max_redirects=2) as client,
    ):
        body = problem(verify_url(client, server.url("/hop/0")), 502, "url-fetch-failed")
        assert body["details"]["reason"] == "too-many-redirects"
        assert [s.path for s in server.requests] == ["/hop/0", "/hop/1", "/hop/2"]  # /hop/3 never asked


# --- size, time and upstream failures -------------------------------------------------------------------


@pytest.mark.parametrize("declared", [None, 10**12], ids=["no-length", "declared-length"])
def test_a_body_over_the_upload_limit_is_stopped(settings: Settings, declared: int | None) -> None:
    """The body never ends: that the request returns at all shows the fetcher stopped reading."""
    with (
        LoopbackServer(endless_body(declared)) as server,
        url_client(settings, url_allowlist=[server.authority], max_upload_bytes=200_000) as client,
    ):
        body = problem(verify_url(client, server.url()), 413, "asset-too-large")
    assert body["details"]["limit_bytes"] == 200_000


def test_a_file_just_under_the_limit_is_read(settings: Settings, signed_jpeg: bytes) -> None:
    with LoopbackServer(serves(signed_jpeg)) as server:
        limit = len(signed_jpeg)
        with url_client(settings, url_allowlist=[server.authority], max_upload_bytes=limit) as client:
            assert verify_url(client, server.url()).status_code == 200
        with url_client(settings, url_allowlist=[server.authority], max_upload_bytes=limit - 1) as client:
            problem(verify_url(client, server.url()), 413, "asset-too-large")


@pytest.mark.parametrize("behaviour", [drips, never_answers], ids=["drip-fed-body", "no-answer"])
def test_a_slow_server_times_out(settings: Settings, behaviour: Any) -> None:
    with (
        LoopbackServer(behaviour()) as server,
        url_client(settings, url_allowlist=[server.authority], url_fetch_timeout=0.5) as client,
    ):
        body = problem(verify_url(client, server.url()), 504, "url-fetch-timeout")
    assert "HALLMARK_URL_FETCH_TIMEOUT" in body["hint"]
    assert len(server.requests) == 1


def test_an_http_error_upstream_is_a_bad_gateway(settings: Settings, file_server: LoopbackServer) -> None:
    def not_found(h: Any) -> None:
        h.send_error(404)

    with (
        LoopbackServer(not_found) as server,
        url_client(settings, url_allowlist=[server.authority]) as client,
    ):
        body = problem(verify_url(client, server.url()), 502, "url-fetch-failed")
    assert body["details"]["reason"] == "http-status"
    assert "HTTP 404" in body["detail"]


def test_a_body_cut_short_is_a_failed_fetch_not_a_smaller_file(
    settings: Settings, signed_jpeg: bytes
) -> None:
    with (
        LoopbackServer(cut_short(signed_jpeg, 1000)) as short,
        LoopbackServer(cut_short(signed_jpeg, 0)) as whole,
        url_client(settings, url_allowlist=[short.authority, whole.authority]) as client,
    ):
        body = problem(verify_url(client, short.url()), 502, "url-fetch-failed")
        assert verify_url(client, whole.url()).status_code == 200  # control: the same file, whole
    assert body["details"]["reason"] == "protocol"


def test_a_closed_port_is_a_bad_gateway(settings: Settings) -> None:
    with LoopbackServer(serves(b"")) as server:
        port = server.port
    with url_client(settings, url_allowlist=[f"127.0.0.1:{port}"]) as client:
        body = problem(verify_url(client, f"http://127.0.0.1:{port}/"), 502, "url-fetch-failed")
    assert body["details"]["reason"] == "connect"


# --- what the fetcher sends and logs --------------------------------------------------------------------


def test_no_cookie_authorization_or_client_header_is_passed_on(
    settings: Settings, file_server: LoopbackServer
) -> None:
    with url_client(settings, url_allowlist=[file_server.authority]) as client:
        client.cookies.set("session", "client-cookie")
        response = verify_url(
            client,
            file_server.url(),
            headers={"Authorization": "Bearer hm_secret", "X-Forwarded-For": "1.2.3.4", "Referer": "x"},
        )
        assert response.status_code == 200
        verify_url(client, file_server.url())  # the remote server's Set-Cookie is not sent back either
    for seen in file_server.requests:
        assert set(seen.headers) == {"host", "user-agent", "accept", "accept-encoding", "connection"}
        assert seen.headers["accept-encoding"] == "identity"  # no compressed body to inflate
        assert seen.headers["user-agent"] == USER_AGENT
        assert seen.headers["host"] == file_server.authority
        assert not {"cookie", "authorization", "x-forwarded-for", "referer", "proxy-authorization"} & set(
            seen.headers
        )
    # Control: the recording server does see these headers when a client sends them.
    direct = httpx2.get(file_server.url(), headers={"Authorization": "Bearer x", "Cookie": "a=b"})
    assert direct.status_code == 200
    assert {"cookie", "authorization"} <= set(file_server.requests[-1].headers)
    assert USER_AGENT.startswith("Hallmark/")


def test_the_query_string_is_never_logged(
    settings: Settings, file_server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "token=s3cr3t-value"
    with (
        caplog.at_level(logging.DEBUG, logger="hallmark"),
        url_client(settings, url_allowlist=[file_server.authority]) as client,
    ):
        assert verify_url(client, file_server.url(f"/file?{secret}")).status_code == 200
        problem(verify_url(client, f"http://10.0.0.1/file?{secret}"), 422, "url-refused")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "verify by URL" in text  # control: the fetch and the refusal were logged
    assert "request failed" in text
    assert "s3cr3t" not in text
    assert file_server.requests[0].path == f"/file?{secret}"  # it was sent to the server, as it must be


# --- the JSON body --------------------------------------------------------------------------------------


def test_a_json_body_has_its_own_small_limit(settings: Settings) -> None:
    with url_client(settings) as client:
        huge = client.post("/v1/verify", json={"url": "http://example.com/" + "a" * 9000})
        extra = client.post("/v1/verify", json={"url": "http://example.com/", "cookie": "x"})
        upload = client.post("/v1/verify", files={"file": ("a", b"not media")})
    problem(huge, 413, "asset-too-large")
    assert huge.json()["details"]["limit_bytes"] == 8192
    body = problem(extra, 422, "invalid-request")
    assert body["errors"][0]["field"] == "cookie"
    problem(upload, 415, "unsupported-media-type")  # control: a multipart body still goes to the upload route


def test_a_key_required_for_verify_is_required_for_a_url_too(
    settings: Settings, file_server: LoopbackServer
) -> None:
    update = {"verify_requires_key": True, "url_allowlist": [file_server.authority]}
    with url_client(settings, **update) as client:
        refused = verify_url(client, file_server.url())
        _, token = client.app.state.runtime.api_keys.create("k", {"sign"})  # type: ignore[attr-defined]
        allowed = verify_url(client, file_server.url(), headers={"Authorization": f"Bearer {token}"})
    problem(refused, 401, "unauthorized")
    assert allowed.status_code == 200
    assert len(file_server.requests) == 1  # only the request with a key was fetched
