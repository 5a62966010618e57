"""What a sign's intent costs the database: `python -m bench.intent_cost [--n N]`.

The sign's database work without intents was one transaction (the ledger row); with them it is the intent's
own short transaction before signing (one INSERT into sign_intents) plus one indexed UPDATE inside the ledger
row's transaction. Measured here, alternating call by call in one run: (a) the ledger row alone, as the
ledger wrote it before intents (one INSERT in its transaction), (b) the intent's INSERT, (c) the ledger row
whose transaction completes an intent (SqlLedger.record as it is now). The extra cost
per sign is b + (c - a). SQLite (a temporary file, WAL, as the service opens it); PostgreSQL too when
HALLMARK_DATABASE_URL names one (a scratch database: rows are added to it). Compare with the p50 of a sign
(bench/sign_overhead.py)."""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from app.store.db import make_engine, migrate
from app.store.intents import SqlSignIntents
from app.store.ledger import SqlLedger
from app.store.tables import signatures
from signing import LedgerEntry, new_manifest_id

WARMUP = 20


def entry(manifest_id: str) -> LedgerEntry:
    return LedgerEntry(
        id=str(uuid.uuid4()), created_at=datetime.now(UTC), api_key_id="a" * 16, provider="bench",
        model_name="bench", model_version="1", digital_source_type="trainedAlgorithmicMedia",
        media_type="image/jpeg", output_mode="embedded", input_sha256="i" * 64, output_sha256="o" * 64,
        manifest_id=manifest_id, parent_manifest_id=None, key_id="bench", certificate_sha256="c" * 64,
    )  # fmt: skip


def measure(db: sa.Engine, n: int) -> dict[str, list[float]]:
    ledger, intents = SqlLedger(db), SqlSignIntents(db)
    times: dict[str, list[float]] = {"row alone": [], "intent insert": [], "row + completion": []}

    def timed(name: str, call: Callable[[], object]) -> None:
        t0 = time.perf_counter()
        call()
        times[name].append((time.perf_counter() - t0) * 1000)

    def intent(manifest_id: str) -> str:
        return intents.open(
            manifest_id=manifest_id, key_id="bench", certificate_sha256="c" * 64, input_sha256="i" * 64,
            api_key_id="a" * 16, request_id="r" * 32, deadline_seconds=60.0,
        )  # fmt: skip

    def row_alone(value: LedgerEntry) -> None:
        with db.begin() as conn:
            conn.execute(signatures.insert(), asdict(value))

    for _ in range(WARMUP + n):
        timed("row alone", functools.partial(row_alone, entry(new_manifest_id())))
        manifest_id = new_manifest_id()
        timed("intent insert", functools.partial(intent, manifest_id))
        timed("row + completion", functools.partial(ledger.record, entry(manifest_id)))
    return {name: samples[WARMUP:] for name, samples in times.items()}


def report(label: str, db: sa.Engine, n: int) -> None:
    migrate(db)
    times = measure(db, n)
    p50 = {name: statistics.median(samples) for name, samples in times.items()}
    print(f"{label}: p50 ms over {n} calls each")
    for name, value in p50.items():
        print(f"  {name:<18} {value:7.3f}")
    extra = p50["intent insert"] + p50["row + completion"] - p50["row alone"]
    print(f"  extra per sign     {extra:7.3f}  (intent insert + the completion's UPDATE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="measured calls per side, after the warm-up")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hallmark-intent-bench-") as tmp:
        db = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            report("SQLite (WAL, synchronous=NORMAL)", db, args.n)
        finally:
            db.dispose()
    url = os.environ.get("HALLMARK_DATABASE_URL")  # noqa: TID251 - a bench, not the service
    if url and not url.startswith("sqlite"):
        db = make_engine(url)
        try:
            report("PostgreSQL", db, args.n)
        finally:
            db.dispose()
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
