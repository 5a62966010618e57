"""In-memory Hamming-radius index over binary fingerprints (faiss `IndexBinaryFlat`).

Chosen by measurement (bench/repository_lookup.py, 1,000,000 codes, one core): an exact flat scan with
SIMD popcount answers a radius query in about 0.6 ms for 64-bit ISCC and 2 ms for 256-bit PDQ, with recall
1 by construction; numpy brute force takes 1.6 ms / 32 ms; faiss's multi-index hashing is faster only
with table settings that miss matches near the threshold. Memory: 8 + 32 bytes per row plus its id.
"""

from __future__ import annotations

from array import array

import faiss
import numpy as np


class BinaryRadiusIndex:
    """Codes of one fixed length, each with an integer id; not thread-safe (the repository locks)."""

    def __init__(self, bits: int, radius: int):
        self.bits = bits
        self.radius = radius
        self._index = faiss.IndexBinaryFlat(bits)
        self._ids = array("q")

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, codes: list[bytes], ids: list[int]) -> None:
        if not codes:
            return
        matrix = np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(len(codes), self.bits // 8)
        self._index.add(matrix)
        self._ids.extend(ids)

    def within(self, code: bytes, radius: int | None = None) -> list[tuple[int, int]]:
        """(id, distance) of every code at Hamming distance <= `radius` (the index's own by default), nearest
        first."""
        if not self._ids:
            return []
        query = np.frombuffer(code, dtype=np.uint8).reshape(1, self.bits // 8)
        # faiss returns distances strictly below the radius it is given.
        reach = self.radius if radius is None else radius
        lims, distances, positions = self._index.range_search(query, reach + 1)
        start, end = int(lims[0]), int(lims[1])
        found = sorted(zip(distances[start:end].tolist(), positions[start:end].tolist(), strict=True))
        return [(self._ids[position], distance) for distance, position in found]
