"""Sign a 1 GB MP4 through the job API of a real served process; peak RSS and time next to the raw library.

Builds the file from a one-second ffmpeg MP4 (moov first, `-movflags +faststart`) whose mdat box is padded to
the target size (the sample tables still point at the real frames at its start, so the file stays valid).
Starts `hallmark serve --dev` (tests/e2e/server.py), POSTs the file to /v1/jobs, polls the job, downloads the
result, and samples the resident memory of the server and every process below it (decode workers, ffmpeg)
every 20 ms; the peak is the largest sum seen. The raw side is `c2pa.Builder.sign` on the same file, file to
file, in a child process whose peak RSS is its ru_maxrss. Prints peak RSS / file size (target < 1.2) and
both times.

    .venv/bin/python bench/job_memory.py [--size-mb 1024]
"""

from __future__ import annotations

import argparse
import http.client
import json
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.server import key_lines, serve
from tests.media_samples import make_mp4
from tests.processes import descendants, rss_bytes

TARGET = 1.2
MiB = 1024 * 1024
BOUND = "hallmark-bench-boundary"
RAW = r"""
import sys, time, resource, c2pa
src, dst, keys = sys.argv[1], sys.argv[2], sys.argv[3]
ai = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
chain, key = open(keys + "/signing-chain.pem", "rb").read(), open(keys + "/signing-key.pem", "rb").read()
signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain, key, None))
manifest = {"claim_generator_info": [{"name": "bench", "version": "1"}], "assertions": [
    {"label": "c2pa.actions.v2", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": ai}]}}]}
ctx = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
t0 = time.perf_counter()
with c2pa.Builder(manifest, context=ctx) as b, open(src, "rb") as s, open(dst, "w+b") as d:
    b.sign(signer, "video/mp4", s, d)
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def padded_mp4(path: Path, size: int) -> None:
    """A valid MP4 of `size` bytes: a faststart sample whose last box, mdat, grows with zero bytes."""
    small = path.with_suffix(".small.mp4")
    make_mp4(small)
    moved = path.with_suffix(".fast.mp4")
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(small),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            str(moved),
        ],
        check=True,
    )
    data = moved.read_bytes()
    at, last = 0, None
    while at < len(data):
        box_size, kind = struct.unpack(">I4s", data[at : at + 8])
        last = (at, kind)
        at += box_size
    assert last is not None
    assert last[1] == b"mdat", "mdat is not the last box"
    pad = size - len(data)
    start = last[0]
    with path.open("wb") as out:
        out.write(data[:start])
        out.write(struct.pack(">I", len(data) - start + pad) + b"mdat")
        out.write(data[start + 8 :])
        chunk = b"\0" * (8 * MiB)
        while pad > 0:
            out.write(chunk[: min(pad, len(chunk))])
            pad -= min(pad, len(chunk))


class Sampler:
    """Peak of the summed RSS of a process and all its descendants."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(rss_bytes(p) for p in [self.pid, *descendants(self.pid)])
            self.peak = max(self.peak, total)
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def request(port: int, method: str, path: str, token: str, **kw: object) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    conn.request(method, path, headers={"Authorization": f"Bearer {token}", **kw.pop("headers", {})}, **kw)  # type: ignore[arg-type]
    return conn.getresponse()


def post_file(port: int, token: str, path: Path) -> dict[str, object]:
    """Streams the multipart body from the file (the client holds no copy of it in memory)."""
    head = (
        f'--{BOUND}\r\nContent-Disposition: form-data; name="model_name"\r\n\r\nbench\r\n'
        f'--{BOUND}\r\nContent-Disposition: form-data; name="model_version"\r\n\r\n1\r\n'
        f'--{BOUND}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUND}--\r\n".encode()
    length = len(head) + path.stat().st_size + len(tail)

    def body():  # type: ignore[no-untyped-def]
        yield head
        with path.open("rb") as fh:
            while chunk := fh.read(MiB):
                yield chunk
        yield tail

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    conn.request(
        "POST", "/v1/jobs", body=body(),
        headers={"Authorization": f"Bearer {token}", "Content-Length": str(length),
                 "Content-Type": f"multipart/form-data; boundary={BOUND}"},
    )  # fmt: skip
    response = conn.getresponse()
    answer = json.loads(response.read())
    if response.status != 202:
        raise SystemExit(f"POST /v1/jobs: HTTP {response.status} {answer}")
    return dict(answer)


def through_the_service(port: int, token: str, path: Path, out: Path) -> tuple[float, dict[str, object]]:
    t0 = time.perf_counter()
    job = post_file(port, token, path)
    while job["state"] in ("queued", "running"):
        time.sleep(0.2)
        response = request(port, "GET", f"/v1/jobs/{job['id']}", token)
        job = json.loads(response.read())
    if job["state"] != "succeeded":
        raise SystemExit(f"job ended {job['state']}: {job.get('problem')}")
    response = request(port, "GET", str(job["result"]), token)
    with out.open("wb") as fh:
        while chunk := response.read(MiB):
            fh.write(chunk)
    return time.perf_counter() - t0, job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mb * MiB
    with tempfile.TemporaryDirectory(prefix="hallmark-job-bench-") as tmp:
        work = Path(tmp)
        big = work / "big.mp4"
        padded_mp4(big, size)
        data_dir = work / "data"
        env = {
            "HALLMARK_JOB_MAX_UPLOAD_BYTES": str(size + 16 * MiB),
            "HALLMARK_ISOLATION_MEMORY_BYTES": str(4096 * MiB),
        }
        with serve(data_dir, work / "logs", "--dev", **env) as server:
            server.wait_until_ready(60)
            (token,) = key_lines(server)
            with Sampler(server.proc.pid) as before:
                time.sleep(1.0)
            idle = before.peak
            with Sampler(server.proc.pid) as sampler:
                service_s, job = through_the_service(server.port, token, big, work / "signed.mp4")
            peak = sampler.peak
        signed_size = (work / "signed.mp4").stat().st_size
        raw = subprocess.run(
            [sys.executable, "-c", RAW, str(big), str(work / "raw.mp4"), str(data_dir / "keys")],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        raw_s, raw_rss = (float(v) for v in raw.stdout.split())
    ratio = peak / size
    print(
        f"file: {size / MiB:.0f} MiB MP4 (signed result {signed_size / MiB:.1f} MiB, job {job['id'][:8]}...)"
    )
    print(f"service (all processes) peak RSS: {peak / MiB:.0f} MiB (idle before: {idle / MiB:.0f} MiB)")
    print(f"peak RSS / file size: {ratio:.2f} (target < {TARGET}) -> {'met' if ratio < TARGET else 'MISSED'}")
    print(f"job API, POST to downloaded result: {service_s:.1f} s")
    print(f"raw c2pa Builder.sign, file to file: {raw_s:.1f} s, peak RSS {raw_rss / MiB:.0f} MiB")
    print(f"time ratio job API / raw: {service_s / raw_s:.2f}")


if __name__ == "__main__":
    main()
