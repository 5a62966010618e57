"""ISCC image code and PDQ over decoded pixels: stable, robust to re-encoding and resizing, far apart for
different photos. Photos are the natural ones that ship inside scikit-image (no download)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

import signing
from signing import ISCC_MAX_DISTANCE, PDQ_MAX_DISTANCE, PDQ_MIN_QUALITY, hamming, iscc_body


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue()))


def half(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)


def distances(a: Image.Image, b: Image.Image) -> tuple[int, int]:
    fa, fb = signing.image_fingerprints(a), signing.image_fingerprints(b)
    return hamming(iscc_body(fa.iscc), iscc_body(fb.iscc)), hamming(fa.pdq.bits, fb.pdq.bits)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return photo("astronaut")


def test_same_pixels_give_the_same_fingerprints(astronaut: Image.Image) -> None:
    first = signing.image_fingerprints(astronaut)
    assert signing.image_fingerprints(astronaut.copy()) == first
    assert signing.image_fingerprints(np.asarray(astronaut)) == first  # an array of the same pixels
    assert first.iscc.startswith("ISCC:EE")  # content code, image subtype
    assert len(first.pdq.bits) == 32


def test_different_pixels_give_different_fingerprints(astronaut: Image.Image) -> None:
    """Negative control for the test above: the functions do look at the pixels."""
    other = signing.image_fingerprints(photo("coffee"))
    assert other != signing.image_fingerprints(astronaut)


@pytest.mark.parametrize("edit", ["jpeg75", "resize50"])
def test_re_encode_and_resize_stay_within_the_thresholds(astronaut: Image.Image, edit: str) -> None:
    edited = jpeg(astronaut, 75) if edit == "jpeg75" else half(astronaut)
    iscc_d, pdq_d = distances(astronaut, edited)
    assert iscc_d <= ISCC_MAX_DISTANCE
    assert pdq_d <= PDQ_MAX_DISTANCE


@pytest.mark.parametrize("other", ["coffee", "camera", "rocket"])
def test_an_unrelated_photo_is_beyond_both_thresholds(astronaut: Image.Image, other: str) -> None:
    iscc_d, pdq_d = distances(astronaut, photo(other))
    assert iscc_d > ISCC_MAX_DISTANCE
    assert pdq_d > PDQ_MAX_DISTANCE


def test_a_flat_image_gives_a_low_quality_pdq_hash_that_is_not_indexed(astronaut: Image.Image) -> None:
    flat = signing.pdq_hash(Image.new("RGB", (256, 256), (120, 130, 140)))
    assert flat.quality < PDQ_MIN_QUALITY
    assert not flat.indexable
    detailed = signing.pdq_hash(astronaut)  # negative control
    assert detailed.quality >= PDQ_MIN_QUALITY
    assert detailed.indexable


def test_transparent_pixels_count_as_white(astronaut: Image.Image) -> None:
    hole = (128, 128, 384, 384)
    with_hole = astronaut.convert("RGBA")
    with_hole.paste((0, 0, 0, 0), hole)  # transparent black
    white = astronaut.copy()
    white.paste((255, 255, 255), hole)
    assert signing.iscc_image_code(with_hole) == signing.iscc_image_code(white)
    black = astronaut.copy()  # what ignoring the alpha channel would give
    black.paste((0, 0, 0), hole)
    assert signing.iscc_image_code(with_hole) != signing.iscc_image_code(black)


@pytest.mark.parametrize("offset", [(40, 40), (80, 0), (0, 13)])
def test_a_uniform_border_does_not_change_the_iscc(astronaut: Image.Image, offset: tuple[int, int]) -> None:
    framed = Image.new("RGB", (astronaut.width + 80, astronaut.height + 80), (0, 0, 0))
    framed.paste(astronaut, offset)
    assert signing.iscc_image_code(framed) == signing.iscc_image_code(astronaut)
    noisy = framed.copy()  # negative control: a border that is not uniform stays part of the image
    noisy.putpixel((framed.width - 1, framed.height - 1), (255, 255, 255))
    assert signing.iscc_image_code(noisy) != signing.iscc_image_code(astronaut)


def test_iscc_body_round_trips_and_refuses_other_codes(astronaut: Image.Image) -> None:
    code = signing.iscc_image_code(astronaut)
    assert signing.iscc_code(iscc_body(code)) == code
    for wrong in ("", "ISCC:", "not a code", code.lower(), code[:-1], "ISCC:KACYPXW445FTYNJ3"):
        with pytest.raises(ValueError, match="ISCC"):
            iscc_body(wrong)


def test_hamming_counts_differing_bits() -> None:
    assert hamming(b"\x00\x00", b"\x00\x00") == 0
    assert hamming(b"\xff\x01", b"\x00\x00") == 9
    with pytest.raises(ValueError, match="lengths"):
        hamming(b"\x00", b"\x00\x00")
