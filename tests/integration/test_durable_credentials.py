"""Durable Content Credentials through the HTTP service: sign marks and fingerprints the image and keeps its
manifest store; verify recovers it after the metadata is stripped, refuses a transplanted mark and an altered
repository row, and keeps recovering images marked under a retired key."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image, ImageOps, JpegImagePlugin
from skimage import data

from app.main import create_app
from app.settings import Settings
from app.watermark_keyring import WatermarkKeyringFile
from tests.media_samples import fail_if_missing_tool, transcode

FORM = {"model_name": "test-diffusion", "model_version": "2.1"}


def photo(name: str = "astronaut", size: tuple[int, int] = (768, 1024)) -> Image.Image:
    pixels = np.asarray(getattr(data, name)())
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return Image.fromarray(pixels[..., :3].astype(np.uint8)).resize(
        (size[1], size[0]), Image.Resampling.LANCZOS
    )


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def strip_jpeg(signed: bytes, quality: int = 75) -> bytes:
    """What a platform does: decode (orientation applied), drop all metadata, re-encode."""
    return encode(
        ImageOps.exif_transpose(Image.open(io.BytesIO(signed))).convert("RGB"), "JPEG", quality=quality
    )


def sign(
    client: TestClient, auth: dict[str, str], payload: bytes, name: str = "a.jpg", **query: str
) -> httpx.Response:
    response = client.post(
        "/v1/sign",
        headers=auth,
        files={"file": (name, payload, "application/octet-stream")},
        data=FORM,
        params=query,
    )
    assert response.status_code == 200, response.text
    return response


def verify(client: TestClient, payload: bytes) -> dict[str, Any]:
    response = client.post("/v1/verify", files={"file": ("x", payload, "application/octet-stream")})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(10 * np.log10(255**2 / np.mean((x - y) ** 2)))


# --- sign ------------------------------------------------------------------------------------------------


def test_jpeg_is_marked_with_its_own_quality_and_metadata(client: TestClient, auth: dict[str, str]) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Example Camera Maker"
    source = encode(photo(), "JPEG", quality=83, exif=exif.tobytes())
    response = sign(client, auth, source)
    header = response.headers["Hallmark-Watermark"]
    assert header.startswith("embedded; id=")
    assert len(header.removeprefix("embedded; id=")) == 12
    signed = Image.open(io.BytesIO(response.content))
    original = Image.open(io.BytesIO(source))
    assert isinstance(signed, JpegImagePlugin.JpegImageFile)
    assert isinstance(original, JpegImagePlugin.JpegImageFile)
    assert signed.quantization == original.quantization  # same quality: the input's own tables
    assert JpegImagePlugin.get_sampling(signed) == JpegImagePlugin.get_sampling(original)
    assert signed.getexif()[0x010F] == "Example Camera Maker"
    assert 38.0 <= psnr(signed, original) < 60.0  # changed, invisibly


def test_png_stays_lossless_and_alpha_is_untouched(client: TestClient, auth: dict[str, str]) -> None:
    rgba = photo().convert("RGBA")
    alpha = Image.linear_gradient("L").resize(rgba.size)
    rgba.putalpha(alpha)
    response = sign(client, auth, encode(rgba, "PNG"), "a.png")
    assert response.headers["Hallmark-Watermark"].startswith("embedded")
    signed = Image.open(io.BytesIO(response.content))
    assert signed.format == "PNG"
    assert signed.mode == "RGBA"
    assert np.array_equal(np.asarray(signed)[..., 3], np.asarray(rgba)[..., 3])
    assert not np.array_equal(np.asarray(signed)[..., :3], np.asarray(rgba)[..., :3])


@pytest.mark.parametrize(("lossless", "chunk"), [(True, b"VP8L"), (False, b"VP8 ")])
def test_webp_keeps_its_compression(
    client: TestClient, auth: dict[str, str], lossless: bool, chunk: bytes
) -> None:
    source = encode(photo(), "WEBP", lossless=lossless, quality=90)
    assert chunk in source[:64]
    response = sign(client, auth, source, "a.webp")
    assert response.headers["Hallmark-Watermark"].startswith("embedded")
    assert chunk in response.content[:4096]
    other = b"VP8 " if lossless else b"VP8L"
    assert other not in response.content


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("small.png", lambda: encode(photo(size=(120, 160)), "PNG"), "unmarkable"),
        ("flat.png", lambda: encode(Image.new("RGB", (640, 640), (90, 120, 150)), "PNG"), "unmarkable"),
        ("palette.png", lambda: encode(photo().convert("P"), "PNG"), "pixel-format"),
        ("anim.gif", lambda: encode(photo(), "GIF"), "format"),
    ],
)
def test_images_that_cannot_carry_a_mark_are_signed_without_and_say_why(
    client: TestClient, auth: dict[str, str], name: str, make: Callable[[], bytes], reason: str
) -> None:
    response = sign(client, auth, make(), name)
    assert response.headers["Hallmark-Watermark"] == f"none; reason={reason}"
    detailed = client.post("/v1/verify?detail=full", files={"file": ("x", response.content, "image/png")})
    report = detailed.json()
    assert report["outcome"] == "trusted"
    assert "c2pa.watermarked.bound" not in report["ai"]["actions"]
    labels = [a["label"] for a in report["manifest_store"]["manifests"][report["manifest_id"]]["assertions"]]
    assert "org.hallmark.watermark" not in labels
    assert "c2pa.soft-binding" in labels  # still fingerprinted


def test_sidecar_output_leaves_the_pixels_alone(client: TestClient, auth: dict[str, str]) -> None:
    response = sign(client, auth, encode(photo(), "JPEG", quality=90), output="sidecar")
    assert response.headers["Hallmark-Watermark"] == "none; reason=sidecar"


def test_watermark_off_signs_without_it(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"watermark": False}))) as off:
        _, token = off.app.state.runtime.api_keys.create("t", {"sign"})  # type: ignore[attr-defined]
        response = sign(off, {"Authorization": f"Bearer {token}"}, encode(photo(), "JPEG", quality=90))
    assert response.headers["Hallmark-Watermark"] == "none; reason=off"


# --- recovery on verify ----------------------------------------------------------------------------------


def test_stripped_copy_is_recovered_and_an_unrelated_photo_is_not(
    client: TestClient, auth: dict[str, str]
) -> None:
    response = sign(client, auth, encode(photo(), "JPEG", quality=90))
    manifest_id = response.headers["Hallmark-Manifest-Id"]
    watermark_id = response.headers["Hallmark-Watermark"].removeprefix("embedded; id=")

    report = verify(client, strip_jpeg(response.content))
    assert report["outcome"] == "none"
    assert report["integrity"] == "absent"
    recovery = report["recovery"]
    assert recovery["status"] == "recovered"
    assert recovery["method"] == "both"
    assert recovery["confidence"] == "high"
    assert recovery["watermark"]["watermark_id"] == watermark_id
    assert recovery["watermark"]["false_positive_bound"] <= 1e-6
    (match,) = recovery["matches"]
    assert match["manifest_id"] == manifest_id
    assert match["outcome"] == "trusted"
    assert match["ai"]["model_name"] == "test-diffusion"
    assert "altered or stripped" in recovery["statement"]

    unrelated = verify(client, encode(photo("coffee"), "JPEG", quality=75))
    assert unrelated["recovery"]["status"] == "not_found"
    assert unrelated["recovery"]["watermark"]["detected"] is False


def test_intact_file_needs_no_recovery(client: TestClient, auth: dict[str, str]) -> None:
    response = sign(client, auth, encode(photo(), "JPEG", quality=90))
    assert verify(client, response.content)["recovery"] is None


def test_a_watermark_copied_onto_another_picture_is_refused(client: TestClient, auth: dict[str, str]) -> None:
    source = photo()
    response = sign(client, auth, encode(source, "PNG"), "a.png")
    marked = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"), dtype=np.int16)
    mark = marked - np.asarray(source, dtype=np.int16)  # the attacker's best case: the exact mark
    other = np.asarray(photo("chelsea"), dtype=np.int16)
    transplanted = Image.fromarray(np.clip(other + mark, 0, 255).astype(np.uint8))
    control = Image.fromarray(np.clip(np.asarray(source, dtype=np.int16) + mark, 0, 255).astype(np.uint8))

    refused = verify(client, encode(transplanted, "PNG"))["recovery"]
    accepted = verify(client, encode(control, "PNG"))["recovery"]

    assert refused["watermark"]["detected"] is True
    assert refused["status"] == "not_found"
    assert refused["reason"] == "watermark-mismatch"
    assert refused["matches"] == []
    assert accepted["status"] == "recovered"


@pytest.mark.parametrize(
    "change",
    ["key_id = 'someone-else'", "confirmation = NULL", "integrity = '0'"],
)
def test_a_repository_row_altered_in_the_database_is_not_offered(
    client: TestClient, auth: dict[str, str], change: str
) -> None:
    response = sign(client, auth, encode(photo(), "JPEG", quality=90))
    manifest_id = response.headers["Hallmark-Manifest-Id"]
    stripped = strip_jpeg(response.content)
    assert verify(client, stripped)["recovery"]["status"] == "recovered"

    db: sa.Engine = client.app.state.runtime.db  # type: ignore[attr-defined]
    with db.begin() as conn:
        conn.execute(sa.text(f"UPDATE manifests SET {change} WHERE manifest_id = :m"), {"m": manifest_id})

    after = verify(client, stripped)["recovery"]
    assert after["status"] == "not_found"
    assert after["matches"] == []


def test_a_mark_from_a_key_the_service_does_not_hold_is_not_detected(
    client: TestClient, auth: dict[str, str], tmp_path: Path
) -> None:
    foreign = Settings(data_dir=tmp_path / "foreign-service")
    WatermarkKeyringFile(foreign.resolved_watermark_keyring).rotate("foreign")
    from signing import SpreadSpectrumWatermark, WatermarkKey

    key = WatermarkKeyringFile(foreign.resolved_watermark_keyring).load().active
    assert isinstance(key, WatermarkKey)
    pixels = np.asarray(photo())
    marked = SpreadSpectrumWatermark().embed(pixels, 0x123456789ABC, key)
    report = verify(client, encode(Image.fromarray(marked), "PNG"))
    assert report["recovery"]["watermark"]["detected"] is False
    # the control: the same mark under this service's own active key is detected
    own = client.app.state.runtime.watermarks.current().active  # type: ignore[attr-defined]
    marked_here = SpreadSpectrumWatermark().embed(pixels, 0x123456789ABC, own)
    found = verify(client, encode(Image.fromarray(marked_here), "PNG"))["recovery"]["watermark"]
    assert found["detected"] is True
    assert found["watermark_id"] == "123456789abc"


def test_images_marked_under_a_retired_key_are_still_recovered(settings: Settings) -> None:
    first = settings.model_copy(update={"keyring_poll_seconds": 0.001})
    with TestClient(create_app(first)) as c:
        _, token = c.app.state.runtime.api_keys.create("t", {"sign"})  # type: ignore[attr-defined]
        auth = {"Authorization": f"Bearer {token}"}
        before = sign(c, auth, encode(photo(), "JPEG", quality=90))
        WatermarkKeyringFile(first.resolved_watermark_keyring).rotate("second")
        after = sign(c, auth, encode(photo("chelsea"), "JPEG", quality=90))
        ring = c.app.state.runtime.watermarks.current()  # type: ignore[attr-defined]
        assert ring.active.key_id == "second"
        assert len(ring.detection_keys) == 2
        old = verify(c, strip_jpeg(before.content))["recovery"]
        new = verify(c, strip_jpeg(after.content))["recovery"]
    assert old["status"] == "recovered"
    assert new["status"] == "recovered"
    assert old["matches"][0]["manifest_id"] == before.headers["Hallmark-Manifest-Id"]


def test_an_upright_mark_survives_a_platform_that_applies_exif_orientation(
    client: TestClient, auth: dict[str, str]
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored pixels must be turned 90 degrees to display
    response = sign(client, auth, encode(photo(), "JPEG", quality=90, exif=exif.tobytes()))
    signed = Image.open(io.BytesIO(response.content))
    assert signed.getexif()[0x0112] == 6
    assert signed.size == (1024, 768)
    assert verify(client, strip_jpeg(response.content))["recovery"]["status"] == "recovered"


# --- production ------------------------------------------------------------------------------------------


@pytest.fixture
def production(settings: Settings) -> Settings:
    return settings.model_copy(update={"env": "production"})


def test_production_refuses_to_mark_without_a_keyring_or_with_the_development_key(
    production: Settings,
) -> None:
    from app.runtime import watermark_keyring
    from signing import ConfigError

    with pytest.raises(ConfigError) as missing:
        watermark_keyring(production)
    assert "hallmark watermark rotate" in (missing.value.hint or "")
    WatermarkKeyringFile(production.resolved_watermark_keyring).rotate("dev-watermark")
    with pytest.raises(ConfigError) as development:
        watermark_keyring(production)
    assert "development watermark key" in development.value.message
    WatermarkKeyringFile(production.resolved_watermark_keyring).rotate("production-1")
    assert watermark_keyring(production).load().active.key_id == "production-1"  # type: ignore[union-attr]
    off = production.model_copy(update={"watermark": False})
    assert watermark_keyring(off).path == production.resolved_watermark_keyring


def _flock_waiters(lock_file: Path) -> int:
    """Processes or threads blocked on an flock of `lock_file` now (Linux: the "->" lines of /proc/locks)."""
    inode = f":{lock_file.stat().st_ino} "
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and "FLOCK" in line and inode in line)


@pytest.mark.parametrize("first_key_only_if_missing", [True, False])
def test_workers_starting_together_make_one_development_watermark_key(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, first_key_only_if_missing: bool
) -> None:
    """Two service workers on a fresh data directory both find no keyring and both go to make the first
    key; the second to get the lock must keep the first's key, not stop on the taken name (a `hallmark serve
    --workers 2` started with one worker dead). The control makes the second worker rotate regardless, as
    before the fix, and shows the lock really held both of them at once."""
    import threading

    from app import runtime
    from app.files import exclusive_lock
    from signing import ConfigError

    if not first_key_only_if_missing:
        rotate = WatermarkKeyringFile.rotate
        monkeypatch.setattr(
            WatermarkKeyringFile,
            "rotate",
            lambda self, key_id=None, **kw: rotate(self, key_id, now=kw.get("now")),
        )
    keyring = WatermarkKeyringFile(settings.resolved_watermark_keyring)
    assert not keyring.exists()
    lock = keyring.path.with_name(keyring.path.name + ".lock")
    errors: list[BaseException] = []

    def start_worker() -> None:
        try:
            runtime.watermark_keyring(settings)
        except BaseException as exc:
            errors.append(exc)

    with exclusive_lock(lock):  # both workers get past "no keyring yet" and queue on the lock
        workers = [threading.Thread(target=start_worker) for _ in range(2)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 10
        while _flock_waiters(lock) < 2:
            assert time.monotonic() < deadline, "the workers never reached the keyring lock"
            time.sleep(0.01)
    for worker in workers:
        worker.join(10)
    ring = keyring.load()
    if first_key_only_if_missing:
        assert errors == []
        assert [record.key.key_id for record in ring.records] == ["dev-watermark"]
    else:
        assert [type(exc) for exc in errors] == [ConfigError]
        assert [record.key.key_id for record in ring.records] == ["dev-watermark"]


# --- the CLI -----------------------------------------------------------------------------------------------


def test_cli_signs_with_a_mark_and_verify_recovers_a_stripped_copy(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.integration.test_hardening import hallmark, ok

    data_dir = settings.data_dir
    source = tmp_path / "a.jpg"
    source.write_bytes(encode(photo(), "JPEG", quality=90))
    signed = json.loads(
        ok(hallmark(data_dir, "sign", str(source), "--model-name", "m", "--model-version", "1")).stdout
    )
    assert len(signed["watermark_id"]) == 12
    assert signed["watermark_skipped"] is None
    stripped = tmp_path / "stripped.jpg"
    stripped.write_bytes(strip_jpeg(Path(signed["output"]).read_bytes()))

    found = hallmark(data_dir, "verify", str(stripped), "--json")
    skipped = hallmark(data_dir, "verify", str(stripped), "--json", "--no-recovery")

    assert found.returncode == 5  # the exit code follows the file's own credentials: none
    recovery = json.loads(found.stdout)["recovery"]
    assert recovery["status"] == "recovered"
    assert recovery["matches"][0]["manifest_id"] == signed["manifest_id"]
    assert skipped.returncode == 5
    assert json.loads(skipped.stdout)["recovery"] is None


def test_a_cropped_copy_is_confirmed_by_the_print_when_the_fingerprints_have_moved(
    client: TestClient, auth: dict[str, str]
) -> None:
    response = sign(client, auth, encode(photo(), "JPEG", quality=90))
    signed = Image.open(io.BytesIO(response.content)).convert("RGB")
    width, height = signed.size
    cropped = signed.crop((int(width * 0.25), int(height * 0.05), int(width * 0.95), int(height * 0.8)))
    recovery = verify(client, encode(cropped, "JPEG", quality=85))["recovery"]
    assert recovery["status"] == "recovered"
    assert recovery["method"] == "watermark"  # ISCC/PDQ moved past their thresholds; the print confirmed
    (match,) = recovery["matches"]
    assert match["manifest_id"] == response.headers["Hallmark-Manifest-Id"]
    assert match["confirmation_score"] >= 0.85


# --- audio and video: the ISCC code as soft binding, "similar to" on verify -------------------------------


def test_audio_carries_its_iscc_code_and_a_reencode_is_found_similar(
    client: TestClient, auth: dict[str, str], interop_dir: Path, tmp_path: Path
) -> None:
    song, reencoded = tmp_path / "song.wav", tmp_path / "song.mp3"
    fail_if_missing_tool(lambda: transcode(interop_dir / "sample1.mp3", song, "-t", "30"))
    response = sign(client, auth, song.read_bytes(), "song.wav")
    code = response.headers["Hallmark-ISCC"]
    assert code.startswith("ISCC:")
    assert response.headers["Hallmark-Watermark"] == "none; reason=format"
    manifest_id = response.headers["Hallmark-Manifest-Id"]
    signed = tmp_path / "signed.wav"
    signed.write_bytes(response.content)
    transcode(signed, reencoded, "-c:a", "libmp3lame", "-b:a", "128k")  # drops the manifest

    found = verify(client, reencoded.read_bytes())["recovery"]
    unrelated = verify(client, (interop_dir / "sample1.wav").read_bytes())["recovery"]

    assert found["status"] == "similar"
    assert found["method"] == "fingerprint"
    assert found["matches"][0]["manifest_id"] == manifest_id
    assert unrelated["status"] == "not_found"
    assert unrelated["matches"] == []
