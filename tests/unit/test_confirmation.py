"""The confirmation print: the signed picture is confirmed after a crop, a resize or a JPEG re-encode; a
different photo after the same edit is not. Photos are the natural ones inside scikit-image (no download)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image
from skimage import data

import signing
from signing import CONFIRM_THRESHOLD, ConfirmationPrint

Edit = Callable[[Image.Image], Image.Image]


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def crop10(image: Image.Image) -> Image.Image:
    """10 % of the width and of the height cut, unevenly (as bench/confirmation.py does)."""
    left, top = int(image.width * 0.07), int(image.height * 0.03)
    return image.crop((left, top, left + image.width * 9 // 10, top + image.height * 9 // 10))


def half(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.BICUBIC)


def jpeg50(image: Image.Image) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=50)
    return Image.open(io.BytesIO(out.getvalue()))


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return photo("astronaut")


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return photo("coffee")


@pytest.fixture(scope="module")
def stored(astronaut: Image.Image) -> ConfirmationPrint:
    return signing.confirmation_print(astronaut)


@pytest.mark.parametrize("edit", [crop10, half, jpeg50])
def test_the_signed_picture_is_confirmed_after_an_edit(
    stored: ConfirmationPrint, astronaut: Image.Image, edit: Edit
) -> None:
    result = signing.confirm(stored, edit(astronaut))
    assert result.confirmed
    assert result.score >= CONFIRM_THRESHOLD


@pytest.mark.parametrize("edit", [crop10, half, jpeg50])
def test_a_different_photo_is_not_confirmed_after_the_same_edit(
    stored: ConfirmationPrint, coffee: Image.Image, edit: Edit
) -> None:
    """Negative control for the test above: a watermark transplanted onto another photo is refused."""
    result = signing.confirm(stored, edit(coffee))
    assert not result.confirmed
    assert result.score < CONFIRM_THRESHOLD / 2


def test_grey_rgba_and_palette_queries_are_compared_by_their_luma(
    stored: ConfirmationPrint, astronaut: Image.Image, coffee: Image.Image
) -> None:
    for mode in ("L", "RGBA", "P"):
        assert signing.confirm(stored, astronaut.convert(mode)).confirmed, mode
        assert not signing.confirm(stored, coffee.convert(mode)).confirmed, mode


def test_a_tiny_query_is_not_confirmed(stored: ConfirmationPrint, astronaut: Image.Image) -> None:
    tiny = astronaut.resize((8, 8), Image.Resampling.BOX)
    result = signing.confirm(stored, tiny)
    assert not result.confirmed
    assert result.scale == 0.0  # no hypothesis could be tried at all
    assert not signing.confirm(stored, Image.new("RGB", (0, 0))).confirmed
    assert not signing.confirm(stored, Image.new("RGB", (1000, 3))).confirmed
    assert signing.confirm(stored, astronaut.resize((64, 64))).confirmed  # a small one still can


def test_the_print_is_taken_from_upright_pixels(astronaut: Image.Image) -> None:
    """A JPEG whose EXIF says "rotate 90 degrees" prints as the picture a viewer shows."""
    turned = astronaut.crop((0, 0, 512, 384)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    out = io.BytesIO()
    turned.save(out, "PNG", exif=exif)
    tagged = Image.open(io.BytesIO(out.getvalue()))
    upright = signing.confirmation_print(astronaut.crop((0, 0, 512, 384)))
    assert signing.confirmation_print(tagged).width == upright.width == 512
    assert signing.confirm(upright, tagged).confirmed
    assert not signing.confirm(upright, turned).confirmed  # negative control: without the tag it is sideways


def test_bytes_round_trip(stored: ConfirmationPrint) -> None:
    raw = stored.to_bytes()
    assert ConfirmationPrint.from_bytes(raw) == stored
    assert ConfirmationPrint.from_bytes(raw).to_bytes() == raw
    assert (stored.width, stored.height) == (512, 512)
    assert len(raw) <= 17 + 128 * 128


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda raw: raw[:10], "too short"),  # cut inside the header
        (lambda raw: raw[:-1], "length"),  # one thumbnail byte missing
        (lambda raw: raw + b"\x00", "length"),  # one byte too many
        (lambda raw: b"XXXX" + raw[4:], "not a version 1"),  # wrong magic
        (lambda raw: raw[:4] + b"\x02" + raw[5:], "not a version 1"),  # unknown version
        (lambda raw: raw[:5] + (1024).to_bytes(4, "big") + raw[9:], "does not follow"),  # width vs thumbnail
        (lambda raw: raw[:5] + bytes(4) + raw[9:], "out of range"),  # zero width
        (lambda raw: b"", "too short"),
    ],
)
def test_malformed_bytes_are_refused(
    stored: ConfirmationPrint, damage: Callable[[bytes], bytes], reason: str
) -> None:
    raw = stored.to_bytes()
    assert ConfirmationPrint.from_bytes(raw) == stored  # the undamaged bytes parse (control)
    with pytest.raises(ValueError, match=reason):
        ConfirmationPrint.from_bytes(damage(raw))


def test_the_digest_follows_the_bytes(stored: ConfirmationPrint, coffee: Image.Image) -> None:
    raw = bytearray(stored.to_bytes())
    assert ConfirmationPrint.from_bytes(bytes(raw)).sha256 == stored.sha256  # same print, same digest
    assert len(stored.sha256) == 64
    raw[-1] ^= 1  # one grey level of one thumbnail pixel
    assert ConfirmationPrint.from_bytes(bytes(raw)).sha256 != stored.sha256
    assert signing.confirmation_print(coffee).sha256 != stored.sha256
