"""What the isolated decode workers (app/isolation) cost: verify of a 1-megapixel JPEG through the pool vs in
this process, side by side in one run (`python -m bench.isolation_overhead`). Target: <= 1.3x.

Both paths are the service's own function (`app.isolation.service.verify_file`, what POST /v1/verify calls,
without HTTP, which would add the same constant to both): in-process it pre-scans, inspects and searches
recovery here; through the pool it pre-scans, copies the upload to a private temporary file, sends the job
to a warm worker and waits for its report. Measured in alternating blocks of 10 runs, N times each, for a
signed file (no recovery) and the same picture stripped of its manifest (watermark detection and
fingerprints in the worker, repository lookup and re-verification here). Process and workers share one
core. Also printed: the round trip of an empty job, and sign (which still signs in-process) alone and
with the structure pre-scan and the worker pre-flight that POST /v1/sign now runs before it.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from app.bootstrap import init_dev_keys
from app.isolation import build_pool
from app.isolation.jobs import PingJob
from app.isolation.service import preflight_sign, structure_limits, verify_file, worker_config
from app.runtime import build_runtime
from app.settings import Settings
from bench.sign_overhead import make_jpeg
from signing import check_structure, sign_asset, validate_generation

TARGET = 1.3
WARMUP = 10
BLOCK = 10


def p50(fn: Callable[[], object], samples: list[float]) -> None:
    start = time.perf_counter()
    fn()
    samples.append((time.perf_counter() - start) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="runs per path")
    args = parser.parse_args()
    # One core for this process and (inherited through the fork server) its workers: the machine's other
    # load moves both paths alike, and a worker gains nothing from running beside its parent.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), isolation_workers=2)
        init_dev_keys(settings)
        rt = build_runtime(settings)
        pool = build_pool(settings)
        assert pool is not None
        ctx = rt.sign_ctx
        assert ctx is not None
        info = validate_generation(
            model_name="bench", model_version="1", provider="Bench", digital_source_type=None
        )
        source = make_jpeg()

        def sign(guarded: bool) -> bytes:
            """In-process sign; `guarded`: with what POST /v1/sign runs before it (pre-scan, pre-flight)."""
            stream, dest = io.BytesIO(source), io.BytesIO()
            if guarded:
                check_structure(stream, structure_limits(settings))
                preflight_sign(rt, pool, stream, None)
            sign_asset(ctx, stream, dest, info)
            return dest.getvalue()

        signed = sign(False)
        stripped = io.BytesIO()
        Image.open(io.BytesIO(signed)).save(stripped, "JPEG", quality=90)
        files = {"signed (no recovery)": signed, "stripped (recovery)": stripped.getvalue()}
        try:
            print(f"1 MP JPEG, {args.n} runs per path, p50 (ms); {settings.isolation_workers} warm workers")
            print(f"{'work':28} {'in-process':>11} {'pool':>9} {'ratio':>7}")
            ratios = []
            for name, data in files.items():
                local_ms: list[float] = []
                pool_ms: list[float] = []
                local = verify_file(rt, None, io.BytesIO(data), None, detailed=False)
                pooled = verify_file(rt, pool, io.BytesIO(data), None, detailed=False)
                assert local == pooled, f"{name}: the reports differ"
                # Blocks of BLOCK runs per path, alternated: each path runs with its own caches warm, and a
                # change in the machine's load reaches both paths alike.
                for block in range((WARMUP + args.n) // BLOCK):
                    keep = block * BLOCK >= WARMUP
                    for path_pool, samples in ((None, local_ms), (pool, pool_ms)):
                        for _ in range(BLOCK):
                            p50(
                                lambda d=data, p=path_pool: verify_file(
                                    rt, p, io.BytesIO(d), None, detailed=False
                                ),
                                samples if keep else [],
                            )
                lo, po = statistics.median(local_ms), statistics.median(pool_ms)
                ratios.append(po / lo)
                print(f"verify, {name:20} {lo:11.2f} {po:9.2f} {po / lo:6.2f}x  (+{po - lo:.2f} ms)")
            pings: list[float] = []
            config = worker_config(rt)
            for i in range(WARMUP + args.n):
                p50(lambda: pool.run(PingJob(), config), pings if i >= WARMUP else [])
            print(f"{'empty job round trip':28} {'':11} {statistics.median(pings):9.2f}")
            plain: list[float] = []
            scanned: list[float] = []
            for i in range(WARMUP + args.n):
                p50(lambda: sign(False), plain if i >= WARMUP else [])
                p50(lambda: sign(True), scanned if i >= WARMUP else [])
            sp, ss = statistics.median(plain), statistics.median(scanned)
            print(
                f"{'sign, +pre-scan +pre-flight':28} {sp:11.2f} {ss:9.2f} {ss / sp:6.2f}x (+{ss - sp:.2f} ms)"
            )
            worst = max(ratios)
            print("load average while measured: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
            print(
                f"worst verify ratio {worst:.2f}x, target <= {TARGET}x: "
                + ("met" if worst <= TARGET else "NOT met")
            )
        finally:
            pool.close()
            rt.signer_watch.close()
            rt.db.dispose()


if __name__ == "__main__":
    main()
