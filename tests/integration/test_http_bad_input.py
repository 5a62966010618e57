"""Bad requests to /v1/sign and /v1/verify: each answered with a clear 4xx problem+json, nothing signed,
nothing written in the ledger, never a 500."""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings

FORM = {"model_name": "test-diffusion", "model_version": "2.1"}
JPEG_NAME = "no_manifest.jpg"
SAMPLE = b"<the interop JPEG>"  # placeholder: the test sends the real JPEG

PLAIN_TEXT = b"These are the words of a plain text file, not an image.\n" * 4
HTML = b"<!DOCTYPE html>\n<html><head><title>x</title></head><body><p>Hello</p></body></html>\n"
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 200
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200
RANDOM = b"\x00" + random.Random(942).randbytes(4095)  # leading NUL: no magic number can match


def ledger_count(client: TestClient) -> int:
    return int(client.app.state.runtime.ledger.count())  # type: ignore[attr-defined]


def assert_problem(response: Any, status: int, *mentions: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["type"].startswith("/problems/")
    assert problem["status"] == status
    assert problem["title"].strip()
    assert len(problem["detail"]) > 10
    assert "Traceback" not in problem["detail"]
    for word in mentions:
        assert word in problem["detail"], problem
    return problem


@pytest.fixture
def jpeg(interop_dir: Path) -> bytes:
    return (interop_dir / JPEG_NAME).read_bytes()


# --- the form ---------------------------------------------------------------------------------------


def case(
    name: str,
    form: dict[str, str],
    status: int,
    *mentions: str,
    file: bytes | None = SAMPLE,
    bug: str = "",
) -> Any:
    """One bad request: its form fields, the file part (None: the JPEG under the field 'upload')."""
    marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {bug}")] if bug else []
    return pytest.param(form, file, status, mentions, id=name, marks=marks)


FORM_CASES = [
    case("file-sent-as-upload", FORM, 422, "file", file=None),
    case("missing-model-name", {"model_version": "2.1"}, 422, "model_name"),
    case("missing-model-version", {"model_name": "m"}, 422, "model_version"),
    case("wrong-field-names", {"model": "m", "version": "1"}, 422, "model_name"),
    case("empty-model-name", {**FORM, "model_name": ""}, 422, "model_name"),
    case("whitespace-model-name", {**FORM, "model_name": " \t "}, 422, "model_name"),
    case("nbsp-model-name", {**FORM, "model_name": "\u00a0\u00a0"}, 422, "model_name"),
    case(
        "ideographic-space-version",
        {**FORM, "model_version": "\u3000"},
        422,
        "model_version",
    ),
    case("model-name-201-chars", {**FORM, "model_name": "m" * 201}, 422, "model_name", "200"),
    case("provider-201-chars", {**FORM, "provider": "p" * 201}, 422, "provider", "200"),
    case("title-501-chars", {**FORM, "title": "t" * 501}, 422, "title", "500"),
    case("nul-in-model-name", {**FORM, "model_name": "bad\x00name"}, 422, "model_name"),
    case("newline-in-version", {**FORM, "model_version": "1\n2"}, 422, "model_version"),
    case("escape-in-title", {**FORM, "title": "x\x1b[31mred"}, 422, "title"),
    case("bidi-override-in-provider", {**FORM, "provider": "Acme\u202eIA"}, 422, "provider"),
    case(
        "line-separator-in-model-name",
        {**FORM, "model_name": "a\u2028b"},
        422,
        "model_name",
    ),
    case(
        "unknown-digital-source-type",
        {**FORM, "digital_source_type": "madeByMagic"},
        422,
        "digital_source_type",
    ),
    case("unknown-training-mining", {**FORM, "training_mining": "maybe"}, 422, "training_mining"),
    case(
        "constraint-without-constrained",
        {**FORM, "training_mining": "allowed", "training_mining_constraint": "ask"},
        422,
        "training_mining_constraint",
    ),
]


@pytest.mark.parametrize(("form", "file", "status", "mentions"), FORM_CASES)
def test_bad_sign_form_is_a_clear_problem(
    client: TestClient,
    auth: dict[str, str],
    jpeg: bytes,
    form: dict[str, str],
    file: bytes | None,
    status: int,
    mentions: tuple[str, ...],
) -> None:
    if file is None:
        files = {"upload": ("a.jpg", jpeg)}  # the right file under the wrong field name
    else:
        files = {"file": ("a.jpg", jpeg if file is SAMPLE else file)}
    response = client.post("/v1/sign", headers=auth, data=form, files=files)
    assert_problem(response, status, *mentions)
    assert ledger_count(client) == 0


def test_unknown_output_mode_is_refused(client: TestClient, auth: dict[str, str], jpeg: bytes) -> None:
    response = client.post(
        "/v1/sign", headers=auth, params={"output": "bogus"}, data=FORM, files={"file": ("a.jpg", jpeg)}
    )
    assert_problem(response, 422, "output")
    assert ledger_count(client) == 0


def test_url_encoded_form_without_a_file_is_refused(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/sign", headers=auth, data=FORM)
    assert_problem(response, 422, "file")
    assert ledger_count(client) == 0


# --- the file ---------------------------------------------------------------------------------------

UNSUPPORTED = {
    "plain-text": ("notes.txt", PLAIN_TEXT),
    "html": ("page.html", HTML),
    "zip": ("archive.zip", ZIP),
    "elf": ("program", ELF),
    "random-bytes": ("noise.bin", RANDOM),
    "text-named-jpg": ("photo.jpg", PLAIN_TEXT),
}


@pytest.mark.parametrize("endpoint", ["/v1/sign", "/v1/verify"])
@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_media_is_415(client: TestClient, auth: dict[str, str], endpoint: str, case: str) -> None:
    name, data = UNSUPPORTED[case]
    form = FORM if endpoint == "/v1/sign" else None
    response = client.post(endpoint, headers=auth, data=form, files={"file": (name, data, "image/jpeg")})
    problem = assert_problem(response, 415)
    assert "JPG" in problem["hint"]  # tells the user what would have worked
    assert ledger_count(client) == 0


@pytest.mark.parametrize("endpoint", ["/v1/sign", "/v1/verify"])
def test_empty_file_is_422(client: TestClient, auth: dict[str, str], endpoint: str) -> None:
    form = FORM if endpoint == "/v1/sign" else None
    response = client.post(endpoint, headers=auth, data=form, files={"file": ("a.jpg", b"")})
    assert_problem(response, 422, "empty")
    assert ledger_count(client) == 0


TRUNCATED_NAMES = ("no_manifest.jpg", "video1.mp4", "sample1.wav", "C.jpg")
TRUNCATED = [
    pytest.param(name, part, id=f"{name}-{label}")
    for name in TRUNCATED_NAMES
    for part, label in ((100, "100-bytes"), (0.5, "half"))
]


def truncate(data: bytes, part: float) -> bytes:
    return data[: int(part)] if part >= 1 else data[: int(len(data) * part)]


@pytest.mark.parametrize(("name", "part"), TRUNCATED)
def test_truncated_file_is_refused_and_never_signed(
    client: TestClient, auth: dict[str, str], interop_dir: Path, name: str, part: float
) -> None:
    data = truncate((interop_dir / name).read_bytes(), part)
    response = client.post("/v1/sign", headers=auth, data=FORM, files={"file": (name, data)})
    assert_problem(response, 422)
    assert ledger_count(client) == 0


@pytest.mark.parametrize("name", TRUNCATED_NAMES)
def test_the_whole_file_of_each_truncation_case_signs(
    client: TestClient, auth: dict[str, str], interop_dir: Path, name: str
) -> None:
    """The control: the same files uncut are signed, so the refusal above is about the cut."""
    response = client.post(
        "/v1/sign", headers=auth, data=FORM, files={"file": (name, (interop_dir / name).read_bytes())}
    )
    assert response.status_code == 200, response.text
    assert ledger_count(client) == 1


# The one answer /v1/verify gives each truncated file: a 422 problem, or a report with this outcome.
TRUNCATED_VERIFIES_AS: dict[tuple[str, float], str] = {
    ("no_manifest.jpg", 100): "422",
    ("no_manifest.jpg", 0.5): "none",  # no credentials in what is left
    ("video1.mp4", 100): "422",
    ("video1.mp4", 0.5): "invalid",  # the manifest is there, the hashed data is not
    ("sample1.wav", 100): "422",
    ("sample1.wav", 0.5): "422",
    ("C.jpg", 100): "422",
    ("C.jpg", 0.5): "invalid",
}


@pytest.mark.parametrize(("name", "part"), TRUNCATED)
def test_truncated_file_verifies_as_its_one_expected_answer(
    client: TestClient, interop_dir: Path, name: str, part: float
) -> None:
    data = truncate((interop_dir / name).read_bytes(), part)
    response = client.post("/v1/verify", files={"file": (name, data)})
    expected = TRUNCATED_VERIFIES_AS[name, part]
    if expected == "422":
        assert_problem(response, 422)
    else:
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == expected


# --- the size limit ---------------------------------------------------------------------------------

LIMIT = 10_000


@pytest.fixture
def small_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"max_upload_bytes": LIMIT}))) as test_client:
        yield test_client


def multipart(fields: dict[str, str], data: bytes) -> tuple[bytes, str]:
    """A multipart body and its content type, encoded once so that it can be sent as a chunked stream."""
    request = httpx.Request("POST", "http://x/", data=fields, files={"file": ("big.jpg", data)})
    return request.read(), request.headers["content-type"]


@pytest.mark.parametrize("endpoint", ["/v1/sign", "/v1/verify"])
@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_body_over_the_size_limit_is_413(
    small_client: TestClient, jpeg: bytes, endpoint: str, transfer: str
) -> None:
    _, token = small_client.app.state.runtime.api_keys.create("t", {"sign"})  # type: ignore[attr-defined]
    body, content_type = multipart(FORM, jpeg)
    assert len(body) > LIMIT
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    if transfer == "chunked":
        chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))
        response = small_client.post(endpoint, headers=headers, content=chunks)
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
    else:
        response = small_client.post(endpoint, headers=headers, content=body)
        assert response.request.headers["content-length"] == str(len(body))
    problem = assert_problem(response, 413, str(LIMIT))
    assert problem["details"]["limit_bytes"] == LIMIT
    assert ledger_count(small_client) == 0


def test_body_under_the_size_limit_is_signed(small_client: TestClient, interop_dir: Path) -> None:
    _, token = small_client.app.state.runtime.api_keys.create("t", {"sign"})  # type: ignore[attr-defined]
    small = (interop_dir / "libpng-test.png").read_bytes()  # 3.7 KB
    headers = {"Authorization": f"Bearer {token}"}
    response = small_client.post("/v1/sign", headers=headers, data=FORM, files={"file": ("a.png", small)})
    assert response.status_code == 200, response.text


def test_concurrent_uploads_beyond_the_byte_budget_are_refused(settings: Any, interop_dir: Path) -> None:
    """The budget is charged as the body arrives: past it beside another request, 503; a request alone in
    the worker always runs."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    app = create_app(settings.model_copy(update={"max_inflight_bytes": 300_000}))
    jpeg = (interop_dir / "no_manifest.jpg").read_bytes()  # ~98 KB: verify holds ~2x
    with TestClient(app) as client:
        assert client.post("/v1/verify", files={"file": ("a.jpg", jpeg)}).status_code == 200
        with app.state.budget.reserve(200_000):  # another request is in flight
            response = client.post("/v1/verify", files={"file": ("a.jpg", jpeg)})
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert "retry-after" in response.headers
            small = (interop_dir / "libpng-test.png").read_bytes()  # ~4 KB still fits
            assert client.post("/v1/verify", files={"file": ("a.png", small)}).status_code == 200
        huge_alone = settings.model_copy(update={"max_inflight_bytes": 1_000})
    with TestClient(create_app(huge_alone)) as client:
        assert client.post("/v1/verify", files={"file": ("a.jpg", jpeg)}).status_code == 200


# --- pixel limit: decoding costs memory by pixels, not by bytes -------------------------------------------

PIXEL_LIMIT = 10_000


def png_of(width: int, height: int) -> bytes:
    """A real (flat, so tiny) PNG of the given size."""
    out = io.BytesIO()
    Image.new("L", (width, height), 128).save(out, "PNG")
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that announces its size and holds no pixel data: refused by size, it must never be decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture
def pixel_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"max_image_pixels": PIXEL_LIMIT}))) as test_client:
        yield test_client


def sign_png(client: TestClient, width: int, height: int) -> Any:
    _, token = client.app.state.runtime.api_keys.create("t", {"sign"})  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {token}"}
    return client.post(
        "/v1/sign", headers=headers, data=FORM, files={"file": ("p.png", png_of(width, height))}
    )


@pytest.mark.parametrize(("width", "height"), [(101, 100), (10_000, 2)])
def test_images_over_the_pixel_limit_are_413_before_decoding(
    pixel_client: TestClient, width: int, height: int
) -> None:
    problem = assert_problem(sign_png(pixel_client, width, height), 413, f"{width}x{height}")
    assert problem["details"] == {"max_pixels": PIXEL_LIMIT, "width": width, "height": height}
    assert ledger_count(pixel_client) == 0


def test_an_image_at_the_pixel_limit_signs(pixel_client: TestClient) -> None:
    response = sign_png(pixel_client, 100, 100)
    assert response.status_code == 200, response.text
    assert ledger_count(pixel_client) == 1


def test_default_pixel_limit_refuses_a_huge_header_without_decoding(
    client: TestClient, auth: dict[str, str]
) -> None:
    """12000 x 12000 would decode to 144 MB; the header alone decides (the file holds no pixels at all,
    so a decode would have answered 422, not 413)."""
    response = client.post(
        "/v1/sign", headers=auth, data=FORM, files={"file": ("huge.png", png_header_only(12_000, 12_000))}
    )
    problem = assert_problem(response, 413, "12000x12000")
    assert problem["details"]["max_pixels"] == 100_000_000
    small = client.post(
        "/v1/sign", headers=auth, data=FORM, files={"file": ("small.png", png_header_only(100, 100))}
    )
    assert_problem(small, 422)  # the control: under the limit the same empty file reaches the decode
    assert ledger_count(client) == 0
