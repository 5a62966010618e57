"""Informed detection (signing/softbinding/informed.py): testing a picture for known watermark ids.

The photo is scikit-image's "grass", a dense texture on which the blind detector misses the mark after each
of these attacks (checked here, so each case shows what the known-id test adds); the known-id test finds it.
Negative controls: the same attacks on the unmarked photo, candidates without the true id, another key, and
a picture whose own periodic structure fools a correlation standardised by its surface's spread.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from scipy import fft, ndimage, special
from skimage import data

from signing import WATERMARK_WORD_RADIUS, Candidates, SpreadSpectrumWatermark, WatermarkKey, hamming
from signing.softbinding import informed, payload
from signing.softbinding.codes import TILE, patterns, tile_pattern
from signing.softbinding.lattice import UNCHANGED, fold, whiten

RGB = npt.NDArray[np.uint8]
ENGINE = SpreadSpectrumWatermark()
KEY = WatermarkKey("current", b"test watermark key number one....")
OTHER = WatermarkKey("other", b"a different test watermark key...")
PAYLOAD = 0x5A17_C0DE_BEEF
DECOYS = (0x0123_4567_89AB, 0x7E57_0000_0001)


def rgb(array: npt.NDArray[np.generic]) -> RGB:
    pixels = np.asarray(array, dtype=np.uint8)
    return np.stack([pixels] * 3, axis=-1) if pixels.ndim == 2 else np.ascontiguousarray(pixels[..., :3])


def photo(name: str) -> RGB:
    """One of scikit-image's bundled photos (its loaders are untyped)."""
    return rgb(getattr(data, name)())


def resized(pixels: RGB, factor: float) -> RGB:
    image = Image.fromarray(pixels)
    size = (round(image.width * factor), round(image.height * factor))
    return np.asarray(image.resize(size, Image.Resampling.BICUBIC))


def screenshot(pixels: RGB) -> RGB:
    buffer = io.BytesIO()
    Image.fromarray(resized(pixels, 0.8)).save(buffer, "PNG")
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def turned(pixels: RGB) -> RGB:
    return np.asarray(Image.fromarray(pixels).rotate(2, Image.Resampling.BICUBIC))


ATTACKS: dict[str, Callable[[RGB], RGB]] = {
    "resize 50%": lambda p: resized(p, 0.5),
    "resize 200%": lambda p: resized(p, 2.0),
    "screenshot 80%": screenshot,
    "rotate 2 degrees": turned,
}


@pytest.fixture(scope="module")
def grass() -> RGB:
    return photo("grass")


@pytest.fixture(scope="module")
def marked(grass: RGB) -> RGB:
    return ENGINE.embed(grass, PAYLOAD, KEY)


def candidates(*ids: int, size: tuple[int, int] = (512, 512)) -> Candidates:
    return Candidates(ids, (size,) * len(ids))


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_the_known_id_is_found_where_the_blind_read_misses(
    marked: RGB, grass: RGB, attack: Callable[[RGB], RGB]
) -> None:
    attacked = np.ascontiguousarray(attack(marked))
    assert ENGINE.detect(attacked, (KEY,)).payload_id is None  # the premise: blind detection misses it

    found = ENGINE.detect_known(attacked, (KEY,), candidates(DECOYS[0], PAYLOAD, DECOYS[1]))
    assert found.payload_id == PAYLOAD
    assert found.key_id == KEY.key_id
    assert found.statistic >= found.threshold
    assert found.false_positive_bound <= 1e-6

    unmarked = ENGINE.detect_known(np.ascontiguousarray(attack(grass)), (KEY,), candidates(PAYLOAD))
    assert unmarked.payload_id is None
    assert unmarked.statistic < unmarked.threshold


def test_other_ids_are_not_found_in_a_strongly_marked_picture(marked: RGB) -> None:
    """Every id of a key shares the sync code; the test leaves it out, so a strong mark does not lend its
    evidence to a candidate it does not carry."""
    assert ENGINE.detect_known(marked, (KEY,), candidates(PAYLOAD)).statistic > 10.0
    found = ENGINE.detect_known(marked, (KEY,), candidates(*DECOYS))
    assert found.payload_id is None
    assert found.statistic < found.threshold


def test_a_mark_under_a_key_not_given_is_not_found(marked: RGB) -> None:
    attacked = turned(marked)
    assert ENGINE.detect_known(attacked, (KEY,), candidates(PAYLOAD)).payload_id == PAYLOAD
    assert ENGINE.detect_known(attacked, (OTHER,), candidates(PAYLOAD)).payload_id is None
    retired = ENGINE.detect_known(attacked, (OTHER, KEY), candidates(PAYLOAD))
    assert (retired.payload_id, retired.key_id) == (PAYLOAD, KEY.key_id)


def test_a_picture_with_its_own_period_is_not_taken_for_a_mark() -> None:
    """The moon photo doubled in size: its 8-pixel block grid, now 16 pixels, lines up with the 4-pixel
    chips of every code on the unchanged grid. Standardised by the spread of its correlation surface (as
    if normal), 20 random ids on that one lattice reach a score the normal model gives them with
    probability 1e-6; standardised by each shift's own variance under the key's random chip signs
    (Hoeffding), every id stays far below the known-id threshold."""
    picture = resized(photo("moon"), 2.0)
    luma = picture[..., 0].astype(np.float32)  # grey: R = G = B
    ids = tuple(range(1, 21))
    limit = informed.threshold(informed.trials(len(informed.lattice_grid(luma.shape, ((512, 512),))), 1, 3))

    tile = fold(whiten(informed._central(luma, 768)), UNCHANGED)
    spectrum = fft.rfft2(tile)
    naive = []
    for payload_id in ids:
        pattern = tile_pattern(patterns(KEY.secret), payload.encode(payload_id)).astype(np.float64)
        pattern -= ndimage.uniform_filter(pattern, size=3, mode="wrap")  # as whitening shows it
        surface = fft.irfft2(spectrum * np.conj(fft.rfft2(pattern)), s=(TILE, TILE))
        naive.append((surface.max() - surface.mean()) / surface.std())
    normal_limit = float(special.ndtri(1.0 - 1e-6 / (len(ids) * TILE * TILE)))
    assert max(naive) > normal_limit  # the normal model would report a mark here

    for start in range(0, len(ids), 3):
        found = ENGINE.detect_known(picture, (KEY,), candidates(*ids[start : start + 3], size=(512, 512)))
        assert found.payload_id is None
        assert found.statistic < limit - 1.0


def test_a_read_the_code_cannot_correct_lies_near_the_true_code_word() -> None:
    """The astronaut doubled in size: the blind detector synchronises but reads more wrong bits than the BCH
    code corrects. The word it read is still near the id's code word (the repository searches there) and
    far from other ids'; the known-id test then finds the id even counted among a million."""
    attacked = resized(ENGINE.embed(photo("astronaut"), PAYLOAD, KEY), 2.0)
    blind = ENGINE.detect(attacked, (KEY,))
    assert blind.payload_id is None
    assert blind.statistic >= blind.threshold  # synchronised, not decoded
    assert blind.word is not None
    assert 13 < hamming(blind.word, payload.codeword(PAYLOAD)) <= WATERMARK_WORD_RADIUS
    assert all(hamming(blind.word, payload.codeword(decoy)) > WATERMARK_WORD_RADIUS for decoy in DECOYS)

    among_many = ENGINE.detect_known(attacked, (KEY,), Candidates((PAYLOAD,), ((512, 512),), 10**6))
    assert among_many.payload_id == PAYLOAD
    alone = ENGINE.detect_known(attacked, (KEY,), candidates(PAYLOAD))
    assert among_many.threshold > alone.threshold  # the population is paid for
    # a mark that decodes reports its id and no word
    assert ENGINE.detect(ENGINE.embed(photo("astronaut"), PAYLOAD, KEY), (KEY,)).word is None


def test_the_threshold_spends_one_in_a_million_over_every_try() -> None:
    count = informed.trials(58, 2, 3)
    assert count == 58 * 2 * 3 * TILE * TILE
    t = informed.threshold(count)
    assert math.isclose(count * math.exp(-t * t / 2), 1e-6, rel_tol=1e-9)
    assert informed.threshold(count * 10) > t


def test_the_lattice_grid_follows_the_sizes_alone() -> None:
    grid = informed.lattice_grid((256, 256), ((512, 512),))
    assert grid == informed.lattice_grid((256, 256), ((512, 512),))
    scales = sorted({round(h.lattice.scale, 4) for h in grid})
    assert scales == [0.5, 1.0]  # the resize the signed size implies, and none
    angles = [math.atan2(h.lattice.v1[1], h.lattice.v1[0]) for h in grid]
    assert max(angles) <= informed.MAX_TURN + 1e-9
    assert max(angles) > informed.MAX_TURN / 2
    assert grid[0].lattice.v1 == (64.0, 0.0)  # the candidate's resize, unturned, first
    upscaled = informed.lattice_grid((1024, 1024), ((512, 512),))
    assert {h.step for h in upscaled if round(h.lattice.scale) == 2} == {2}


def test_candidates_are_bounded_and_paired_with_sizes() -> None:
    with pytest.raises(ValueError, match="one signed size per payload id"):
        Candidates((1, 2), ((10, 10),))
    with pytest.raises(ValueError, match="candidate ids"):
        Candidates((1, 2, 3, 4), ((10, 10),) * 4)
    with pytest.raises(ValueError, match="candidate ids"):
        Candidates((), ())
    assert Candidates((1, 2), ((10, 10),) * 2).tried == 2
    assert Candidates((1, 2), ((10, 10),) * 2, population=500).tried == 500
