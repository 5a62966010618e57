"""Recovery by a known-id test (signing/softbinding/informed.py) when the blind watermark read misses.

Through HTTP in-process: the blind detector is made to miss (it does on dense textures after a rescale or a
turn; here it must, for the test to be about the fallback), and a signed picture turned by 2 degrees is still
recovered, by the watermark id of its fingerprint neighbour; the same picture never signed (a look-alike of
the signed one) is only "similar". A crop, which moves the fingerprints, is recovered from the ids nearest a
blind read the error correction could not decode. Through a real decode worker: the job that answers the
question on the worker's copy of the file finds the id, and finds nothing among candidates the picture does
not carry.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data

from app.isolation.jobs import KnownMarkJob, VerifyJob, VerifyResult
from app.isolation.service import worker_config
from app.main import create_app
from app.settings import Settings
from signing import Candidates, SpreadSpectrumWatermark, WatermarkDetection, WatermarkKey, watermark_codeword

FORM = {"model_name": "test-diffusion", "model_version": "2.1"}
KEY = WatermarkKey("current", b"test watermark key number one....")
PAYLOAD = 0x5A17_C0DE_BEEF


def photo(name: str) -> Image.Image:
    pixels = np.asarray(getattr(data, name)(), dtype=np.uint8)  # scikit-image's loaders are untyped
    return Image.fromarray(pixels if pixels.ndim == 3 else np.stack([pixels] * 3, axis=-1))


def grass() -> Image.Image:
    return photo("grass")


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def turned(payload: bytes) -> bytes:
    """Metadata gone, pixels turned by 2 degrees (a straightened scan, a tilted screenshot)."""
    image = Image.open(io.BytesIO(payload)).convert("RGB")
    return png(image.rotate(2, Image.Resampling.BICUBIC))


def verify(client: TestClient, payload: bytes) -> dict[str, Any]:
    response = client.post("/v1/verify", files={"file": ("x.png", payload, "image/png")})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


@contextmanager
def signed_in_process(settings: Settings, picture: bytes) -> Iterator[tuple[TestClient, httpx.Response]]:
    """A service without decode workers (so the tests can make its detector miss) and `picture` signed."""
    with TestClient(create_app(settings.model_copy(update={"isolation_workers": 0}))) as client:
        _, token = client.app.state.runtime.api_keys.create("tests", {"sign"})  # type: ignore[attr-defined]
        signed = client.post(
            "/v1/sign",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("picture.png", picture, "image/png")},
            data=FORM,
        )
        assert signed.status_code == 200, signed.text
        yield client, signed


def blind_miss(self: SpreadSpectrumWatermark, pixels: object, keys: object) -> WatermarkDetection:
    return WatermarkDetection(None, None, 0.0, 4.79, 1.0)


def test_a_turned_copy_is_recovered_by_its_neighbours_mark_when_the_blind_read_misses(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with signed_in_process(settings, png(grass())) as (client, signed):
        manifest_id = signed.headers["Hallmark-Manifest-Id"]
        watermark_id = signed.headers["Hallmark-Watermark"].removeprefix("embedded; id=")

        monkeypatch.setattr(SpreadSpectrumWatermark, "detect", blind_miss)
        recovery = verify(client, turned(signed.content))["recovery"]
        assert recovery["status"] == "recovered"
        assert recovery["method"] == "both"
        assert recovery["confidence"] == "high"
        mark = recovery["watermark"]
        assert (mark["detected"], mark["test"], mark["watermark_id"]) == (True, "known-id", watermark_id)
        assert mark["statistic"] >= mark["threshold"]
        assert mark["false_positive_bound"] <= 1e-6
        (match,) = recovery["matches"]
        assert match["manifest_id"] == manifest_id

        # the same picture, never signed: its fingerprints name the signed one, but it carries no mark
        look_alike = verify(client, turned(png(grass())))["recovery"]
        assert look_alike["status"] == "similar"
        assert look_alike["matches"][0]["manifest_id"] == manifest_id
        assert look_alike["watermark"]["detected"] is False
        assert look_alike["watermark"]["test"] == "blind"


def test_a_picture_past_the_match_thresholds_is_still_tested_for_a_mark_its_pdq_points_to(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn moves PDQ by 24-94 bits, past the 31 of a match: the entries within PDQ_CANDIDATE_DISTANCE are
    tested too. Here the match lookup is made to find nothing (as when both fingerprints moved past their
    thresholds) and the blind read to miss; the PDQ candidate's mark is found."""
    with signed_in_process(settings, png(grass())) as (client, signed):
        repository = client.app.state.runtime.manifests  # type: ignore[attr-defined]
        monkeypatch.setattr(SpreadSpectrumWatermark, "detect", blind_miss)
        monkeypatch.setattr(type(repository), "nearest", lambda self, **_: [])

        recovery = verify(client, turned(signed.content))["recovery"]
        assert recovery["status"] == "recovered"
        assert recovery["watermark"]["test"] == "known-id"
        assert recovery["matches"][0]["manifest_id"] == signed.headers["Hallmark-Manifest-Id"]
        # the unsigned picture, turned the same way: its PDQ points to the signed one, it carries no mark
        assert verify(client, turned(png(grass())))["recovery"]["status"] == "not_found"


def cropped(payload: bytes) -> bytes:
    """Metadata gone, a quarter of each side cut: the fingerprints no longer name the asset."""
    image = Image.open(io.BytesIO(payload)).convert("RGB")
    width, height = image.size
    return png(image.crop((width // 8, height // 8, width - width // 8, height - height // 8)))


def flipped(word: bytes, count: int) -> bytes:
    value = int.from_bytes(word, "big") ^ (((1 << count) - 1) << (8 * len(word) - count))
    return value.to_bytes(len(word), "big")


def test_a_cropped_copy_is_recovered_near_a_read_the_code_could_not_correct(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blind read is made to fail as it does when more bits are wrong than the BCH code corrects (25 of
    125 here); the repository's ids nearest the word read are tested, and the crop is confirmed by the
    confirmation print, as a blind hit would be."""
    with signed_in_process(settings, png(photo("astronaut"))) as (client, signed):
        watermark_id = signed.headers["Hallmark-Watermark"].removeprefix("embedded; id=")
        word = watermark_codeword(int(watermark_id, 16))
        read = flipped(word, 25)

        def misread(self: SpreadSpectrumWatermark, pixels: object, keys: object) -> WatermarkDetection:
            return WatermarkDetection(None, None, 6.0, 4.79, 1.0, word=read)

        monkeypatch.setattr(SpreadSpectrumWatermark, "detect", misread)
        recovery = verify(client, cropped(signed.content))["recovery"]
        assert recovery["status"] == "recovered"
        assert recovery["method"] == "watermark"  # confirmed by the print: the fingerprints have moved
        assert recovery["matches"][0]["manifest_id"] == signed.headers["Hallmark-Manifest-Id"]
        assert recovery["matches"][0]["confirmation_score"] >= 0.85
        mark = recovery["watermark"]
        assert (mark["test"], mark["watermark_id"]) == ("known-id", watermark_id)
        assert mark["statistic"] >= mark["threshold"]

        # the same crop of the picture never signed: the read names the signed id, the pixels lack its mark
        assert verify(client, cropped(png(photo("astronaut"))))["recovery"]["status"] == "not_found"
        # the signed id's mark copied onto another picture: found, and refused by the cross-check
        key = client.app.state.runtime.watermarks.current().active  # type: ignore[attr-defined]
        copied = SpreadSpectrumWatermark().embed(np.asarray(photo("coffee")), int(watermark_id, 16), key)
        transplanted = verify(client, cropped(png(Image.fromarray(copied))))["recovery"]
        assert (transplanted["status"], transplanted["reason"]) == ("not_found", "watermark-mismatch")
        assert transplanted["watermark"]["test"] == "known-id"
        # a read far from every stored id's code word: nothing to test
        read = flipped(word, 8 * len(word))
        assert verify(client, cropped(signed.content))["recovery"]["status"] == "not_found"


def test_a_decode_worker_answers_the_known_id_question_on_its_copy(client: TestClient) -> None:
    marked = SpreadSpectrumWatermark().embed(np.asarray(grass()), PAYLOAD, KEY)
    attacked = turned(png(Image.fromarray(marked)))
    pool = client.app.state.pool  # type: ignore[attr-defined]
    config = worker_config(client.app.state.runtime)  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "query.png")
        Path(path).write_bytes(attacked)
        carried = Candidates((0x0123_4567_89AB, PAYLOAD), ((512, 512), (512, 512)))
        absent = Candidates((0x0123_4567_89AB,), ((512, 512),))

        # decoded from the file
        found: WatermarkDetection = pool.run(KnownMarkJob(path, carried, (KEY,)), config, None)
        assert (found.payload_id, found.key_id) == (PAYLOAD, KEY.key_id)
        assert pool.run(KnownMarkJob(path, absent, (KEY,)), config, None).payload_id is None

        # from the picture the worker kept after verifying the same copy
        verified: VerifyResult = pool.run(VerifyJob(path, None, False, (KEY,)), config, None)
        assert verified.evidence is not None
        kept: WatermarkDetection = pool.run(KnownMarkJob(path, carried, (KEY,)), config, None)
        assert kept == found
        assert pool.run(KnownMarkJob(path, carried, ()), config, None).payload_id is None
