"""Perceptual fingerprints of decoded pixels: the ISCC image code (ISO 24138, `io.iscc.v0`) and PDQ.

Pure functions over an image already decoded in memory; the adapters decode (in the sandbox) and pass
pixels in. ISCC normalisation follows iscc-sdk's `image_normalize` (EXIF transpose, white behind
transparency, trim a uniform border, grey, 32 x 32 bicubic) so codes match other ISCC tools without the
SDK's downloaded binaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import iscc_core
import numpy as np
import pdqhash
from numpy.typing import NDArray
from PIL import Image

from signing.softbinding.iscc import ISCC_BITS, ISCC_MAX_DISTANCES, IsccKind
from signing.softbinding.orientation import to_upright

PDQ_BITS: Final = 256

# Match thresholds (inclusive Hamming distance), chosen from bench/fingerprint_distances.py: re-encodes,
# resizes and brightness changes of a photo stay well below (ISCC <= 2, PDQ <= 22), unrelated photos far
# above (ISCC >= 20, PDQ >= 106). Audio and video codes have their own (iscc.py).
ISCC_MAX_DISTANCE: Final = ISCC_MAX_DISTANCES[IsccKind.IMAGE]
PDQ_MAX_DISTANCE: Final = 31  # the threshold PDQ's authors recommend for 256-bit matching
# PDQ's quality score (0-100) falls on flat or low-detail images, whose hashes collide; the authors advise
# not to match on hashes below 50, so such hashes are kept but never indexed.
PDQ_MIN_QUALITY: Final = 50

PDQ_INPUT_SIDE: Final = 512  # larger images are hashed from a copy scaled to this side (speed)

Pixels = Image.Image | NDArray[np.uint8]


@dataclass(frozen=True)
class PdqHash:
    bits: bytes  # 32 bytes, bit i of the hash is bit (7 - i % 8) of byte i // 8
    quality: int  # 0-100

    @property
    def indexable(self) -> bool:
        return self.quality >= PDQ_MIN_QUALITY


@dataclass(frozen=True)
class ImageFingerprints:
    iscc: str  # canonical "ISCC:EEA..." image code, 64 bits
    pdq: PdqHash


def image_fingerprints(pixels: Pixels) -> ImageFingerprints:
    image = _upright(pixels)
    return ImageFingerprints(iscc=_iscc(image), pdq=_pdq(image))


def iscc_image_code(pixels: Pixels) -> str:
    return _iscc(_upright(pixels))


def pdq_hash(pixels: Pixels) -> PdqHash:
    return _pdq(_upright(pixels))


def hamming(a: bytes, b: bytes) -> int:
    if len(a) != len(b):
        raise ValueError("hashes of different lengths")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def _upright(pixels: Pixels) -> Image.Image:
    if isinstance(pixels, Image.Image):
        return to_upright(pixels)
    return Image.fromarray(np.ascontiguousarray(pixels))


def _iscc(image: Image.Image) -> str:
    grey = _trim_border(_opaque(image)).convert("L").resize((32, 32), Image.Resampling.BICUBIC)
    code: str = iscc_core.gen_image_code_v0(np.asarray(grey).ravel().tolist(), bits=ISCC_BITS)["iscc"]
    return code


def _pdq(image: Image.Image) -> PdqHash:
    rgb = _opaque(image)
    if max(rgb.size) > PDQ_INPUT_SIDE:
        # Hashing a megapixel at full size costs ~80 ms; at 512 px ~8 ms and a few bits of difference.
        rgb = rgb.copy()
        rgb.thumbnail((PDQ_INPUT_SIDE, PDQ_INPUT_SIDE), Image.Resampling.BOX)
    bits, quality = pdqhash.compute(np.asarray(rgb))
    return PdqHash(bits=np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes(), quality=int(quality))


def _opaque(image: Image.Image) -> Image.Image:
    """Transparent pixels count as white, as in iscc-sdk."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _trim_border(image: Image.Image) -> Image.Image:
    """Drop a uniform border (the colour of the top-left pixel): letterboxing must not change the code.
    Same result as iscc-sdk's `image_trim_border`, without a full-image pass in the usual case."""
    pixels = np.asarray(image)

    def differs(region: NDArray[np.uint8]) -> NDArray[np.bool_]:
        unequal: NDArray[np.bool_] = np.asarray(region != pixels[0, 0])
        return np.asarray(unequal.any(axis=-1)) if pixels.ndim == 3 else unequal

    if all(differs(edge).any() for edge in (pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1])):
        return image  # no uniform border on any side
    mask = differs(pixels)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return image  # one colour throughout
    return image.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
