"""The watermark port: what any invisible-watermark engine offers the rest of the core.

Another engine (a learned one such as TrustMark, if an operator supplies its model files) fits behind the
same `WatermarkEngine` protocol. Pixels are numpy uint8 arrays: (height, width) grey or (height, width, 3|4)
RGB(A).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

Pixels = npt.NDArray[np.uint8]
MAX_CANDIDATES = 3  # known ids one `detect_known` check tests (the recovery's fingerprint neighbours)


@dataclass(frozen=True)
class WatermarkKey:
    """A watermark secret from configuration (never from the repository), named by a stable identifier."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError("a watermark key needs at least 16 bytes of secret")

    @property
    def fingerprint(self) -> str:
        """A public, secret-free name for the key (first 16 hex digits of its SHA-256)."""
        return hashlib.sha256(b"hallmark/watermark-key/" + self.secret).hexdigest()[:16]


@dataclass(frozen=True)
class WatermarkDetection:
    """What a detector concluded about one image.

    `payload_id` and `key_id` are set only when the image carries a mark: the synchronisation statistic
    passed the threshold AND the payload's error correction decoded. `statistic` is the best standardised
    synchronisation correlation seen, `threshold` the value it had to reach, and `false_positive_bound` the
    Bonferroni bound on the probability that an unmarked image reaches `statistic` and then decodes a
    payload in this check.
    """

    payload_id: int | None
    key_id: str | None
    statistic: float
    threshold: float
    false_positive_bound: float
    mirrored: bool = False
    # What the bits read at the best synchronisation said, packed (payload.pack_word), when no mark was
    # reported: the repository can look for ids whose code word is near it (a read the BCH code could not
    # correct). None when nothing was read.
    word: bytes | None = None

    @property
    def detected(self) -> bool:
        return self.payload_id is not None


@dataclass(frozen=True)
class Candidates:
    """The marks to test for: watermark payload ids and the upright sizes (width, height) of the images they
    were embedded in (one per id). `population`: how many ids these were chosen from by a rule that looked
    at what the key reads in the picture (e.g. the nearest code words to a blind read); the false-positive
    design then counts every one of them. 0 when the choice did not involve the key (fingerprints)."""

    payload_ids: tuple[int, ...]
    signed_sizes: tuple[tuple[int, int], ...]
    population: int = 0

    def __post_init__(self) -> None:
        if len(self.payload_ids) != len(self.signed_sizes):
            raise ValueError("one signed size per payload id")
        if not 0 < len(self.payload_ids) <= MAX_CANDIDATES:
            raise ValueError(f"between 1 and {MAX_CANDIDATES} candidate ids")
        if self.population < 0:
            raise ValueError("a population is a count")

    @property
    def tried(self) -> int:
        """The ids the false-positive bound counts."""
        return max(len(self.payload_ids), self.population)


class WatermarkEngine(Protocol):
    """An invisible watermark carrying an integer payload id under a secret key."""

    #: reverse-domain algorithm name and version, recorded in the manifest
    algorithm: str
    #: how many payload bits `embed` carries
    payload_bits: int

    def embed(self, pixels: Pixels, payload_id: int, key: WatermarkKey) -> Pixels:
        """A marked copy of `pixels` (same shape and dtype); `UnmarkableImageError` if it cannot carry one."""
        ...

    def detect(self, pixels: Pixels, keys: tuple[WatermarkKey, ...]) -> WatermarkDetection:
        """Look for a mark from any of `keys` (current and retired ones)."""
        ...

    def detect_known(
        self, pixels: Pixels, keys: tuple[WatermarkKey, ...], candidates: Candidates
    ) -> WatermarkDetection:
        """Look for the mark of one of a few known payload ids (the repository's candidates for this
        picture): a test on the whole known pattern, more sensitive than `detect`, with its own
        false-positive design."""
        ...
