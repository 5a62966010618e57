"""The public verify page in a real headless browser (Debian's chromium driven by Playwright) against a real
`hallmark serve --dev` process: what a person sees for a signed, a tampered, a stripped and an unsigned file,
keyboard access, the raw-report toggle and the feedback flow. A screenshot of each state is kept in
var/test-artifacts/web-page/ (printed at the start)."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from skimage import data

from tests.e2e.server import API_KEY_LINE, HTTP_TIMEOUT_S, Server, serve
from tests.fixtures import INTEROP
from tests.media_samples import flip_jpeg_scan_byte
from tests.url_servers import LoopbackServer, serves_table

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "web-page"
MODEL = "web-page-diffusion"
PROVIDER = "Example AI"
EXPECT_TIMEOUT_MS = 30_000

TRUSTED = "Content Credentials found: intact, from a signer this service trusts"
INVALID = "Content Credentials found, but they failed validation"
NONE = "No Content Credentials found"


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"web page screenshots: {ARTIFACTS}")
    return ARTIFACTS


def require_chromium(path: Path) -> Path:
    """A missing browser fails the tests (never skips them), saying how to install it."""
    if not path.is_file():
        pytest.fail(
            f"Debian's chromium is missing at {path}: run `make test-deps` (scripts/test-deps.sh "
            "installs it with apt); Playwright's own browser download is not used"
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = require_chromium(CHROMIUM)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable))
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web-data")


@pytest.fixture(scope="module")
def remote_files() -> dict[str, bytes]:
    """What the loopback web server serves, by path: `files` fills it once the signed file exists."""
    return {}


@pytest.fixture(scope="module")
def remote(remote_files: dict[str, bytes]) -> Iterator[LoopbackServer]:
    """A loopback web server that pasted links point at (allow-listed on the Hallmark server)."""
    with LoopbackServer(serves_table(remote_files)) as running:
        yield running


@pytest.fixture(scope="module")
def server(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory, remote: LoopbackServer
) -> Iterator[Server]:
    env = {"HALLMARK_URL_FETCH": "true", "HALLMARK_URL_ALLOWLIST": remote.authority}
    with serve(data_dir, tmp_path_factory.mktemp("web-logs"), "--dev", **env) as running:
        running.wait_until_ready()
        yield running


@pytest.fixture(scope="module")
def files(
    server: Server, remote_files: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The four files a person might bring: signed here, tampered after signing, stripped, never signed."""
    token = server.wait_for_line(API_KEY_LINE)
    unsigned = (INTEROP / "no_manifest.jpg").read_bytes()
    response = httpx2.post(
        server.base_url + "/v1/sign",
        headers={"Authorization": f"Bearer {token}"},
        data={"model_name": MODEL, "model_version": "7", "provider": PROVIDER},
        files={"file": ("generated.jpg", unsigned, "image/jpeg")},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 200, response.text
    signed = response.content
    stripped = io.BytesIO()
    with Image.open(io.BytesIO(signed)) as image:
        image.save(stripped, format="JPEG", quality=90)  # Pillow writes no APP11 (C2PA) segments
    root = tmp_path_factory.mktemp("web-files")
    contents = {
        "signed": signed,
        "tampered": flip_jpeg_scan_byte(signed),
        "stripped": stripped.getvalue(),
        "unsigned": unsigned,
    }
    paths = {}
    for name, content in contents.items():
        paths[name] = root / f"{name}.jpg"
        paths[name].write_bytes(content)
    remote_files.update({f"/{name}.jpg": content for name, content in contents.items()})
    return paths


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 1200})
    opened = context.new_page()
    opened.set_default_timeout(EXPECT_TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.goto(server.base_url + "/")
    try:
        yield opened
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"


def check(page: Page, file: Path) -> None:
    page.get_by_label("Choose a file, or drop it here").set_input_files(file)
    expect(page.locator("#status")).to_have_text(f"Checked {file.name}.")


def card(page: Page, title: str) -> Locator:
    return page.get_by_role("region", name=title, exact=True)


def outcome_title(page: Page) -> str:
    return page.locator("#outcome .outcome-title").inner_text()


def feedback_rows(data_dir: Path) -> list[dict[str, object]]:
    engine = sa.create_engine(f"sqlite:///{data_dir / 'hallmark.db'}")
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM feedback ORDER BY seq"))]
    finally:
        engine.dispose()


def test_a_missing_chromium_fails_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"make test-deps"):
        require_chromium(tmp_path / "chromium")
    assert require_chromium(CHROMIUM) == CHROMIUM  # control: the installed one is accepted


# --- what a person sees ---------------------------------------------------------------------------------


def test_signed_file_shows_trust_the_ai_declaration_and_the_signer(
    page: Page, files: dict[str, Path], artifacts: Path
) -> None:
    expect(page.locator("#result")).to_be_hidden()  # control: nothing shown before a file is chosen
    check(page, files["signed"])
    assert outcome_title(page) == TRUSTED
    ai = card(page, "AI declaration")
    expect(ai).to_contain_text(MODEL)
    expect(ai).to_contain_text(PROVIDER)
    expect(ai).to_contain_text(re.compile(r"When\s*\d{4}-\d\d-\d\dT"))
    signer = card(page, "Signer")
    expect(signer).to_contain_text("Hallmark (development)")
    expect(signer).to_contain_text('Trust profile "hallmark-dev" (development)')
    expect(card(page, "Integrity")).to_contain_text("Intact")
    expect(card(page, "Timestamp")).to_contain_text("No timestamp")
    page.screenshot(path=artifacts / "signed.png", full_page=True)


def test_tampered_file_says_the_credentials_failed(
    page: Page, files: dict[str, Path], artifacts: Path
) -> None:
    check(page, files["tampered"])
    assert outcome_title(page) == INVALID
    expect(card(page, "Integrity")).to_contain_text("Changed")
    expect(card(page, "Integrity")).not_to_contain_text("Intact")
    page.screenshot(path=artifacts / "tampered.png", full_page=True)


# The stripped file lost its manifest but not its watermark: recovered. The unsigned file is the picture
# before signing: no watermark, but its fingerprints are those of the signed one, so "similar" (weaker).
@pytest.mark.parametrize(
    ("name", "recovery"),
    [
        ("stripped", "Recovered: the original credentials were found"),
        ("unsigned", "Similar to something this service signed"),
    ],
)
def test_file_without_credentials_says_what_none_does_not_mean_and_what_recovery_found(
    page: Page, files: dict[str, Path], artifacts: Path, name: str, recovery: str
) -> None:
    check(page, files[name])
    assert outcome_title(page) == NONE
    expect(page.locator("#outcome")).to_contain_text("says nothing about how the content was made")
    expect(page.locator("#outcome")).not_to_contain_text(MODEL)  # the file's own claim is gone
    expect(page.locator("section.card")).to_have_count(1)  # only the recovery card
    expect(card(page, "Recovery")).to_contain_text(recovery)
    expect(card(page, "Recovery")).to_contain_text(MODEL)  # the original's declaration, from the repository
    page.screenshot(path=artifacts / f"{name}.png", full_page=True)


def test_a_picture_this_service_never_signed_finds_nothing(page: Page, tmp_path: Path) -> None:
    other = tmp_path / "other.jpg"
    Image.fromarray(data.coffee()).save(other, format="JPEG", quality=90)  # type: ignore[no-untyped-call]
    check(page, other)
    assert outcome_title(page) == NONE
    expect(card(page, "Recovery")).to_contain_text("Nothing found in this service's records")
    expect(card(page, "Recovery")).not_to_contain_text(MODEL)


def test_a_dropped_file_is_checked(page: Page, files: dict[str, Path]) -> None:
    zone = page.locator("#drop-zone")
    content = base64.b64encode(files["signed"].read_bytes()).decode()
    dropped = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.jpg", { type: "image/jpeg" }));
            return transfer;
        }""",
        content,
    )
    zone.dispatch_event("dragover", {"dataTransfer": dropped})
    expect(zone).to_have_class(re.compile(r"\bdragging\b"))
    zone.dispatch_event("drop", {"dataTransfer": dropped})
    expect(page.locator("#status")).to_have_text("Checked dropped.jpg.")
    expect(zone).not_to_have_class(re.compile(r"\bdragging\b"))
    assert outcome_title(page) == TRUSTED


def test_attacker_controlled_names_are_shown_as_text(page: Page, server: Server, tmp_path: Path) -> None:
    """A file name with markup is shown literally (textContent): no element is made from it."""
    hostile = tmp_path / "<img src=x id=injected>.jpg"
    hostile.write_bytes((INTEROP / "no_manifest.jpg").read_bytes())
    check(page, hostile)
    expect(page.locator("#status")).to_have_text(f"Checked {hostile.name}.")
    expect(page.locator("#injected")).to_have_count(0)
    expect(page.locator("#status img")).to_have_count(0)


# --- keyboard and the raw report ------------------------------------------------------------------------


def test_file_input_is_reached_by_tab_and_labelled(page: Page) -> None:
    file_input = page.locator("#file")
    expect(file_input).not_to_be_focused()
    page.keyboard.press("Tab")
    expect(file_input).to_be_focused()
    expect(page.get_by_label("Choose a file, or drop it here")).to_have_attribute("type", "file")
    outline = file_input.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline == "solid", "the focused file input has no visible focus outline"


def test_raw_report_opens_from_the_keyboard(page: Page, files: dict[str, Path], artifacts: Path) -> None:
    check(page, files["signed"])
    raw = page.locator("#raw-json")
    expect(raw).to_be_hidden()
    page.get_by_text("Show the raw report (JSON)").focus()
    page.keyboard.press("Enter")
    expect(raw).to_be_visible()
    expect(raw).to_contain_text('"outcome": "trusted"')
    expect(raw).to_contain_text('"manifest_store"')
    page.screenshot(path=artifacts / "raw-report.png", full_page=True)


# --- feedback -------------------------------------------------------------------------------------------


def test_feedback_lands_in_the_database_without_personal_data(
    page: Page, files: dict[str, Path], data_dir: Path, artifacts: Path
) -> None:
    check(page, files["signed"])
    manifest_id = re.search(r'"manifest_id": "([^"]+)"', page.locator("#raw-json").text_content() or "")
    assert manifest_id is not None
    before = feedback_rows(data_dir)
    page.get_by_role("radio", name="No", exact=True).check()
    page.get_by_label(re.compile("^Comment")).fill("The model name looks wrong")
    page.get_by_role("button", name="Send feedback").click()
    expect(page.locator("#feedback-status")).to_have_text("Thank you: your feedback was stored.")
    page.screenshot(path=artifacts / "feedback-sent.png", full_page=True)
    after = feedback_rows(data_dir)
    assert len(after) == len(before) + 1
    row = after[-1]
    assert set(row) == {"seq", "day", "outcome", "verdict_correct", "manifest_id", "comment"}
    assert (row["outcome"], row["verdict_correct"], row["manifest_id"], row["comment"]) == (
        "trusted",
        0,
        manifest_id.group(1),
        "The model name looks wrong",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", str(row["day"])), row["day"]
    expect(page.get_by_role("button", name="Send feedback")).to_be_disabled()


# --- a pasted link --------------------------------------------------------------------------------------

URL_OFF = "Checking a link is switched off on this server: download the file and choose it above instead."


def check_link(page: Page, url: str) -> None:
    page.get_by_label("Or paste a link to a file").fill(url)
    page.get_by_role("button", name="Check link").click()


def test_a_pasted_link_is_fetched_and_checked(
    page: Page, files: dict[str, Path], remote: LoopbackServer, artifacts: Path
) -> None:
    link = page.get_by_label("Or paste a link to a file")
    expect(link).to_be_enabled()  # URL input is on for this server, and the page knows
    expect(page.locator("#url-hint")).not_to_have_text(URL_OFF)
    url = remote.url("/signed.jpg")
    check_link(page, url)
    expect(page.locator("#status")).to_have_text(f"Checked {url}.")
    assert outcome_title(page) == TRUSTED
    expect(card(page, "AI declaration")).to_contain_text(MODEL)
    assert "/signed.jpg" in [seen.path for seen in remote.requests]
    page.screenshot(path=artifacts / "url-signed.png", full_page=True)
    check_link(page, remote.url("/unsigned.jpg"))  # control: the outcome follows the file
    expect(page.locator("#status")).to_have_text(f"Checked {remote.url('/unsigned.jpg')}.")
    assert outcome_title(page) == NONE


def test_a_refused_link_says_why(page: Page, artifacts: Path) -> None:
    check_link(page, "http://10.0.0.1/picture.jpg")
    status = page.locator("#status")
    expect(status).to_contain_text("The link could not be checked (422)")
    expect(status).to_contain_text("10.0.0.1 is not a public internet address (private)")
    expect(page.locator("#result")).to_be_hidden()
    page.screenshot(path=artifacts / "url-refused.png", full_page=True)


def test_the_page_says_when_url_input_is_off(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> None:
    data = tmp_path_factory.mktemp("web-data-no-url")
    with serve(data, tmp_path_factory.mktemp("web-logs-no-url"), "--dev") as plain:
        plain.wait_until_ready()
        context = browser.new_context(viewport={"width": 1000, "height": 900})
        try:
            page = context.new_page()
            page.set_default_timeout(EXPECT_TIMEOUT_MS)
            page.goto(plain.base_url + "/")
            expect(page.locator("#url-hint")).to_have_text(URL_OFF)
            expect(page.get_by_label("Or paste a link to a file")).to_be_disabled()
            expect(page.get_by_role("button", name="Check link")).to_be_disabled()
            expect(page.get_by_label("Choose a file, or drop it here")).to_be_enabled()  # uploads still work
            page.screenshot(path=artifacts / "url-off.png", full_page=True)
        finally:
            context.close()
