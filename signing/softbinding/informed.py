"""Informed detection: does this image carry one of a few known watermark ids?

Blind detection (`spread_spectrum`) must find the lattice from the image alone and then read 125 coded bits
well enough for the BCH code; on a small, rescaled or turned picture either step can fail while the mark is
still there. When the fingerprints have already named candidate assets, the question is narrower: is the
mark of *this* id present? Every bit of the id is then known, so the payload's whole share of the tile
pattern (three times the sync code's energy) is one matched filter; and the candidates' signed sizes give the
scale a resize left, so the lattice is searched on a fixed grid of scales and small turns instead of
estimated. The sync code is left out of the filter: every id of a key shares it, so with it a strongly marked
picture would lend part of its evidence to any other id of the same key.

Threshold, without assuming anything about the image. A pattern is a sum of copies of one chip shape, chip j
weighted by a_j = f_j * m_j: f_j is the key's random sign for that chip (a fair coin, drawn independently of
the image and of m), m_j a magnitude set by the Hadamard codes and the id's bits. The folded residual's
correlation with the pattern at shift s is then sum_j a_j G(s + CHIP j), G the residual's correlation with
one chip. Given the image, that is a sum of independent, symmetric, bounded terms, so by Hoeffding's
inequality z(s) = sum_j a_j G_j / sqrt(sum_j a_j^2 G_j^2) reaches t with probability at most exp(-t^2 / 2),
whatever the image holds. (Standardising by the spread of the correlation surface instead, as if normal,
fails on pictures with a period of their own: an upscaled photo's block grid lines up with the chips of every
code at once; tests/unit/test_informed_detection.py keeps such a picture.) The grid (`lattice_grid`) depends
on the query's and the candidates' sizes only, not on the key or the ids. A check looks at
n = keys x ids x lattices x TILE^2 values of z (ids: all those the candidates were chosen from, when the
choice looked at what the key reads; `Candidates.population`) and reports a mark only if one reaches
t = sqrt(2 ln(n / 1e-6)): by the union bound, at most 1e-6 per check (t is about 7.5 for one key, three ids
and a few dozen lattices). No payload decoding enters the bound: the known-id test is the whole test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import fft

from signing.softbinding import payload
from signing.softbinding.codes import CHIP, TILE, chip_bump, patterns, payload_chips
from signing.softbinding.lattice import UNCHANGED, Lattice, fold, whiten
from signing.softbinding.port import Candidates, WatermarkDetection, WatermarkKey

Float = npt.NDArray[np.float32]

FALSE_POSITIVE_TARGET = 1e-6
MAX_TURN = math.radians(3.0)  # the turns searched, each way (a straightened scan, a tilted phone)
_DRIFT = 1.0  # pixels: the most a half grid step may misplace the lattice at the region's corner
_MIN_SCALE, _MAX_SCALE = 0.45, 2.2  # as the blind detector's lattice estimates
_MAX_SCALES = 4  # the width and height ratios of the signed sizes, and unchanged, deduplicated
_REGION = 768  # pixels a side, per subsampling step: the central region folded (more tiles add little)


@dataclass(frozen=True)
class Hypothesis:
    """A lattice to test, looked for in the whitened image subsampled every `step` pixels (an upscaled mark
    has chips `step` times wider, so nothing of it is lost, and the fold costs what an unscaled one does)."""

    lattice: Lattice
    step: int


def lattice_grid(shape: tuple[int, ...], signed_sizes: tuple[tuple[int, int], ...]) -> list[Hypothesis]:
    """The lattices tested: each scale (a resize to a candidate's width or height, or unchanged) under turns
    up to MAX_TURN each way, spaced so that a lattice between two grid points is misplaced by at most _DRIFT
    chip-pixels at the folded region's corners. Fixed by the sizes alone (see the module doc)."""
    scales: list[float] = []
    for signed_width, signed_height in signed_sizes:
        for ratio in (shape[1] / signed_width, shape[0] / signed_height, 1.0):
            fits = _MIN_SCALE <= ratio <= _MAX_SCALE
            if fits and len(scales) < _MAX_SCALES and all(abs(ratio / s - 1.0) > 0.01 for s in scales):
                scales.append(ratio)
    grid = []
    for scale in scales or [1.0]:
        step = max(1, int(scale))
        height, width = (min(side, _REGION * step) for side in shape[:2])
        spacing = 2.0 * _DRIFT * scale / (math.hypot(height, width) / 2.0)
        turns = int(MAX_TURN / spacing)
        for k in sorted(range(-turns, turns + 1), key=abs):  # the likeliest first: a check stops at a hit
            grid.append(Hypothesis(UNCHANGED.adjusted(scale, k * spacing), step))
    return grid


def trials(grid: int, keys: int, ids: int) -> int:
    return grid * keys * ids * TILE * TILE


def threshold(count: int) -> float:
    """The statistic an unmarked image reaches with probability <= 1e-6 over `count` tries: Hoeffding's
    exp(-t^2 / 2) per try, times `count`."""
    return math.sqrt(2.0 * math.log(count / FALSE_POSITIVE_TARGET))


def detect_known(luma: Float, keys: tuple[WatermarkKey, ...], candidates: Candidates) -> WatermarkDetection:
    """Look for the mark of any candidate id under any key in an upright luminance image."""
    grid = lattice_grid(luma.shape, candidates.signed_sizes)
    count = trials(len(grid), max(1, len(keys)), candidates.tried)
    limit = threshold(count)
    best = 0.0
    if keys and min(luma.shape) >= TILE // 2:
        deepest = max(hypothesis.step for hypothesis in grid)
        white = whiten(_central(luma, _REGION * deepest))
        views = {step: _central(white, _REGION * step)[::step, ::step] for step in range(1, deepest + 1)}
        filters = [
            (key, payload_id, *_chip_filters(key, payload_id))
            for key in keys
            for payload_id in candidates.payload_ids
        ]
        bump = np.conj(fft.rfft2(chip_bump(), workers=1))
        for hypothesis in grid:
            step = hypothesis.step
            tile = fold(views[step], hypothesis.lattice.scaled(1.0 / step), density=step)
            # G: the folded residual's correlation with one chip, at every offset
            chip = fft.irfft2(fft.rfft2(tile - tile.mean(), workers=1) * bump, s=(TILE, TILE), workers=1)
            spectrum, energy = fft.rfft2(chip, workers=1), fft.rfft2(chip * chip, workers=1)
            # every candidate on this lattice, the best reported: ids whose code words are close share
            # part of a strong mark's evidence, the id the picture carries has all of it
            scores = [(_peak(spectrum, energy, a, p), key, i) for key, i, a, p in filters]
            z, key, payload_id = max(scores, key=lambda score: score[0])
            best = max(best, z)
            if z >= limit:
                return WatermarkDetection(payload_id, key.key_id, z, limit, _tail(z, count))
    return WatermarkDetection(None, None, best, limit, _tail(best, count))


def _central(pixels: Float, side: int) -> Float:
    height, width = pixels.shape
    top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
    return pixels[top : top + side, left : left + side]


def _chip_filters(
    key: WatermarkKey, payload_id: int
) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.complex128]]:
    """The conjugate spectra of the id's chip amplitudes a_j and of a_j^2, each placed on the chip grid of
    a TILE x TILE array."""
    amplitudes = payload_chips(patterns(key.secret), payload.encode(payload_id))
    grid = np.zeros((TILE, TILE))
    grid[::CHIP, ::CHIP] = amplitudes
    squares = np.zeros((TILE, TILE))
    squares[::CHIP, ::CHIP] = amplitudes * amplitudes
    return np.conj(fft.rfft2(grid, workers=1)), np.conj(fft.rfft2(squares, workers=1))


def _peak(
    spectrum: npt.NDArray[np.complex128],
    energy: npt.NDArray[np.complex128],
    amplitudes: npt.NDArray[np.complex128],
    powers: npt.NDArray[np.complex128],
) -> float:
    """max over shifts s of sum_j a_j G(s + CHIP j) / sqrt(sum_j a_j^2 G(s + CHIP j)^2)."""
    numerator = fft.irfft2(spectrum * amplitudes, s=(TILE, TILE), workers=1)
    variance = fft.irfft2(energy * powers, s=(TILE, TILE), workers=1)
    z = numerator / np.sqrt(np.maximum(variance, 1e-30))
    return float(z.max())


def _tail(z: float, count: int) -> float:
    return min(1.0, count * math.exp(-0.5 * z * z))
