"""What the HTTP service adds to a raw c2pa sign of a 1-megapixel JPEG (`make bench`). Target: <= 1.5.

Starts the real service (`hallmark serve --dev`, temporary data dir), then alternates N POST /v1/sign on one
keep-alive connection with N in-process `c2pa.Builder.sign` calls (same key, thumbnail off, to BytesIO) and N
in-process `signing.sign_asset` calls (Hallmark's core with its hashing and ledger, no HTTP), so the split
between the core's own work and the HTTP stack is measured in the same run. Soft binding is off here (the
raw engine has no watermark or fingerprints): bench/durable_speed.py measures what they add."""

from __future__ import annotations

import argparse
import http.client
import io
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import c2pa
from PIL import Image

from app.runtime import build_runtime
from app.settings import Settings
from signing import sign_asset, validate_generation
from signing.sign import check_input

TARGET = 1.5
WARMUP = 20
BOUND = "hallmark-bench-boundary"
AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def make_jpeg() -> bytes:
    """A deterministic 1000x1000 picture: gradients plus seeded noise (so it does not compress to nothing)."""
    size = (1000, 1000)
    noise = Image.frombytes("L", size, random.Random(0).randbytes(size[0] * size[1]))
    red, blue = Image.linear_gradient("L").resize(size), Image.radial_gradient("L").resize(size)
    out = io.BytesIO()
    Image.merge("RGB", (red, Image.blend(red.rotate(90), noise, 0.35), blue)).save(out, "JPEG", quality=90)
    return out.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(samples: list[float], q: float) -> float:
    return sorted(samples)[round(q / 100 * (len(samples) - 1))]


def wait_ready(proc: subprocess.Popen[str], port: int, log: Path) -> str:
    """The API key `serve --dev` prints (the line starting hm_), once /readyz answers 200."""
    assert proc.stdout is not None
    token = next((line.strip() for line in proc.stdout if line.startswith("hm_")), "")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain: a full pipe would block it
    deadline = time.monotonic() + 60
    while token and proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return token
        except OSError:  # refused while starting, or 503 (HTTPError) until the signer is ready
            time.sleep(0.1)
    raise SystemExit(f"server not ready (exit code {proc.poll()}):\n{log.read_text()[-3000:]}")


def http_signer(port: int, token: str, jpeg: bytes) -> Callable[[], None]:
    """POST /v1/sign on one keep-alive connection; the body is encoded once, outside the timing."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    part = 'Content-Disposition: form-data; name="{}"{}\r\n'
    fields = [(part.format(k, "") + "\r\n" + v) for k, v in (("model_name", "bench"), ("model_version", "1"))]
    file_head = part.format("file", '; filename="gen.jpg"') + "Content-Type: image/jpeg\r\n\r\n"
    head = "".join(f"--{BOUND}\r\n{f}\r\n" for f in fields) + f"--{BOUND}\r\n{file_head}"
    body = head.encode() + jpeg + f"\r\n--{BOUND}--\r\n".encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={BOUND}"}

    def sign() -> None:
        conn.request("POST", "/v1/sign", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200 or not data.startswith(b"\xff\xd8"):
            raise SystemExit(f"sign failed: HTTP {response.status} {data[:500]!r}")

    return sign


def raw_signer(keys: Path, jpeg: bytes) -> Callable[[], None]:
    ctx = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    chain, key = (keys / "signing-chain.pem").read_bytes(), (keys / "signing-key.pem").read_bytes()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain, key, None))
    actions = [{"action": "c2pa.created", "digitalSourceType": AI}]
    created = {"label": "c2pa.actions.v2", "data": {"actions": actions}}
    manifest = {"claim_generator_info": [{"name": "bench", "version": "1"}], "assertions": [created]}

    def sign() -> None:
        with c2pa.Builder(manifest, context=ctx) as builder:
            builder.sign(signer, "image/jpeg", io.BytesIO(jpeg), io.BytesIO())

    return sign


def core_signer(data_dir: Path, jpeg: bytes) -> Callable[[], None]:
    """Hallmark's core as the service runs it (same data dir: keyring, trust, SQLite ledger), minus HTTP."""
    runtime = build_runtime(Settings(data_dir=data_dir, soft_binding=False))
    ctx = runtime.sign_ctx
    assert ctx is not None
    info = validate_generation(
        model_name="bench", model_version="1", provider="bench", digital_source_type=None
    )

    def sign() -> None:
        sign_asset(ctx, io.BytesIO(jpeg), io.BytesIO(), info)

    return sign


def input_checker(jpeg: bytes) -> Callable[[], None]:
    """The input checks alone (sniffing, the completeness walk, the pixel decode): part of the core's cost."""

    def check() -> None:
        check_input(io.BytesIO(jpeg))

    return check


def measure(sides: dict[str, Callable[[], None]], n: int) -> dict[str, list[float]]:
    """Warm up, then alternate the sides call by call so that both see the same machine load."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(WARMUP + n):
        for name, call in sides.items():
            t0 = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: samples[WARMUP:] for name, samples in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="measured signs per side, after the warm-up")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    args = parser.parse_args()
    cpus, python = len(os.sched_getaffinity(0)), sys.version.split()[0]
    print(f"nproc {cpus}, python {python}, c2pa-python {c2pa.__version__}, c2pa sdk {c2pa.sdk_version()}")
    jpeg = make_jpeg()
    print(f"input: 1000x1000 JPEG, {len(jpeg)} bytes; n={args.n} per side after {WARMUP} warm-up calls")
    port = args.port or free_port()
    with tempfile.TemporaryDirectory(prefix="hallmark-bench-") as tmp:
        data_dir, log = Path(tmp) / "data", Path(tmp) / "server.log"
        hallmark = Path(sys.executable).parent / "hallmark"  # run via `env`: same pid, our environment
        cmd = [
            "env",
            f"HALLMARK_DATA_DIR={data_dir}",
            "HALLMARK_SOFT_BINDING=false",
            hallmark,
            "serve",
            "--dev",
            "--port",
            str(port),
        ]
        with log.open("w") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            token = wait_ready(proc, port, log)
            sides = {
                "http": http_signer(port, token, jpeg),
                "core": core_signer(data_dir, jpeg),
                "raw": raw_signer(data_dir / "keys", jpeg),
                "check": input_checker(jpeg),
            }
            times = measure(sides, args.n)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    (h50, h99), (c50, c99), (r50, r99) = (
        (pct(times[s], 50), pct(times[s], 99)) for s in ("http", "core", "raw")
    )
    print(f"HTTP POST /v1/sign     p50 {h50:7.2f} ms   p99 {h99:7.2f} ms")
    print(f"core sign_asset        p50 {c50:7.2f} ms   p99 {c99:7.2f} ms   (hashes + ledger, no HTTP)")
    print(f"raw c2pa Builder.sign  p50 {r50:7.2f} ms   p99 {r99:7.2f} ms")
    k50, k99 = pct(times["check"], 50), pct(times["check"], 99)
    print(f"input checks alone    p50 {k50:7.2f} ms   p99 {k99:7.2f} ms   (within core: sniff, walk, decode)")
    ratio = h50 / (r50 + 1.0)
    print(f"ratio HTTP p50 / (raw p50 + 1 ms) = {ratio:.2f}, target <= {TARGET}: ", end="")
    print("PASS" if ratio <= TARGET else "MISS")
    print(f"split of the p50 gap: core work {c50 - r50:.2f} ms, HTTP stack {h50 - c50:.2f} ms")


if __name__ == "__main__":
    main()
