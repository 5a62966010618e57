"""The rotation drill of tests/e2e/test_rotation_drill.py, with its numbers printed (`.venv/bin/python
bench/rotation_drill.py`).

Starts the real service (`hallmark serve --dev --workers 2`, temporary data directory), signs a JPEG steadily
and rotates the active key through the CLI `--rotations` times, each once the active key has signed
tests/e2e/rotation.py's SIGNS_PER_KEY outputs. Prints requests, failures, outputs per key, the time from
running `keys activate` to the first output signed by the new key, and request latency percentiles."""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the drill lives with the end-to-end tests

from PIL import Image  # noqa: E402

from tests.e2e.rotation import run_drill  # noqa: E402
from tests.e2e.server import hallmark_env, key_lines, serve  # noqa: E402


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 120, 200)).save(out, format="JPEG", quality=85)
    return out.getvalue()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.5, help="HALLMARK_KEYRING_POLL_SECONDS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hallmark-drill-") as tmp:
        data_dir = Path(tmp) / "var"
        poll = {"HALLMARK_KEYRING_POLL_SECONDS": str(args.poll)}
        with serve(data_dir, Path(tmp) / "logs", "--dev", "--workers", "2", **poll) as server:
            server.wait_until_ready()
            [api_key] = key_lines(server)
            drill = run_drill(server, hallmark_env(data_dir), api_key, jpeg_bytes(), args.rotations)

    failed = [r for r in drill.results if r.status != 200]
    per_key = Counter(r.key_id for r in drill.results if r.status == 200)
    latency = [r.seconds for r in drill.results if r.status == 200]
    print(f"rotations: {len(drill.activated) - 1} in {drill.seconds:.1f} s (keyring poll {args.poll} s)")
    print(f"requests: {len(drill.results)}, failed: {len(failed)}")
    for key_id in drill.activated:
        print(f"  key {key_id}: {per_key[key_id]} outputs")
    switches = ", ".join(f"{s:.2f}" for s in drill.switch_seconds)
    print(f"from running `keys activate` to the first output by the new key (s): {switches}")
    print(
        f"sign latency (s): p50 {pct(latency, 0.5):.3f}, p95 {pct(latency, 0.95):.3f}, max {max(latency):.3f}"
    )
    if failed:
        raise SystemExit(f"{len(failed)} requests failed: {[(r.status, r.body[:120]) for r in failed[:3]]}")


if __name__ == "__main__":
    main()
