"""A picture turned upright by its EXIF orientation, when its EXIF can be read.

Pillow's `ImageOps.exif_transpose` raises while parsing a malformed EXIF block (a PNG eXIf chunk or a JPEG
APP1 that is not TIFF raises SyntaxError, a truncated one struct.error): the mutation corpus sent such a PNG
to POST /v1/verify and got a 500. An orientation that cannot be read is no orientation: the picture is used
as stored.
"""

from __future__ import annotations

import struct

from PIL import Image

ORIENTATION_TAG = 0x0112
# What Pillow's EXIF parser raises on a malformed block (by type: its messages are not an interface).
_EXIF_ERRORS = (SyntaxError, ValueError, TypeError, KeyError, IndexError, EOFError, OSError, struct.error)
_TRANSPOSE = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8); 1 when there is none, it is out of range or the EXIF is malformed."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except _EXIF_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def to_upright(image: Image.Image) -> Image.Image:
    """`image` as a viewer shows it: transposed by its EXIF orientation (a new image), or itself."""
    steps = _TRANSPOSE.get(exif_orientation(image), ())
    out = image
    for step in steps:
        out = out.transpose(step)
    return out
