"""What durable credentials cost at 1 MP, one core (`python -m bench.durable_speed [--n 30]`).

Prints, side by side in one run, CPU milliseconds (process time, so other jobs on the machine do not count):
- sign without soft binding vs sign with the watermark + ISCC/PDQ fingerprints (target: <= 60 ms more);
- verify of a stripped 1 MP JPEG (no manifest) with recovery through the repository (target: <= 150 ms p50),
  and its parts: the engine's verify, watermark detection, fingerprints, repository lookup + re-verify.
The repository holds only this run's rows; bench/repository_lookup.py measures lookups at 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image
from skimage import data

from app.bootstrap import init_dev_keys
from app.recovery import with_recovery
from app.runtime import build_runtime, watermark_engine
from app.settings import Settings
from signing import image_fingerprints, inspect_asset, sign_asset, validate_generation

T = TypeVar("T")


def one_mp_jpeg() -> bytes:
    photo = Image.fromarray(data.astronaut()).resize((1024, 1024), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90)
    return out.getvalue()


def cpu_ms(call: Callable[[], T]) -> tuple[float, T]:
    start = time.process_time()
    result = call()
    return 1000 * (time.process_time() - start), result


def p50(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="runs per measurement")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        init_dev_keys(settings)
        rt = build_runtime(settings)
        soft = rt.sign_ctx
        assert soft is not None
        assert soft.soft_binder is not None
        plain = dataclasses.replace(soft, soft_binder=None)
        info = validate_generation(
            model_name="bench", model_version="1", provider="Bench", digital_source_type=None
        )
        source = one_mp_jpeg()

        def sign(ctx: object) -> bytes:
            dest = io.BytesIO()
            sign_asset(ctx, io.BytesIO(source), dest, info)  # type: ignore[arg-type]
            return dest.getvalue()

        for _ in range(3):  # warm up both paths
            sign(plain), sign(soft)
        plain_ms, soft_ms = [], []
        signed = b""
        for _ in range(args.n):
            plain_ms.append(cpu_ms(lambda: sign(plain))[0])
            ms, signed = cpu_ms(lambda: sign(soft))
            soft_ms.append(ms)
        extra = statistics.median(soft_ms) - statistics.median(plain_ms)
        print(f"sign 1 MP JPEG, one core, {args.n} runs each (CPU time, p50)")
        print(f"  without soft binding            {p50(plain_ms)}")
        print(f"  watermark + fingerprints        {p50(soft_ms)}   (+{extra:.1f} ms; target <= 60)")

        stripped_image = Image.open(io.BytesIO(signed)).convert("RGB")
        out = io.BytesIO()
        stripped_image.save(out, "JPEG", quality=85)
        stripped = out.getvalue()
        keys = rt.watermarks.current().detection_keys
        engine = watermark_engine()
        decoded = np.asarray(Image.open(io.BytesIO(stripped)))
        parts: dict[str, list[float]] = {"total": [], "engine verify": [], "detect": [], "fingerprints": []}
        for _ in range(args.n):

            def full() -> object:
                stream = io.BytesIO(stripped)
                report = inspect_asset(rt.engine, stream)
                return with_recovery(rt.settings, rt.engine, rt.manifests, keys, stream, report)

            ms, report = cpu_ms(full)
            assert report.recovery is not None
            assert report.recovery.status.value == "recovered"
            parts["total"].append(ms)
            parts["engine verify"].append(cpu_ms(lambda: inspect_asset(rt.engine, io.BytesIO(stripped)))[0])
            parts["detect"].append(cpu_ms(lambda: engine.detect(decoded, keys))[0])
            parts["fingerprints"].append(
                cpu_ms(lambda: image_fingerprints(Image.open(io.BytesIO(stripped))))[0]
            )
        print(f"verify a stripped 1 MP JPEG with recovery, one core, {args.n} runs (CPU time, p50)")
        print(f"  total                           {p50(parts['total'])}   (target <= 150)")
        for name in ("engine verify", "detect", "fingerprints"):
            print(f"    of which {name:<21}{p50(parts[name])}")


if __name__ == "__main__":
    main()
