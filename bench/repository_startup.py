"""How long a worker takes to load the manifest repository's fingerprint index at start
(`python -m bench.repository_startup [--rows 1000000]`).

Writes N synthetic rows (random ISCC image codes and PDQ hashes, a one-byte manifest store) into a fresh
SQLite file, then times `SqlManifestRepository(db)`, which reads every row's fingerprints into the in-memory
index, and prints the process's peak memory.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import UTC, datetime

import numpy as np

from app.store.db import make_engine, migrate
from app.store.manifests import SqlManifestRepository
from app.store.tables import manifests
from signing import iscc_code

BATCH = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        db = make_engine(f"sqlite:///{folder}/bench.db")
        migrate(db)
        start = time.perf_counter()
        with db.begin() as conn:
            for first in range(0, args.rows, BATCH):
                count = min(BATCH, args.rows - first)
                bodies, pdqs = rng.bytes(8 * count), rng.bytes(32 * count)
                conn.execute(
                    manifests.insert(),
                    [
                        {
                            "manifest_id": f"urn:c2pa:{first + i}",
                            "manifest_store": b"x",
                            "media_type": "image/jpeg",
                            "watermark_id": f"{first + i:012x}",
                            "iscc": iscc_code(bodies[8 * i : 8 * i + 8]),
                            "pdq": pdqs[32 * i : 32 * i + 32],
                            "pdq_quality": 90,
                            "key_id": "bench",
                            "created_at": now,
                            "integrity": "0" * 64,
                        }
                        for i in range(count)
                    ],
                )
        written = time.perf_counter() - start
        start = time.perf_counter()
        SqlManifestRepository(db)
        loaded = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{args.rows} rows written in {written:.1f} s; index loaded at start in {loaded:.2f} s")
        print(f"peak memory of this process (rows written + index): {peak:.0f} MB")


if __name__ == "__main__":
    main()
