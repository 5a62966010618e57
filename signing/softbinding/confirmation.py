"""A crop-tolerant confirmation print: does a query image show the picture that was signed?

ISCC and PDQ hash the whole frame, so a 10 % crop moves them as far as an unrelated photo. A watermark hit is
confirmed instead by matching a small grey thumbnail of the signed pixels against the query: both are
band-passed (so flat gradients and exposure do not count, edges and texture do) and compared by normalised
cross-correlation over every translation, under the few scales a crop or a resize implies, and mirrored.
Pure: pixels in memory, no I/O; the threshold is chosen by `bench/confirmation.py`.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import fft, ndimage

from signing.softbinding.orientation import to_upright

Float = npt.NDArray[np.float32]
Wide = npt.NDArray[np.float64]

PRINT_SIDE: Final = 128  # longer side of the stored thumbnail: 128 x 96 grey bytes for a 4:3 picture
CONFIRM_THRESHOLD: Final = 0.85  # bench/confirmation.py: same picture >= 0.89, different <= 0.80
_MAGIC: Final = b"HMCP"
_VERSION: Final = 1
_HEADER: Final = struct.Struct(">4sBIIHH")  # magic, version, original width, height, thumbnail width, height
_MAX_SIDE: Final = 1 << 20
_BAND: Final = (1.0, 3.0)  # Gaussian sigmas of the band-pass, thumbnail pixels
_MARGIN: Final = 3  # thumbnail pixels trimmed from the template's edges, where the band-pass sees padding
_MIN_TEMPLATE: Final = 20  # a template side below this (thumbnail pixels) proves nothing
_MIN_AREA: Final = 0.25  # and so does a template covering less than this share of the stored print
_ROTATIONS: Final = (1.5, -1.5)  # degrees; with the upright view, a turn up to about 3 degrees is met
_FLOOR: Final = 0.25  # least window energy, as a share of the template's, in the correlation's denominator


@dataclass(frozen=True)
class ConfirmationPrint:
    """A grey thumbnail (longer side `PRINT_SIDE`, never upscaled) of the upright signed pixels and the
    size of the signed image."""

    width: int
    height: int
    thumbnail: bytes  # row-major uint8, thumb_width * thumb_height bytes
    thumb_width: int
    thumb_height: int

    def __post_init__(self) -> None:
        if not (0 < self.width <= _MAX_SIDE and 0 < self.height <= _MAX_SIDE):
            raise ValueError("image size out of range")
        if (self.thumb_width, self.thumb_height) != _thumb_size(self.width, self.height):
            raise ValueError("thumbnail size does not follow from the image size")
        if len(self.thumbnail) != self.thumb_width * self.thumb_height:
            raise ValueError("thumbnail length does not match its size")

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(_MAGIC, _VERSION, self.width, self.height, self.thumb_width, self.thumb_height)
        return header + self.thumbnail

    @classmethod
    def from_bytes(cls, raw: bytes) -> ConfirmationPrint:
        """Strict: anything but the exact encoding of a print raises ValueError."""
        if len(raw) < _HEADER.size:
            raise ValueError("confirmation print too short")
        magic, version, width, height, thumb_width, thumb_height = _HEADER.unpack_from(raw)
        if magic != _MAGIC or version != _VERSION:
            raise ValueError("not a version 1 confirmation print")
        return cls(width, height, bytes(raw[_HEADER.size :]), thumb_width, thumb_height)

    @property
    def sha256(self) -> str:
        """Hex digest of `to_bytes()`, declared in the signed manifest: a stored print cannot be swapped."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def pixels(self) -> Float:
        grey = np.frombuffer(self.thumbnail, np.uint8).reshape(self.thumb_height, self.thumb_width)
        return grey.astype(np.float32) / np.float32(255)


@dataclass(frozen=True)
class Confirmation:
    score: float  # best normalised cross-correlation, -1..1; unrelated pictures stay far below the threshold
    confirmed: bool
    scale: float  # query pixels per signed pixel under the best hypothesis (0 when none could be tried)
    mirrored: bool


def confirmation_print(image: Image.Image) -> ConfirmationPrint:
    grey = _grey(to_upright(image))
    size = _thumb_size(*grey.size)
    thumbnail = grey.resize(size, Image.Resampling.BOX) if size != grey.size else grey
    return ConfirmationPrint(grey.width, grey.height, thumbnail.tobytes(), *size)


def confirm(
    stored: ConfirmationPrint, query: Image.Image, *, scale_hint: float | None = None
) -> Confirmation:
    """Score `query` against the print under each scale hypothesis (unchanged, resized to the signed width or
    height, the caller's hint), turned a little either way, plain and mirrored; confirmed when the best
    score reaches the threshold."""
    grey = _grey(to_upright(query))
    best = Confirmation(score=-1.0, confirmed=False, scale=0.0, mirrored=False)
    if min(grey.size) < _MIN_TEMPLATE:  # too few pixels to show anything (an empty image included)
        return best
    ratio = stored.thumb_width / stored.width  # thumbnail pixels per signed pixel
    sizes = {}
    for scale in _hypotheses(stored, grey.size, scale_hint):
        size = (round(grey.width * ratio / scale), round(grey.height * ratio / scale))
        # Blowing a small query up more than twice invents the detail the comparison would rely on.
        if min(size) >= _MIN_TEMPLATE and max(size) <= 4 * PRINT_SIDE and size[0] <= 2 * grey.width:
            sizes[scale] = size
    if not sizes:
        return best
    reference = _band(stored.pixels())
    # One integer reduction of a large query first: resizing a megapixel per hypothesis would cost more.
    factor = min(grey.width // (2 * size[0]) for size in sizes.values())
    source = grey.reduce(factor) if factor >= 2 else grey
    for scale, size in sizes.items():
        small = source.resize(size, Image.Resampling.BOX)
        fill = int(np.median(np.asarray(small)))
        plain = _band(np.asarray(small, np.float32) / np.float32(255))
        views = [(False, plain), (True, plain[:, ::-1])]  # a mirrored copy is tried upright only
        for angle in _ROTATIONS:
            turned = small.rotate(angle, Image.Resampling.BILINEAR, fillcolor=fill)
            views.append((False, _band(np.asarray(turned, np.float32) / np.float32(255))))
        scores = _view_scores(reference, [pixels for _, pixels in views])
        top = int(np.argmax(scores))
        if scores[top] > best.score:
            best = Confirmation(scores[top], scores[top] >= CONFIRM_THRESHOLD, scale, views[top][0])
    return best


def _thumb_size(width: int, height: int) -> tuple[int, int]:
    longer = max(width, height)
    if longer <= PRINT_SIDE:
        return width, height
    return max(1, round(width * PRINT_SIDE / longer)), max(1, round(height * PRINT_SIDE / longer))


def _grey(image: Image.Image) -> Image.Image:
    """Luma, with transparent pixels counted as white; any Pillow mode."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, np.float64)
        span = float(values.max() - values.min()) if values.size else 0.0
        scaled = (values - values.min()) * (255.0 / span) if span > 0 else np.zeros_like(values)
        return Image.fromarray(scaled.astype(np.uint8))
    return image.convert("L")


def _hypotheses(stored: ConfirmationPrint, size: tuple[int, int], hint: float | None) -> list[float]:
    """Query pixels per signed pixel: 1 (a crop), the width and height ratios (a resize), the hint."""
    candidates = [1.0, size[0] / stored.width, size[1] / stored.height]
    if hint is not None and np.isfinite(hint) and hint > 0:
        candidates.append(float(hint))
    kept: list[float] = []
    for scale in candidates:
        if all(abs(scale / other - 1.0) > 0.02 for other in kept):
            kept.append(scale)
    return kept


def _band(pixels: Float) -> Float:
    """Difference of Gaussians: drops the pixel noise and JPEG blocking, and the lighting."""
    fine = ndimage.gaussian_filter(pixels, _BAND[0], mode="reflect", truncate=3.0)
    coarse = ndimage.gaussian_filter(pixels, _BAND[1], mode="reflect", truncate=3.0)
    band: Float = fine - coarse
    return band


def _view_scores(reference: Float, views: list[Float]) -> list[float]:
    """Per view (all of one shape), the largest normalised cross-correlation between the smaller of view and
    reference (edges trimmed) and every window of the other it fits in."""
    shape = views[0].shape
    trimmed = [view[_MARGIN:-_MARGIN, _MARGIN:-_MARGIN] for view in views] if min(shape) > 2 * _MARGIN else []
    if trimmed and all(t <= r for t, r in zip(trimmed[0].shape, reference.shape, strict=True)):
        return _max_ncc([reference], trimmed)
    inner = reference[_MARGIN:-_MARGIN, _MARGIN:-_MARGIN]
    if min(inner.shape) > 0 and all(r <= v for r, v in zip(inner.shape, shape, strict=True)):
        return _max_ncc(views, [inner])
    # Wider but shorter, or the reverse: the middle of the view, in the reference.
    height, width = min(shape[0], reference.shape[0]), min(shape[1], reference.shape[1])
    top, left = (shape[0] - height) // 2, (shape[1] - width) // 2
    return _max_ncc([reference], [view[top : top + height, left : left + width] for view in views])


def _max_ncc(fields: list[Float], templates: list[Float]) -> list[float]:
    """Best correlation of each (field, template) pair; one of the lists has a single entry, used for all."""
    rows, cols = templates[0].shape
    height, width = fields[0].shape
    if min(rows, cols) < _MIN_TEMPLATE or rows * cols < _MIN_AREA * min(height * width, PRINT_SIDE**2):
        return [-1.0] * max(len(fields), len(templates))
    # Only windows wholly inside the field count, so a circular correlation at the field's size is exact.
    shape = (fft.next_fast_len(height, True), fft.next_fast_len(width, True))
    field_parts = []
    for field in fields:
        precise = field.astype(np.float64)
        sums, squares = _window_sums(precise, rows, cols), _window_sums(precise * precise, rows, cols)
        spectrum = fft.rfft2(field.astype(np.float32), shape, workers=1)
        field_parts.append((spectrum, squares - sums * sums / (rows * cols)))
    template_parts = []
    for template in templates:
        centred = template - template.mean()
        norm = float(np.sqrt((centred * centred).sum()))
        template_parts.append((np.conj(fft.rfft2(centred.astype(np.float32), shape, workers=1)), norm))
    scores = []
    for index in range(max(len(fields), len(templates))):
        field_spectrum, energy = field_parts[min(index, len(fields) - 1)]
        template_spectrum, norm = template_parts[min(index, len(templates) - 1)]
        if norm == 0.0:
            scores.append(-1.0)
            continue
        products = fft.irfft2(field_spectrum * template_spectrum, shape, workers=1)
        products = products[: height - rows + 1, : width - cols + 1]
        # A window far flatter than the template cannot match it: floor its energy, or noise in a flat patch
        # would score as a perfect match.
        ncc = products / (norm * np.sqrt(np.maximum(energy, _FLOOR * norm * norm)))
        scores.append(float(np.clip(ncc, -1.0, 1.0).max()))
    return scores


def _window_sums(values: Wide, rows: int, cols: int) -> Wide:
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    table[1:, 1:] = values.cumsum(0).cumsum(1)
    sums: Wide = table[rows:, cols:] - table[:-rows, cols:] - table[rows:, :-cols] + table[:-rows, :-cols]
    return sums
