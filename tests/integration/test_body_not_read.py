"""Refusals that must happen before the request body is read, measured by the body bytes the app consumed.

The final status alone cannot show *when* a request was refused: a handler that reads the whole upload and
then answers 401 has the same status. Here the app is wrapped in an ASGI layer that counts the body bytes
it pulls through `receive`; a refusal must pull none, and the controls (the same requests, authorised or
within limits) show that the counter does count what is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.main import create_app
from app.settings import Settings

FORM = {"model_name": "test-diffusion", "model_version": "2.1"}
LIMIT = 200_000  # the upload limit of the app under test: the JPEG (~98 KB) fits, the padded one does not


class BodyCounter:
    """ASGI wrapper: how many request-body bytes the wrapped app has pulled through `receive`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.read = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counting_receive, send)


@dataclass
class Counted:
    client: TestClient
    app: FastAPI
    counter: BodyCounter

    def token(self, *scopes: str) -> str:
        _, token = self.app.state.runtime.api_keys.create("t", set(scopes))
        return str(token)

    def post(self, path: str, body: bytes, content_type: str, headers: dict[str, str]) -> Any:
        self.counter.read = 0
        return self.client.post(path, content=body, headers={"Content-Type": content_type, **headers})


@pytest.fixture
def counted(settings: Settings) -> Iterator[Counted]:
    app = create_app(settings.model_copy(update={"max_upload_bytes": LIMIT, "max_inflight_bytes": 1_000_000}))
    counter = BodyCounter(app)
    with TestClient(counter) as client:
        yield Counted(client, app, counter)


def multipart(data: bytes) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", data=FORM, files={"file": ("a.jpg", data)})
    return request.read(), request.headers["content-type"]


@pytest.fixture
def upload(interop_dir: Path) -> tuple[bytes, str]:
    return multipart((interop_dir / "no_manifest.jpg").read_bytes())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("scopes", "status"),
    [((), 401), (("admin",), 403), (("sign",), 200)],
    ids=["no-key-401", "admin-only-403", "control-sign-key-200"],
)
def test_sign_is_refused_before_the_body_is_read(
    counted: Counted, upload: tuple[bytes, str], scopes: tuple[str, ...], status: int
) -> None:
    body, content_type = upload
    headers = bearer(counted.token(*scopes)) if scopes else {}
    response = counted.post("/v1/sign", body, content_type, headers)
    assert response.status_code == status, response.text
    assert counted.counter.read == (len(body) if status == 200 else 0)


def test_verify_with_required_key_is_refused_before_the_body_is_read(
    settings: Settings, upload: tuple[bytes, str]
) -> None:
    body, content_type = upload
    app = create_app(settings.model_copy(update={"verify_requires_key": True}))
    counter = BodyCounter(app)
    with TestClient(counter) as client:
        refused = client.post("/v1/verify", content=body, headers={"Content-Type": content_type})
        assert refused.status_code == 401
        assert counter.read == 0
        _, token = app.state.runtime.api_keys.create("t", {"sign"})
        allowed = client.post(
            "/v1/verify", content=body, headers={"Content-Type": content_type, **bearer(str(token))}
        )
        assert allowed.status_code == 200, allowed.text
        assert counter.read == len(body)


@pytest.mark.parametrize("endpoint", ["/v1/sign", "/v1/verify"])
def test_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    counted: Counted, interop_dir: Path, endpoint: str
) -> None:
    jpeg = (interop_dir / "no_manifest.jpg").read_bytes()
    headers = bearer(counted.token("sign"))
    big, big_type = multipart(jpeg + b"\0" * LIMIT)
    response = counted.post(endpoint, big, big_type, headers)
    assert response.status_code == 413, response.text
    assert counted.counter.read == 0
    # Control: the same request under the limit is read in full.
    small, small_type = multipart(jpeg)
    assert counted.post(endpoint, small, small_type, headers).status_code == 200
    assert counted.counter.read == len(small)


async def stream_to(app: ASGIApp, path: str, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, int]:
    """Send `chunks` to `app` as one request with no Content-Length, one `receive` per chunk, as a server
    does for a chunked upload (TestClient would read the whole body first); (status, bytes pulled)."""
    pending = list(chunks)
    pulled = 0
    status: list[int] = []

    async def receive() -> Message:
        nonlocal pulled
        if not pending:
            # As a real server: after the body, receive waits until the client goes (it never does here);
            # answering "disconnect" at once would tell the service the client left (app/isolation stops
            # the work of a client that has gone).
            await anyio.Event().wait()
        chunk = pending.pop(0)
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return status[0], pulled


@pytest.mark.parametrize(("padding", "status"), [(4 * LIMIT, 413), (0, 200)], ids=["over-413", "control-200"])
def test_chunked_body_over_the_limit_stops_being_read_at_the_limit(
    counted: Counted, interop_dir: Path, padding: int, status: int
) -> None:
    """Without Content-Length the size is only known by reading: reading stops within a chunk of the limit."""
    body, content_type = multipart((interop_dir / "no_manifest.jpg").read_bytes() + b"\0" * padding)
    chunk = 4096
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    headers = {"Content-Type": content_type, **bearer(counted.token("sign"))}
    got, pulled = counted.client.portal.call(stream_to, counted.app, "/v1/sign", headers, chunks)  # type: ignore[union-attr]
    assert got == status
    if status == 413:
        assert LIMIT < pulled <= LIMIT + chunk
    else:
        assert pulled == len(body)


def test_over_the_byte_budget_is_refused_at_the_chunk_that_overfills_it(
    counted: Counted, upload: tuple[bytes, str]
) -> None:
    """The budget charges bytes as they arrive (verify: 2x): with room for ~40 KB of body, reading stops at
    the chunk that passes it, not after the whole upload, and not before any of it."""
    body, content_type = upload
    chunk = 4096
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    headers = {"Content-Type": content_type}
    room = 80_000
    budget = counted.app.state.budget
    with budget.reserve(budget.capacity - room):  # another request holds the rest
        got, pulled = counted.client.portal.call(stream_to, counted.app, "/v1/verify", headers, chunks)  # type: ignore[union-attr]
        assert got == 503
        assert room // 2 < pulled <= room // 2 + chunk
    assert budget.used == 0  # the refused request gave back what it held
    # Control: with the budget free again, the same request is read in full and answered.
    got, pulled = counted.client.portal.call(stream_to, counted.app, "/v1/verify", headers, chunks)  # type: ignore[union-attr]
    assert (got, pulled) == (200, len(body))
    assert budget.used == 0
