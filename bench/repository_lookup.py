"""Fingerprint (and watermark code word) lookup at 1,000,000 repository rows: per-query latency and recall
against brute force.

Run: `.venv/bin/python -m bench.repository_lookup` (add `--compare` for the alternatives that were measured
against the chosen index). One core (faiss's threads pinned to 1). Synthetic rows: uniform random codes;
queries: rows with a random number of bits flipped, up to the match threshold (worst case included), plus
as many random codes that match nothing. Target: <= 5 ms per query.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import faiss
import numpy as np

from app.store.fingerprint_index import BinaryRadiusIndex
from signing import (
    ISCC_BITS,
    ISCC_MAX_DISTANCE,
    PDQ_BITS,
    PDQ_CANDIDATE_DISTANCE,
    PDQ_MAX_DISTANCE,
    WATERMARK_WORD_BYTES,
    WATERMARK_WORD_RADIUS,
)

Search = Callable[[bytes], set[int]]


def queries(db: np.ndarray, radius: int, n: int, rng: np.random.Generator) -> list[bytes]:
    bits = db.shape[1] * 8
    near = db[rng.integers(0, len(db), n)].copy()
    for row in near:
        for bit in rng.choice(bits, int(rng.integers(0, radius + 1)), replace=False):
            row[bit // 8] ^= np.uint8(1 << (bit % 8))
    far = rng.integers(0, 256, (n, db.shape[1]), dtype=np.uint8)
    return [q.tobytes() for q in (*near, *far)]


def brute_force(db: np.ndarray, radius: int) -> Search:
    words = db.view(np.uint64)

    def search(code: bytes) -> set[int]:
        distance = np.bitwise_count(words ^ np.frombuffer(code, dtype=np.uint64)).sum(axis=1)
        return set(np.flatnonzero(distance <= radius).tolist())

    return search


def chosen(db: np.ndarray, radius: int) -> Search:
    index = BinaryRadiusIndex(db.shape[1] * 8, radius)
    index.add([row.tobytes() for row in db], list(range(len(db))))
    return lambda code: {i for i, _ in index.within(code)}


def multihash(db: np.ndarray, radius: int, nhash: int, bits: int, nflip: int) -> Search:
    index = faiss.IndexBinaryMultiHash(db.shape[1] * 8, nhash, bits)
    index.nflip = nflip
    index.add(db)

    def search(code: bytes) -> set[int]:
        lims, _, ids = index.range_search(np.frombuffer(code, dtype=np.uint8).reshape(1, -1), radius + 1)
        return set(ids[lims[0] : lims[1]].tolist())

    return search


def measure(name: str, search: Search, qs: list[bytes], truth: list[set[int]]) -> None:
    times, hits, expected = [], 0, 0
    for code, want in zip(qs, truth, strict=True):
        start = time.perf_counter()
        got = search(code)
        times.append(time.perf_counter() - start)
        hits += len(got & want)
        expected += len(want)
    p50, p99 = (np.percentile(times, p) * 1e3 for p in (50, 99))
    recall = hits / expected if expected else 1.0
    print(f"  {name:38} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  recall {recall:.4f} ({hits}/{expected})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200, help="near-duplicate queries (as many random)")
    parser.add_argument("--compare", action="store_true", help="also measure the alternatives")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(7)
    print(f"{args.rows:,} rows, {args.queries} near + {args.queries} random queries, one core")
    for label, bits, radius in (
        ("ISCC-64", ISCC_BITS, ISCC_MAX_DISTANCE),
        ("PDQ-256", PDQ_BITS, PDQ_MAX_DISTANCE),
        ("PDQ-256, the known-id test's candidates", PDQ_BITS, PDQ_CANDIDATE_DISTANCE),
        (
            "watermark code word (125 of 128 bits), near a blind read",
            8 * WATERMARK_WORD_BYTES,
            WATERMARK_WORD_RADIUS,
        ),
    ):
        db = rng.integers(0, 256, (args.rows, bits // 8), dtype=np.uint8)
        qs = queries(db, radius, args.queries, rng)
        exact = brute_force(db, radius)
        truth = [exact(q) for q in qs]
        print(f"{label}, match at Hamming distance <= {radius}:")
        start = time.perf_counter()
        index = chosen(db, radius)
        print(f"  (index built in {time.perf_counter() - start:.1f} s)")
        measure("faiss IndexBinaryFlat (chosen)", index, qs, truth)
        if args.compare:
            measure("numpy brute force", exact, qs, truth)
            for nhash, sub, nflip in ((bits // 16, 16, 1), (8, 16, 1), (8, 24, 2)):
                if nhash * sub <= bits:
                    name = f"faiss MultiHash {nhash}x{sub} bits, flip {nflip}"
                    measure(name, multihash(db, radius, nhash, sub, nflip), qs, truth)


if __name__ == "__main__":
    main()
