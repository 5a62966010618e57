"""The invisible watermark engine: round trip, keys, unmarked images, attacks, quality, error correction."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from scipy import ndimage, special
from skimage import data

from signing import (
    WATERMARK_FALSE_POSITIVE_TARGET,
    SpreadSpectrumWatermark,
    UnmarkableImageError,
    WatermarkKey,
    new_payload_id,
)
from signing.softbinding import payload
from signing.softbinding.codes import TILE, patterns
from signing.softbinding.lattice import CANDIDATES, LARGE_ESTIMATES, UNCHANGED, _fold_sums, _fold_unchanged
from signing.softbinding.spread_spectrum import threshold, trial_counts

RGB = npt.NDArray[np.uint8]
ENGINE = SpreadSpectrumWatermark()
KEY = WatermarkKey("current", b"test watermark key number one....")
OTHER = WatermarkKey("other", b"a different test watermark key...")
PAYLOAD = 0x5A17_C0DE_BEEF


def sample(name: str) -> npt.NDArray[np.uint8]:
    """One of scikit-image's bundled photos (its loaders are untyped)."""
    return np.asarray(getattr(data, name)(), dtype=np.uint8)


def rgb(pixels: npt.NDArray[np.uint8]) -> RGB:
    return np.stack([pixels] * 3, axis=-1) if pixels.ndim == 2 else np.ascontiguousarray(pixels[..., :3])


@pytest.fixture(scope="module")
def photo() -> RGB:
    return rgb(sample("astronaut"))


@pytest.fixture(scope="module")
def marked(photo: RGB) -> RGB:
    return ENGINE.embed(photo, PAYLOAD, KEY)


def jpeg(pixels: RGB, quality: int) -> RGB:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def half_size(pixels: RGB) -> RGB:
    image = Image.fromarray(pixels)
    return np.asarray(image.resize((image.width // 2, image.height // 2), Image.Resampling.BICUBIC))


def psnr(a: RGB, b: RGB) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * float(np.log10(255**2 / mse))


def test_embed_then_detect_recovers_the_id(marked: RGB) -> None:
    found = ENGINE.detect(marked, (KEY,))
    assert found.payload_id == PAYLOAD
    assert found.key_id == "current"
    assert found.statistic >= found.threshold
    assert found.false_positive_bound <= WATERMARK_FALSE_POSITIVE_TARGET


def test_retired_key_still_detects_among_several(marked: RGB) -> None:
    found = ENGINE.detect(marked, (OTHER, KEY))
    assert (found.payload_id, found.key_id) == (PAYLOAD, "current")


def test_a_different_key_does_not_detect_it(marked: RGB) -> None:
    found = ENGINE.detect(marked, (OTHER,))
    assert found.payload_id is None
    assert found.key_id is None
    assert found.statistic < found.threshold


@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee", "rocket"])
def test_unmarked_photos_are_not_detected(name: str) -> None:
    picture = rgb(getattr(data, name)())
    assert not ENGINE.detect(picture, (KEY, OTHER)).detected
    # the negative control: the same picture once marked
    assert ENGINE.detect(ENGINE.embed(picture, PAYLOAD, KEY), (KEY, OTHER)).payload_id == PAYLOAD


def test_unmarked_noise_is_not_detected() -> None:
    noise = np.random.default_rng(1).integers(0, 256, size=(512, 512, 3), dtype=np.uint8)
    assert not ENGINE.detect(noise, (KEY,)).detected


def test_survives_jpeg_75(marked: RGB, photo: RGB) -> None:
    assert ENGINE.detect(jpeg(marked, 75), (KEY,)).payload_id == PAYLOAD
    assert not ENGINE.detect(jpeg(photo, 75), (KEY,)).detected


def test_survives_half_size(photo: RGB) -> None:
    big = np.asarray(Image.fromarray(photo).resize((1024, 1024), Image.Resampling.BICUBIC))
    assert ENGINE.detect(half_size(ENGINE.embed(big, PAYLOAD, KEY)), (KEY,)).payload_id == PAYLOAD
    assert not ENGINE.detect(half_size(big), (KEY,)).detected


def test_quality_stays_above_the_floor(photo: RGB, marked: RGB) -> None:
    assert 38.0 <= psnr(photo, marked) < 60.0
    assert marked.shape == photo.shape
    assert marked.dtype == np.uint8


def test_grey_and_rgba_keep_their_shape() -> None:
    grey = sample("camera")
    assert ENGINE.embed(grey, PAYLOAD, KEY).shape == grey.shape
    rgba = np.dstack([rgb(sample("astronaut")), np.full((512, 512), 200, dtype=np.uint8)])
    marked = ENGINE.embed(rgba, PAYLOAD, KEY)
    assert np.array_equal(marked[..., 3], rgba[..., 3])
    assert not np.array_equal(marked[..., :3], rgba[..., :3])


def test_embedding_is_deterministic_per_key(photo: RGB, marked: RGB) -> None:
    assert np.array_equal(ENGINE.embed(photo, PAYLOAD, KEY), marked)
    assert not np.array_equal(ENGINE.embed(photo, PAYLOAD, OTHER), marked)
    assert not np.array_equal(ENGINE.embed(photo, PAYLOAD + 1, KEY), marked)


def test_payload_code_corrects_thirteen_wrong_bits() -> None:
    soft = payload.encode(PAYLOAD).astype(np.float64) * 2 - 1
    soft[::9][:13] *= -1  # 13 wrong bits spread over data and parity
    assert payload.decode(soft) == PAYLOAD


def test_payload_code_uses_reliability_beyond_thirteen() -> None:
    soft = payload.encode(PAYLOAD).astype(np.float64) * 2 - 1
    soft[::8][:13] *= -1  # 13 confidently wrong bits ...
    soft[[5, 30, 77]] *= -0.01  # ... and 3 more barely wrong ones: only the Chase trials fix 16 errors
    assert payload.decode(soft) == PAYLOAD


def test_payload_code_refuses_too_many_errors() -> None:
    soft = payload.encode(PAYLOAD).astype(np.float64) * 2 - 1
    soft[::4][:24] *= -1
    assert payload.decode(soft) != PAYLOAD


def test_random_words_do_not_decode() -> None:
    rng = np.random.default_rng(5)
    assert all(payload.decode(rng.normal(size=payload.CODED_BITS)) is None for _ in range(200))


def test_new_ids_are_random_48_bit() -> None:
    ids = {new_payload_id() for _ in range(64)}
    assert len(ids) == 64
    assert all(0 <= value < 1 << 48 for value in ids)
    assert max(ids) >= 1 << 40


def test_small_and_flat_images_are_refused() -> None:
    with pytest.raises(UnmarkableImageError):
        ENGINE.embed(np.full((100, 600, 3), 128, dtype=np.uint8) + 1, PAYLOAD, KEY)
    with pytest.raises(UnmarkableImageError):
        ENGINE.embed(np.full((512, 512, 3), 128, dtype=np.uint8), PAYLOAD, KEY)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        WatermarkKey("short", b"too short")


def test_random_decode_bound_is_the_exact_ball_count() -> None:
    ball = sum(math.comb(payload.CODED_BITS, errors) for errors in range(14))
    assert pytest.approx(16 * ball * 2.0**payload.ID_BITS / 2.0**125) == payload.RANDOM_DECODE_BOUND
    assert 1e-5 < payload.RANDOM_DECODE_BOUND < 1e-4


def test_threshold_keeps_sync_and_code_together_at_the_target() -> None:
    unchanged, estimated = trial_counts(1)
    # each group of lattice hypotheses spends half of the budget; together they spend all of it
    assert unchanged == 2 * 2 * TILE * TILE
    assert estimated == 2 * (CANDIDATES - 1) * 2 * TILE * TILE
    spent = sum(
        trials / 2 * float(special.ndtr(-threshold(trials))) * payload.RANDOM_DECODE_BOUND
        for trials in (unchanged, estimated)
    )
    assert spent == pytest.approx(WATERMARK_FALSE_POSITIVE_TARGET, rel=1e-6)
    # the estimated lattices, being many, need a higher threshold than the unchanged grid
    assert threshold(estimated) > threshold(unchanged) + 0.5
    # a large image tries fewer estimates (unrefined), so its threshold is lower
    assert trial_counts(1, small=False) == (unchanged, 2 * LARGE_ESTIMATES * 2 * TILE * TILE)
    assert threshold(trial_counts(1, small=False)[1]) < threshold(estimated)
    # the sync test alone would need a higher threshold for the same bound
    total = CANDIDATES * 2 * TILE * TILE
    assert total * float(special.ndtr(-threshold(estimated))) > WATERMARK_FALSE_POSITIVE_TARGET


def test_unmix_reads_the_whitened_tile_without_cross_talk() -> None:
    codes = patterns(KEY.secret)
    bits = payload.encode(PAYLOAD)
    signs = 2.0 * bits.astype(np.float32) - 1.0
    tile = codes.sync + np.tensordot(signs, codes.bits, axes=1)
    seen = tile - ndimage.uniform_filter(tile, size=3, mode="wrap")  # the whitening's high-pass
    amplitudes = codes.unmix @ seen.ravel()
    assert np.allclose(amplitudes, np.concatenate([[1.0], signs]), atol=1e-3)
    # the raw codes (no high-pass) are not what the unmix expects: it reads them with cross-talk
    assert not np.allclose(codes.unmix @ tile.ravel(), np.concatenate([[1.0], signs]), atol=1e-3)


def test_busy_textures_get_a_stronger_mark_than_smooth_pictures() -> None:
    rng = np.random.default_rng(3)
    busy = np.clip(rng.normal(128, 30, size=(384, 384, 3)), 0, 255).astype(np.uint8)
    smooth = rgb(sample("camera"))[:384, :384]
    busy_psnr = psnr(busy, ENGINE.embed(busy, PAYLOAD, KEY))
    smooth_psnr = psnr(smooth, ENGINE.embed(smooth, PAYLOAD, KEY))
    assert 38.0 <= busy_psnr < smooth_psnr - 2.0
    assert smooth_psnr < 50.0


def rotated(pixels: RGB) -> RGB:
    return np.asarray(Image.fromarray(pixels).rotate(2, Image.Resampling.BICUBIC))


def cropped(pixels: RGB) -> RGB:
    return pixels[37:-65, 90:-12]  # 10 % off each side, unevenly, so the tile grid moves


@pytest.mark.parametrize("attack", [rotated, cropped])
def test_survives_geometry_at_generator_size(photo: RGB, attack: Callable[[RGB], RGB]) -> None:
    big = np.asarray(Image.fromarray(photo).resize((1024, 1024), Image.Resampling.LANCZOS))
    assert ENGINE.detect(attack(ENGINE.embed(big, PAYLOAD, KEY)), (KEY,)).payload_id == PAYLOAD
    assert not ENGINE.detect(attack(big), (KEY,)).detected


@pytest.mark.parametrize("attack", [rotated, half_size])
def test_survives_geometry_at_native_size(photo: RGB, marked: RGB, attack: Callable[[RGB], RGB]) -> None:
    # a 512 px photo: few tiles, so the lattice is ranked and refined by the sync statistic
    assert ENGINE.detect(attack(marked), (KEY,)).payload_id == PAYLOAD
    assert not ENGINE.detect(attack(photo), (KEY,)).detected


def test_the_unchanged_grid_folds_like_any_other_lattice() -> None:
    white = np.random.default_rng(2).normal(size=(300, 470)).astype(np.float32)
    fast = _fold_unchanged(white)
    general = _fold_sums(white, UNCHANGED)
    assert all(np.allclose(a, b) for a, b in zip(fast, general, strict=True))
    # the negative control: a turned lattice folds differently
    turned = _fold_sums(white, UNCHANGED.adjusted(1.0, 0.02))
    assert not np.allclose(fast[0], turned[0])
