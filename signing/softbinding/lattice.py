"""Geometry recovery for a tiled watermark: whitening, the tile lattice, and folding modulo the tile.

A pattern repeated every TILE pixels puts peaks in the image's autocorrelation at the lattice vectors, rotated
and scaled with the image. The detector ranks candidate vectors by how well a whole square lattice of peaks
lines up, refines the best to a fraction of a pixel, and folds every pixel onto one canonical tile (a mean per
tile position), so the shift that remains is found by one small FFT. Rescaling must keep the aspect ratio.
The autocorrelation is looked at twice from one FFT: plain, and with the power spectrum flattened (divided
by its local mean), which lifts the tile's line spectrum out of a dense texture's broad one; on some images
one view shows the lattice, on others the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import fft, ndimage

from signing.softbinding.codes import TILE
from signing.softbinding.filters import box_mean, local_energy

Float = npt.NDArray[np.float32]

_MIN_SCALE, _MAX_SCALE = 0.45, 2.2
_MAX_ANGLE = math.radians(6.0)
_AUTOCORR_SIDE = 2048  # an upscaled image (tile 256 px) needs its whole area to show the lattice
# Lattice hypotheses per image (part of the false-positive bound): the unscaled, unrotated grid (re-encoding,
# cropping and brightness keep it, and it needs no estimate), then lattices estimated from the
# autocorrelation, with its power spectrum flattened (FLAT_ESTIMATES of them) and without (PLAIN_ESTIMATES):
# each view finds lattices the other misses. On a small image each estimate also stands for a
# REFINEMENTS-point grid of small scale and angle corrections around it (the detector picks among them by the
# sync statistic, see `spread_spectrum`). The estimates do not depend on the key, so the hypotheses a check
# can test form a set of at most CANDIDATES, fixed before the key is used.
FLAT_ESTIMATES = 4
PLAIN_ESTIMATES = 3
ESTIMATES = FLAT_ESTIMATES + PLAIN_ESTIMATES
REFINEMENTS = 9
CANDIDATES = 1 + ESTIMATES * REFINEMENTS
# A large image (more than SMALL_SIDE px on a side) has many tiles, so the autocorrelation alone places the
# lattice well: the LARGE_PLAIN best plain estimates and the best flattened one are tried, unrefined.
SMALL_SIDE = 720
LARGE_PLAIN = 3
LARGE_ESTIMATES = LARGE_PLAIN + 1
_FLATTEN = 9  # frequency bins (odd) over which the power spectrum is flattened


@dataclass(frozen=True)
class Lattice:
    """Tile basis in image pixels: `v1` is the tile's x axis, `v2` its y axis, each as (x, y)."""

    v1: tuple[float, float]
    v2: tuple[float, float]

    @property
    def scale(self) -> float:
        return math.hypot(*self.v1) / TILE

    def adjusted(self, factor: float, angle: float) -> Lattice:
        """The lattice scaled by `factor` and turned by `angle` radians."""
        c, s = factor * math.cos(angle), factor * math.sin(angle)
        (x1, y1), (x2, y2) = self.v1, self.v2
        return Lattice(v1=(c * x1 - s * y1, s * x1 + c * y1), v2=(c * x2 - s * y2, s * x2 + c * y2))

    def scaled(self, factor: float) -> Lattice:
        """The same lattice in an image resampled by `factor`."""
        return Lattice(
            v1=(self.v1[0] * factor, self.v1[1] * factor), v2=(self.v2[0] * factor, self.v2[1] * factor)
        )


def whiten(luma: Float) -> Float:
    """High-pass residual, normalised by its local energy: the image is noise, the mark is the signal."""
    residual = luma - box_mean(luma, 3)
    residual /= np.sqrt(local_energy(residual, 4) + np.float32(1.0))
    return np.clip(residual, -3.0, 3.0, out=residual)


def _autocorrelations(white: Float) -> tuple[Float, Float]:
    """The autocorrelation of the residual's central crop, plain and with its power spectrum flattened: the
    tile's repetition puts its power on isolated frequencies (the reciprocal lattice), a texture spreads it
    over broad bands, so dividing by the local mean power levels the bands and leaves the lattice's lines
    standing (on some images the plain one shows the lattice better, on others the flattened one)."""
    height, width = (min(side, _AUTOCORR_SIDE) for side in white.shape)
    top, left = (white.shape[0] - height) // 2, (white.shape[1] - width) // 2
    crop = white[top : top + height, left : left + width]
    crop = crop - crop.mean()
    spectrum = fft.rfft2(crop, workers=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    flat = power / (box_mean(power, _FLATTEN) + np.float32(1e-6 * float(power.mean())))
    flat[0, 0] = 0.0
    found = []
    for spectrum_power in (power, flat):
        auto = fft.irfft2(spectrum_power, s=crop.shape, workers=1).astype(np.float32)
        found.append(auto / max(float(auto[0, 0]), 1e-12))
    return found[0], found[1]


_POINTS = tuple((n, m) for n in range(3) for m in range(-2, 3) if n > 0 or m > 0)


def _lattice_scores(
    auto: Float, xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64], *, whole: bool = False
) -> Float:
    """For candidate x-axis vectors (xs, ys), arrays of one shape: the autocorrelation (sampled bilinearly)
    summed over the lattice points n * (x, y) + m * (-y, x) that fit, over the square root of their number.
    One texture period lines up with a few of them; the tile lattice with all. `whole`: xs and ys are whole
    numbers (the same result, faster)."""
    height, width = auto.shape
    half = min(height, width) // 2 - 2
    total = np.zeros(xs.shape, dtype=np.float64)
    count = np.zeros(xs.shape, dtype=np.float64)
    for n, m in _POINTS:
        lx, ly = n * xs - m * ys, n * ys + m * xs
        fits = (np.abs(lx) < half) & (np.abs(ly) < half)
        x0, y0 = np.floor(lx), np.floor(ly)
        col, row = x0.astype(np.int64) % width, y0.astype(np.int64) % height
        if whole:  # whole-pixel vectors land on pixels: no interpolation
            total += np.where(fits, auto[row, col], 0.0)
            count += fits
            continue
        fx, fy = lx - x0, ly - y0
        col1, row1 = (col + 1) % width, (row + 1) % height
        sample = (auto[row, col] * (1 - fx) + auto[row, col1] * fx) * (1 - fy)
        sample += (auto[row1, col] * (1 - fx) + auto[row1, col1] * fx) * fy
        total += np.where(fits, sample, 0.0)
        count += fits
    return (total / np.sqrt(np.maximum(count, 1.0))).astype(np.float32)


def _polish(auto: Float, x: float, y: float) -> tuple[float, float]:
    """The sub-pixel x-axis vector near (x, y) whose whole lattice lines up best: the far lattice points
    pin down scale and angle far better than the nearest peak alone. Bilinear sampling favours whole
    pixels, so the answer is the top of a quadratic fitted to the score around its best grid point."""
    steps = np.arange(-1.5, 1.5001, 0.125)
    xs, ys = np.meshgrid(x + steps, y + steps)
    score = _lattice_scores(auto, xs, ys).astype(np.float64)
    best = int(np.argmax(score))
    bx, by = float(xs.flat[best]), float(ys.flat[best])
    near = (np.abs(xs - bx) <= 0.75) & (np.abs(ys - by) <= 0.75)
    dx, dy = xs[near] - bx, ys[near] - by
    design = np.stack([np.ones_like(dx), dx, dy, dx * dx, dx * dy, dy * dy], axis=1)
    c = np.linalg.lstsq(design, score[near], rcond=None)[0]
    hessian = np.array([[2 * c[3], c[4]], [c[4], 2 * c[5]]])
    if np.all(np.linalg.eigvalsh(hessian) < 0):
        ox, oy = np.linalg.solve(hessian, -c[1:3])
        if abs(ox) <= 0.75 and abs(oy) <= 0.75:
            return bx + float(ox), by + float(oy)
    return bx, by


def _peaks(auto: Float) -> list[tuple[int, int, float]]:
    """Local maxima of the lattice score in the sector where the tile's x axis can lie, best first."""
    half = min(auto.shape) // 2 - 1
    longest = min(_MAX_SCALE * TILE, half)
    shortest = _MIN_SCALE * TILE
    if longest <= shortest:
        return []
    reach = math.ceil(longest * math.tan(_MAX_ANGLE))
    xs = np.arange(math.floor(shortest * math.cos(_MAX_ANGLE)), math.ceil(longest) + 1)
    ys = np.arange(-reach, reach + 1)
    grid_x, grid_y = np.meshgrid(xs.astype(np.float64), ys.astype(np.float64))
    score = _lattice_scores(auto, grid_x, grid_y, whole=True)
    radius = np.hypot(xs[None, :], ys[:, None])
    inside = (
        (radius >= shortest)
        & (radius <= longest)
        & (np.abs(ys[:, None]) <= xs[None, :] * math.tan(_MAX_ANGLE))
    )
    local_max = score == ndimage.maximum_filter(score, size=5, mode="nearest")
    iy, ix = np.nonzero(inside & local_max)
    values = score[iy, ix]
    order = np.argsort(values)[::-1]
    return [(int(xs[ix[i]]), int(ys[iy[i]]), float(values[i])) for i in order]


UNCHANGED = Lattice(v1=(float(TILE), 0.0), v2=(0.0, float(TILE)))


def lattices(white: Float, plain: int, flat: int) -> list[Lattice]:
    """The `plain` best tile lattices suggested by the plain autocorrelation, then the `flat` best of the
    flattened one, each most likely first."""
    found = []
    for raw, count in zip(_autocorrelations(white), (plain, flat), strict=True):
        # peaks a pixel wide would be missed at the outer lattice points when the true vector is fractional
        auto = box_mean(raw, 3)
        for x, y, _ in _peaks(auto)[:count]:
            x1, y1 = _polish(auto, x, y)
            # the y axis is the x axis turned by 90 degrees: rescaling keeps the aspect ratio
            found.append(Lattice(v1=(x1, y1), v2=(-y1, x1)))
    return found


def fold(white: Float, lattice: Lattice, density: float = 1.0) -> Float:
    """Average the residual onto one canonical TILE x TILE tile (rows = tile y, columns = tile x).
    `density`: the pixels' spacing in the original image when `white` is a subsample of it (the tile is
    then smoothed as for the original, not as for the sparser samples)."""
    if lattice == UNCHANGED and density == 1.0:
        sums, counts = _fold_unchanged(white)
    else:
        sums, counts = _fold_sums(white, lattice)
    sigma = max(0.7, 0.7 / (lattice.scale * density))
    sums = ndimage.gaussian_filter(sums, sigma, mode="wrap")
    counts = ndimage.gaussian_filter(counts, sigma, mode="wrap")
    return (sums / np.maximum(counts, 1e-9)).astype(np.float32)


def _fold_unchanged(white: Float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Sums and counts per tile position for the unscaled grid: whole tiles of the zero-padded image added
    up (the same numbers as the general path, several times faster)."""
    height, width = white.shape
    rows, cols = -(-height // TILE), -(-width // TILE)
    padded = np.zeros((rows * TILE, cols * TILE), dtype=np.float64)
    padded[:height, :width] = white
    sums = padded.reshape(rows, TILE, cols, TILE).sum(axis=(0, 2))
    per_row = np.bincount(np.arange(height) % TILE, minlength=TILE).astype(np.float64)
    per_col = np.bincount(np.arange(width) % TILE, minlength=TILE).astype(np.float64)
    return sums, np.outer(per_row, per_col)


def _fold_sums(white: Float, lattice: Lattice) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    (x1, y1), (x2, y2) = lattice.v1, lattice.v2
    det = x1 * y2 - x2 * y1
    a, b = TILE * y2 / det, -TILE * x2 / det  # tile x from image (x, y)
    c, d = -TILE * y1 / det, TILE * x1 / det  # tile y from image (x, y)
    height, width = white.shape
    # tile coordinates in 16.16 fixed point: one integer add per pixel, then shift and mask (TILE is a power
    # of two: "& (TILE - 1)" is the non-negative remainder, also for negative coordinates)
    one = 1 << 16
    reach = (abs(a) + abs(b) + abs(c) + abs(d)) * one * max(height, width)
    kind = np.int32 if reach < 2**30 else np.int64
    xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    u = np.add(
        np.rint(a * one * xs).astype(kind)[None, :], np.rint(b * one * ys + one // 2).astype(kind)[:, None]
    )
    u >>= 16
    u &= TILE - 1
    v = np.add(
        np.rint(c * one * xs).astype(kind)[None, :], np.rint(d * one * ys + one // 2).astype(kind)[:, None]
    )
    v >>= 16
    v &= TILE - 1
    v *= TILE
    v |= u
    index = v.ravel()
    sums = (
        np.bincount(index, weights=white.ravel(), minlength=TILE * TILE)
        .reshape(TILE, TILE)
        .astype(np.float64)
    )
    counts = np.bincount(index, minlength=TILE * TILE).reshape(TILE, TILE).astype(np.float64)
    return sums, counts
