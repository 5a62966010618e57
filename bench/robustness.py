"""Robustness of the invisible watermark (`python bench/robustness.py [--quick]`).

Marks the natural photos inside scikit-image's wheel plus generated pictures with random payload ids, attacks
them with Pillow (strip, JPEG 90/75/50, resize 50/200 %, crop 10/25 %, 80 % screenshot to PNG, rotate 2
degrees, brightness +10 %, WebP, horizontal flip) and prints per attack the detection rate (any id found),
the exact payload recovery rate of the blind read, and the rate once the known-id test (informed.py) has
looked where the blind read missed, with the true id among two random others as the repository's neighbours
would name them; PSNR/SSIM of the marked images. It does so twice: at the images' native
sizes (the photos are 300-660 px) and rescaled to about 1 MP, the size image generators produce, and says
which size class meets the targets. Then false positives on never-marked images (generated textures and
crops of photos, each after one attack), of the blind read and of the known-id test for three random ids;
embed and detect time per 1 MP, one core. `--seed` picks the generated images and ids: the reported run
uses the default; tune on other seeds.
Targets (issue 7): mean PSNR >= 42 dB (min >= 38), recovery >= 97 % after every attack but crop 25 % and
flip, 0 false positives, embed <= 40 ms and detect <= 80 ms per 1 MP.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageEnhance
from skimage import data, metrics

from signing import Candidates, SpreadSpectrumWatermark, WatermarkKey

RGB = npt.NDArray[np.uint8]
# scikit-image's functions are untyped
psnr: Callable[..., float] = getattr(metrics, "peak_signal_noise_ratio")  # noqa: B009
ssim: Callable[..., float] = getattr(metrics, "structural_similarity")  # noqa: B009
PHOTOS = (
    "astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "moon", "brick", "grass", "gravel",
    "clock", "hubble_deep_field", "immunohistochemistry", "retina", "cell",
)  # fmt: skip
KEY = WatermarkKey("bench", b"bench-only watermark key, not a secret")


def rgb(array: npt.NDArray[np.generic]) -> RGB:
    pixels = np.asarray(array)
    if pixels.dtype == np.bool_:
        pixels = pixels.astype(np.uint8) * 255
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return np.ascontiguousarray(pixels[..., :3].astype(np.uint8))


def pink_noise(rng: np.random.Generator, height: int, width: int) -> RGB:
    """A 1/f^beta random-phase texture with a random colour cast: natural-image-like statistics."""
    beta = rng.uniform(1.0, 2.6)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(height, width)) ** (beta / 2)
    channels = []
    base = rng.normal(size=(height, width // 2 + 1)) + 1j * rng.normal(size=(height, width // 2 + 1))
    for _ in range(3):
        mixed = base + 0.3 * (rng.normal(size=base.shape) + 1j * rng.normal(size=base.shape))
        field = np.fft.irfft2(mixed * amplitude, s=(height, width))
        channels.append((field - field.mean()) / field.std())
    picture = np.stack(channels, axis=-1) * rng.uniform(20, 60) + rng.uniform(60, 190, size=3)
    return np.clip(picture, 0, 255).astype(np.uint8)


def shapes(rng: np.random.Generator, height: int, width: int) -> RGB:
    """A rendered-looking picture: gradient background, random discs and bars, mild sensor noise."""
    ys, xs = np.mgrid[0:height, 0:width]
    picture = np.zeros((height, width, 3))
    for channel in range(3):
        picture[..., channel] = rng.uniform(40, 200) + rng.uniform(-60, 60) * xs / width
    for _ in range(int(rng.integers(5, 25))):
        cy, cx, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(10, height / 3)
        inside = (ys - cy) ** 2 + (xs - cx) ** 2 < radius**2
        picture[inside] = rng.uniform(0, 255, size=3)
    picture += rng.normal(0, rng.uniform(1, 6), size=picture.shape)
    return np.clip(picture, 0, 255).astype(np.uint8)


def generated(rng: np.random.Generator, count: int) -> list[tuple[str, RGB]]:
    out = []
    for index in range(count):
        height, width = int(rng.integers(384, 900)), int(rng.integers(384, 1100))
        maker = pink_noise if index % 2 == 0 else shapes
        out.append((f"{maker.__name__}-{index}", maker(rng, height, width)))
    return out


def encoded(pixels: RGB, fmt: str, **options: int) -> RGB:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def resized(pixels: RGB, factor: float) -> RGB:
    image = Image.fromarray(pixels)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return np.asarray(image.resize(size, Image.Resampling.BICUBIC))


def cropped(pixels: RGB, fraction: float) -> RGB:
    """Cut `fraction` of the width and of the height, unevenly, so the tile grid moves."""
    height, width = pixels.shape[:2]
    top, left = int(height * fraction * 0.3), int(width * fraction * 0.7)
    return pixels[top : top + height - int(height * fraction), left : left + width - int(width * fraction)]


ATTACKS: dict[str, Callable[[RGB], RGB]] = {
    "strip metadata": lambda p: encoded(p, "PNG"),
    "jpeg 90": lambda p: encoded(p, "JPEG", quality=90),
    "jpeg 75": lambda p: encoded(p, "JPEG", quality=75),
    "jpeg 50": lambda p: encoded(p, "JPEG", quality=50),
    "resize 50%": lambda p: resized(p, 0.5),
    "resize 200%": lambda p: resized(p, 2.0),
    "crop 10%": lambda p: cropped(p, 0.10),
    "crop 25%": lambda p: cropped(p, 0.25),
    "screenshot 80%": lambda p: encoded(resized(p, 0.8), "PNG"),
    "rotate 2deg": lambda p: np.asarray(Image.fromarray(p).rotate(2, Image.Resampling.BICUBIC)),
    "brightness +10%": lambda p: np.asarray(ImageEnhance.Brightness(Image.fromarray(p)).enhance(1.1)),
    "webp": lambda p: encoded(p, "WEBP", quality=80),
    "flip": lambda p: np.ascontiguousarray(p[:, ::-1]),
}
EXEMPT = {"crop 25%", "flip"}


def timings(engine: SpreadSpectrumWatermark, runs: int) -> tuple[float, float, float, float]:
    """Median embed, detect (marked) and detect (unmarked: every hypothesis tried) CPU milliseconds for a
    1 MP (1024 x 1024) photo crop, and the known-id test for three ids on the unmarked crop (every lattice
    of its grid tried); process time, so other jobs on the machine do not count."""
    photo = rgb(getattr(data, "retina")())[200:1224, 200:1224]  # noqa: B009 (untyped loader)
    candidates = Candidates((1, 2, 3), ((1024, 1024),) * 3)
    embed, detect, miss, known = [], [], [], []
    for _ in range(runs):
        start = time.process_time()
        marked = engine.embed(photo, 42, KEY)
        embed.append(time.process_time() - start)
        start = time.process_time()
        engine.detect(marked, (KEY,))
        detect.append(time.process_time() - start)
        start = time.process_time()
        engine.detect(photo, (KEY,))
        miss.append(time.process_time() - start)
        start = time.process_time()
        engine.detect_known(photo, (KEY,), candidates)
        known.append(time.process_time() - start)
    return tuple(1000 * statistics.median(values) for values in (embed, detect, miss, known))  # type: ignore[return-value]


def null_images(rng: np.random.Generator, photos: list[RGB], count: int) -> list[RGB]:
    """Never-marked pictures: textures, shapes and random crops of unmarked photos, 256 to 700 px."""
    out = []
    for index in range(count):
        if index % 3 == 2:
            photo = photos[index % len(photos)]
            height = int(rng.integers(min(256, photo.shape[0]), photo.shape[0] + 1))
            width = int(rng.integers(min(256, photo.shape[1]), photo.shape[1] + 1))
            top = int(rng.integers(0, photo.shape[0] - height + 1))
            left = int(rng.integers(0, photo.shape[1] - width + 1))
            out.append(photo[top : top + height, left : left + width])
        else:
            maker = pink_noise if index % 3 == 0 else shapes
            out.append(maker(rng, int(rng.integers(256, 700)), int(rng.integers(256, 700))))
    return out


def at_generator_size(pixels: RGB) -> RGB:
    """The picture rescaled (Lanczos, aspect kept) to about 1 MP, the size image generators produce."""
    height, width = pixels.shape[:2]
    factor = (1_000_000 / (height * width)) ** 0.5
    size = (round(width * factor), round(height * factor))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def attacked(
    engine: SpreadSpectrumWatermark, rng: np.random.Generator, images: list[tuple[str, RGB]], label: str
) -> bool:
    """Mark every image, attack it, detect; print the table and say whether this size class meets the
    targets (PSNR, and exact recovery >= 97 % after every attack that has a target)."""
    hits = dict.fromkeys(ATTACKS, 0)
    exact = dict.fromkeys(ATTACKS, 0)
    informed = dict.fromkeys(ATTACKS, 0)
    psnrs, ssims = [], []
    for _, picture in images:
        payload_id = int(rng.integers(0, 1 << 48))
        marked = engine.embed(picture, payload_id, KEY)
        psnrs.append(psnr(picture, marked, data_range=255))
        ssims.append(ssim(picture, marked, channel_axis=-1, data_range=255))
        # what recovery asks when the blind read misses: the repository's neighbours' ids (the true one
        # among two others) and their signed sizes
        decoys = [int(rng.integers(0, 1 << 48)) for _ in range(2)]
        size = (marked.shape[1], marked.shape[0])
        candidates = Candidates((decoys[0], payload_id, decoys[1]), (size,) * 3)
        for name, attack in ATTACKS.items():
            query = np.ascontiguousarray(attack(marked))
            found = engine.detect(query, (KEY,))
            hits[name] += found.detected
            exact[name] += found.payload_id == payload_id
            if found.payload_id != payload_id:
                found = engine.detect_known(query, (KEY,), candidates)
            informed[name] += found.payload_id == payload_id
    total = len(images)
    sides = sorted(min(picture.shape[:2]) for _, picture in images)
    print(f"\n{label}: {total} images, shorter side {sides[0]}-{sides[-1]} px")
    mean_psnr, min_psnr = statistics.mean(psnrs), min(psnrs)
    print(f"PSNR mean {mean_psnr:.2f} dB, min {min_psnr:.2f} dB (target mean >= 42, min >= 38)")
    print(f"SSIM mean {statistics.mean(ssims):.4f}, min {min(ssims):.4f}")
    print(f"{'attack':<18}{'detected':>10}{'exact id':>10}{'+known-id':>11}")
    meets = bool(mean_psnr >= 42 and min_psnr >= 38)
    for name in ATTACKS:
        rate, known = exact[name] / total, informed[name] / total
        note = " (reported, no target)" if name in EXEMPT else ("" if known >= 0.97 else "  < 97 % target")
        meets &= name in EXEMPT or known >= 0.97
        print(f"{name:<18}{100 * hits[name] / total:>9.1f}%{100 * rate:>9.1f}%{100 * known:>10.1f}%{note}")
    print(f"{label}: {'meets every target' if meets else 'misses a target'}")
    return meets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (a smoke run)")
    parser.add_argument("--count", type=int, help="generated images per size class (default 25, quick 4)")
    parser.add_argument("--nulls", type=int, help="never-marked images (default 1200, quick 150)")
    parser.add_argument("--seed", type=int, default=7, help="the reported run uses 7; tune on others")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the targets are stated
    rng = np.random.default_rng(args.seed)
    engine = SpreadSpectrumWatermark()

    photos = [(name, rgb(getattr(data, name)())) for name in (PHOTOS[:6] if args.quick else PHOTOS)]
    count = args.count if args.count is not None else (4 if args.quick else 25)
    images = photos + generated(rng, count)
    print(f"watermark bench (seed {args.seed}): {len(photos)} scikit-image photos + {count} generated images")
    native = attacked(engine, rng, images, "native size (as shipped or generated)")
    big = [(name, at_generator_size(picture)) for name, picture in images]
    generator = attacked(engine, rng, big, "generator size (the same images rescaled to ~1 MP)")

    nulls = null_images(rng, [p for _, p in photos], args.nulls or (150 if args.quick else 1200))
    attacks = list(ATTACKS.values())
    false, passed, largest, limit = 0, 0, -np.inf, 0.0
    known_false, known_largest, known_limit = 0, -np.inf, 0.0
    for index, picture in enumerate(nulls):
        query = np.ascontiguousarray(attacks[index % len(attacks)](picture))
        found = engine.detect(query, (KEY,))
        false += found.detected
        passed += found.statistic >= found.threshold  # the sync test alone, before the payload code
        largest, limit = max(largest, found.statistic), found.threshold
        # the known-id test for three random ids, as if the picture before the attack had been signed
        ids = tuple(int(rng.integers(0, 1 << 48)) for _ in range(3))
        size = (picture.shape[1], picture.shape[0])
        known = engine.detect_known(query, (KEY,), Candidates(ids, (size,) * 3))
        known_false += known.detected
        known_largest, known_limit = max(known_largest, known.statistic), max(known_limit, known.threshold)
    print(
        f"\nfalse positives: {false} of {len(nulls)} never-marked images after the attacks "
        f"(largest sync statistic {largest:.2f}, threshold {limit:.2f}; {passed} passed the sync test "
        f"alone, and of those {false} decoded a payload)"
    )
    print(
        f"known-id test, three random ids each: {known_false} of {len(nulls)} false positives (largest "
        f"statistic {known_largest:.2f}; thresholds up to {known_limit:.2f})"
    )
    embed_ms, detect_ms, miss_ms, known_ms = timings(engine, 5 if args.quick else 15)
    print(
        f"1 MP, one core: embed {embed_ms:.0f} ms (target <= 40), detect {detect_ms:.0f} ms marked, "
        f"{miss_ms:.0f} ms unmarked (target <= 80); known-id test, three ids, unmarked: {known_ms:.0f} ms"
    )
    classes = [name for name, ok in (("native size", native), ("generator size", generator)) if ok]
    print(f"size classes meeting the recovery and PSNR targets: {', '.join(classes) or 'none'}")


if __name__ == "__main__":
    main()
