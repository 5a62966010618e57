"""Hamming distances of the ISCC image code and PDQ under common edits, and between unrelated photos.

Run: `.venv/bin/python -m bench.fingerprint_distances`. The match thresholds in
signing/softbinding/fingerprint.py are chosen from this output: every edit below must stay within them,
unrelated pairs must stay far outside.
"""

from __future__ import annotations

import io
import itertools
import statistics
import time
from collections.abc import Callable

from PIL import Image, ImageEnhance
from skimage import data

from signing.softbinding.fingerprint import (
    ISCC_MAX_DISTANCE,
    PDQ_MAX_DISTANCE,
    hamming,
    image_fingerprints,
)
from signing.softbinding.iscc import iscc_body

# skimage.data's `cat` is `chelsea` again, so it is left out.
NATURAL = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "immunohistochemistry",
           "hubble_deep_field", "retina")  # fmt: skip
TEXTURES = ("page", "text", "brick", "grass", "gravel", "colorwheel", "horse", "logo")


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue()))


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg90": lambda im: _jpeg(im, 90),
    "jpeg75": lambda im: _jpeg(im, 75),
    "jpeg50": lambda im: _jpeg(im, 50),
    "resize50": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "resize200": lambda im: im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC),
    "brightness+10%": lambda im: ImageEnhance.Brightness(im.convert("RGB")).enhance(1.1),
    "crop10%": lambda im: im.crop(
        (im.width // 20, im.height // 20, im.width * 19 // 20, im.height * 19 // 20)
    ),
}


def photos() -> dict[str, Image.Image]:
    found = {}
    for name in NATURAL + TEXTURES:
        loader = getattr(data, name, None)
        if loader is not None:
            found[name] = Image.fromarray(loader()).convert("RGB")
    return found


def _worst(distances: dict[str, int]) -> str:
    natural = max(d for name, d in distances.items() if name in NATURAL)
    return f"{natural}/{max(distances.values())}"


def main() -> None:
    images = photos()
    base = {name: image_fingerprints(im) for name, im in images.items()}
    print(f"{len(images)} photos from skimage.data; thresholds ISCC <= {ISCC_MAX_DISTANCE}, ", end="")
    print(f"PDQ <= {PDQ_MAX_DISTANCE}")
    print("maximum distance after each edit: natural photos / all (textures, text and drawings included)")
    print(f"{'edit':16} {'ISCC':>9} {'PDQ':>9}")
    for edit, fn in EDITS.items():
        iscc_d: dict[str, int] = {}
        pdq_d: dict[str, int] = {}
        for name, im in images.items():
            fp = image_fingerprints(fn(im))
            iscc_d[name] = hamming(iscc_body(base[name].iscc), iscc_body(fp.iscc))
            if base[name].pdq.indexable:
                pdq_d[name] = hamming(base[name].pdq.bits, fp.pdq.bits)
        print(f"{edit:16} {_worst(iscc_d):>9} {_worst(pdq_d):>9}")
    pairs = list(itertools.combinations(images, 2))
    iscc_u = [hamming(iscc_body(base[a].iscc), iscc_body(base[b].iscc)) for a, b in pairs]
    pdq_u = [
        hamming(base[a].pdq.bits, base[b].pdq.bits)
        for a, b in pairs
        if base[a].pdq.indexable and base[b].pdq.indexable
    ]
    print(f"{'unrelated (min)':16} {min(iscc_u):9d} {min(pdq_u):8d}  over {len(pairs)} pairs")
    low = [name for name, fp in base.items() if not fp.pdq.indexable]
    print(f"PDQ quality < 50 (not indexed): {', '.join(low) or 'none'}")
    megapixel = images["astronaut"].resize((1024, 1024))
    times = []
    for _ in range(50):
        start = time.process_time()
        image_fingerprints(megapixel)
        times.append(time.process_time() - start)
    print(f"both fingerprints of a 1 MP image: p50 {statistics.median(times) * 1e3:.1f} ms of CPU")


if __name__ == "__main__":
    main()
