"""Key-seeded, mutually orthogonal +-1 spreading codes and the tile patterns they make.

Each code is a row of the Sylvester-Hadamard matrix of order CHIPS (rows are mutually orthogonal), chosen,
permuted over the chip grid and sign-flipped chip by chip by a generator seeded from the key. The same
permutation and flips apply to every row, so orthogonality survives. Code 0 synchronises; codes 1..n carry
the coded payload bits. Each chip covers CHIP x CHIP pixels of a TILE x TILE tile; a circular blur
keeps the pattern's energy at the mid frequencies that survive JPEG and rescaling.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import fft, ndimage

from signing.softbinding.payload import CODED_BITS

TILE = 128
CHIP = 4
GRID = TILE // CHIP
CHIPS = GRID * GRID
_BLUR = 0.6
_VERSION = b"hallmark/watermark/ss-v1"

Float = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TilePatterns:
    """Unit-RMS, zero-mean patterns of one key: `sync` (TILE, TILE) and `bits` (CODED_BITS, TILE, TILE).

    `sync_spectrum` is the sync pattern's 2-D real FFT; `unmix` (1 + CODED_BITS, TILE * TILE) turns a
    flattened, aligned, whitened tile into per-code amplitudes by least squares. It is solved for the codes as
    the detector sees them, after the whitening high-pass (3 x 3 mean removed), which undoes the cross-talk
    the blur and the high-pass add (measured: the median bit SNR of unattacked marks rises by half).
    `chips` (1 + CODED_BITS, GRID, GRID) are the +-1 chip values before the blur: each is the key's random
    sign flip of its chip times a Hadamard entry (what informed detection's bound rests on).
    """

    sync: Float
    bits: Float
    sync_spectrum: npt.NDArray[np.complex64]
    unmix: Float
    chips: npt.NDArray[np.int8]


def _generator(secret: bytes) -> np.random.Generator:
    seed = hmac.new(secret, _VERSION, hashlib.sha256).digest()
    return np.random.default_rng(np.frombuffer(seed, dtype=np.uint32))


def _hadamard_rows(rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int8]:
    """Rows of the Sylvester-Hadamard matrix: entry (r, c) is (-1)^popcount(r & c)."""
    columns = np.arange(CHIPS, dtype=np.int64)
    parity: npt.NDArray[np.int64] = np.bitwise_count(rows[:, None] & columns[None, :]) & 1
    return (1 - 2 * parity).astype(np.int8)


@lru_cache(maxsize=16)
def patterns(secret: bytes) -> TilePatterns:
    """The tile patterns for a key; deterministic per key."""
    rng = _generator(secret)
    rows = rng.choice(np.arange(1, CHIPS, dtype=np.int64), size=1 + CODED_BITS, replace=False)
    order = rng.permutation(CHIPS)
    flips = rng.choice(np.array([-1, 1], dtype=np.int8), size=CHIPS)
    chips = (_hadamard_rows(rows)[:, order] * flips).reshape(-1, GRID, GRID)
    tiles = np.repeat(np.repeat(chips.astype(np.float32), CHIP, axis=1), CHIP, axis=2)
    tiles = ndimage.gaussian_filter(tiles, sigma=(0, _BLUR, _BLUR), mode="wrap")
    tiles -= tiles.mean(axis=(1, 2), keepdims=True)
    tiles /= np.sqrt((tiles**2).mean(axis=(1, 2), keepdims=True))
    seen = tiles.astype(np.float64)
    seen -= ndimage.uniform_filter(seen, size=(1, 3, 3), mode="wrap")  # what `lattice.whiten` subtracts
    basis = seen.reshape(len(seen), -1)
    unmix = np.linalg.solve(basis @ basis.T, basis).astype(np.float32)
    spectrum = fft.rfft2(tiles[0], workers=1).astype(np.complex64)
    return TilePatterns(sync=tiles[0], bits=tiles[1:], sync_spectrum=spectrum, unmix=unmix, chips=chips)


def tile_pattern(codes: TilePatterns, bits: npt.NDArray[np.uint8]) -> Float:
    """The tile a payload's coded `bits` (0/1) make: sync at a quarter of the energy, the bits sharing the
    rest; unit RMS."""
    signs = (2.0 * bits.astype(np.float32) - 1.0) / math.sqrt(len(bits))
    tile: Float = np.float32(0.5) * codes.sync
    tile += np.float32(math.sqrt(0.75)) * np.tensordot(signs, codes.bits, axes=1)
    tile /= np.float32(math.sqrt(float(np.mean(tile * tile))))
    return tile


def payload_chips(codes: TilePatterns, bits: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """The payload's share of `tile_pattern` (the sync code left out: every id of a key shares it) at chip
    level (GRID, GRID), before the blur. Each chip's value is its key-chosen random sign times a magnitude
    that does not depend on that sign."""
    signs = 2.0 * bits.astype(np.float64) - 1.0
    return np.tensordot(signs, codes.chips[1:].astype(np.float64), axes=1)


@lru_cache(maxsize=1)
def chip_bump() -> npt.NDArray[np.float64]:
    """One chip at the tile's origin as the detector sees it: blurred as embedded, then whitening's
    high-pass (the 3 x 3 mean removed). Every pattern is a sum of shifted copies of it."""
    bump = np.zeros((TILE, TILE))
    bump[:CHIP, :CHIP] = 1.0
    bump = ndimage.gaussian_filter(bump, sigma=_BLUR, mode="wrap")
    bump -= ndimage.uniform_filter(bump, size=3, mode="wrap")
    return bump
