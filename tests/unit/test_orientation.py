"""EXIF orientation is applied when it can be read, and a malformed EXIF block is no orientation: the
mutation corpus found a PNG whose eXIf chunk is not TIFF, which made Pillow's exif_transpose raise (a 500
on verify)."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageOps

from signing.softbinding.orientation import exif_orientation, to_upright


def png_with_exif(exif: bytes | None) -> Image.Image:
    picture = Image.new("RGB", (40, 20), (10, 20, 30))
    picture.putpixel((0, 0), (255, 0, 0))
    out = io.BytesIO()
    picture.save(out, format="PNG", **({"exif": exif} if exif is not None else {}))
    return Image.open(io.BytesIO(out.getvalue()))


def rotated_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def test_a_readable_orientation_is_applied() -> None:
    image = png_with_exif(rotated_exif(6))
    assert exif_orientation(image) == 6
    upright = to_upright(image)
    assert upright.size == (20, 40)
    assert upright.getpixel((19, 0)) == (255, 0, 0)  # the top-left pixel, turned a quarter clockwise


def test_no_exif_is_orientation_one() -> None:
    image = png_with_exif(None)
    assert exif_orientation(image) == 1
    assert to_upright(image).size == (40, 20)


@pytest.mark.parametrize("junk", [b"\xd3\x1e\xafv\xdbU\x90\xfb" * 4, b"II", b"XX\x00*\x00\x00\x00\x08"])
def test_a_malformed_exif_is_no_orientation(junk: bytes) -> None:
    image = png_with_exif(junk)
    with pytest.raises(SyntaxError):  # what Pillow's own exif_transpose does with it
        ImageOps.exif_transpose(png_with_exif(junk))
    assert exif_orientation(image) == 1
    assert to_upright(image).size == (40, 20)
