"""Verify under load with hostile clients (`python -m bench.verify_load [--connections N] [--seconds S]`).

Starts the real service (`hallmark serve --dev --workers 2`, temporary data directory, the proxy header of
127.0.0.1 trusted so that every simulated client has an address of its own), signs one small JPEG, then:

1. unloaded: a few connections verify it back to back for `--baseline-seconds`;
2. loaded: `--connections` keep-alive connections verify it back to back for `--seconds`, while `--hostile`
   clients (each its own address) loop over: a drip-fed upload (declares 8 MB, sends a few bytes a second),
   an MP4 of many tiny boxes, a PNG of many tiny chunks, and a request head that never ends.

The clients are raw asyncio sockets (an HTTP client library would need more CPU than the server on 2 cores).
Prints per phase the statuses, p50/p99 of the normal verifies that succeeded, the loaded/unloaded p99 ratio
(issue 8's target: within 3x), errors other than 429/503 (target 0), and the server's RSS (all processes)
sampled each second. Normal clients answered 429/503 count as shed load, not errors.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import random
import resource
import statistics
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the server harness lives with the end-to-end tests

import httpx2  # noqa: E402
import uvloop  # noqa: E402
from PIL import Image  # noqa: E402

from tests.e2e.server import Server, key_lines, serve  # noqa: E402
from tests.processes import descendants, rss_bytes  # noqa: E402

SHED = {429, 503}
ADDRESSES = itertools.count()
BOUNDARY = "hallmarkloadbench"
T = TypeVar("T")


def small_jpeg() -> bytes:
    rng = random.Random(5)
    image = Image.new("RGB", (320, 240))
    image.putdata([(rng.randrange(256), rng.randrange(256), 128) for _ in range(320 * 240)])
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def multipart(payload: bytes, filename: str, content_type: str) -> tuple[bytes, str]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + payload + f"\r\n--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def verify_request(body: bytes, content_type: str, client: str, length: int | None = None) -> bytes:
    return (
        f"POST /v1/verify HTTP/1.1\r\nHost: bench\r\nX-Forwarded-For: {client}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body) if length is None else length}\r\n\r\n"
    ).encode() + body


def box_storm(boxes: int = 40_000) -> bytes:
    """An MP4 of many tiny `free` boxes after a valid `ftyp` (the engine's cost grows with the box count)."""
    ftyp = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 512, b"isom", b"mp41")
    return ftyp + struct.pack(">I4s", 8, b"free") * boxes


def chunk_storm(chunks: int = 40_000) -> bytes:
    """A PNG with many tiny ancillary chunks before its pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    noise = chunk(b"tEXt", b"k\x00v") * chunks
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    return b"\x89PNG\r\n\x1a\n" + ihdr + noise + idat + chunk(b"IEND", b"")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, float]:
    """Status and Retry-After (seconds, 1 when absent) of one response; its body is read and dropped.
    Raises on a closed connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(fields.get("content-length", 0))
    if length:
        await reader.readexactly(length)
    return status, float(fields.get("retry-after", 1))


@dataclass
class Tally:
    statuses: Counter[int | str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    started: list[float] = field(default_factory=list)  # when each request of `latencies` was sent

    def add(self, status: int | str, seconds: float | None, start: float | None = None) -> None:
        self.statuses[status] += 1
        if status == 200 and seconds is not None:
            self.latencies.append(seconds)
            self.started.append(start if start is not None else time.monotonic() - seconds)


def address(n: int) -> str:
    return f"10.{n // 62500 % 250}.{n // 250 % 250}.{n % 250 + 1}"


async def normal_client(port: int, upload: tuple[bytes, str], until: float, tally: Tally) -> None:
    """Verifies back to back on one keep-alive connection, each request from a fresh client address (the
    per-client rate limit is for one client, not for this crowd)."""
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < until:
        try:
            start = time.monotonic()  # a new connection's set-up counts in the request's latency
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(verify_request(*upload, address(next(ADDRESSES))))
            status, retry_after = await asyncio.wait_for(read_response(reader), timeout=120)
            tally.add(status, time.monotonic() - start, start)
            if status in SHED:
                # A polite client comes back when it is told to; told to wait more than a moment, it hangs
                # up rather than write later into a connection the server may have closed meanwhile.
                if retry_after > 1:
                    writer.close()
                    writer = None
                await asyncio.sleep(retry_after)
        except (
            OSError,
            RuntimeError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
        ) as exc:
            tally.add(type(exc).__name__, None)
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.2)
    if writer is not None:
        writer.close()


async def hostile_client(port: int, number: int, until: float, tally: Tally) -> None:
    client = f"10.66.{number // 250}.{number % 250 + 1}"
    storms = [
        verify_request(*multipart(box_storm(), "storm.mp4", "video/mp4"), client),
        verify_request(*multipart(chunk_storm(), "storm.png", "image/png"), client),
    ]
    kind = 0
    while time.monotonic() < until:
        kind += 1
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                if kind % 4 == 0:  # drip: declares 8 MB, sends a few bytes a second
                    writer.write(verify_request(b"", "application/octet-stream", client, length=8 << 20))
                    while time.monotonic() < until and not writer.is_closing():
                        writer.write(b"x" * 4)
                        await writer.drain()
                        await asyncio.sleep(1.0)
                elif kind % 4 == 3:  # a request head that never ends
                    writer.write(b"POST /v1/verify HTTP/1.1\r\nHost: bench\r\n")
                    while time.monotonic() < until and not writer.is_closing():
                        writer.write(b"X-Slow: 1\r\n")
                        await writer.drain()
                        await asyncio.sleep(1.0)
                else:
                    writer.write(storms[kind % 2])
                    await writer.drain()
                    status, _ = await asyncio.wait_for(read_response(reader), timeout=120)
                    tally.add(status, None)
            finally:
                writer.close()
        except (
            OSError,
            RuntimeError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
        ) as exc:
            tally.add(type(exc).__name__, None)
        await asyncio.sleep(0.1)


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants."""
    return rss_bytes(root) + sum(rss_bytes(pid) for pid in descendants(root))


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children that have ended and were waited for (0 once gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK  # utime stime cutime cstime


def tree_cpu(root: int) -> float:
    return cpu_seconds(root) + sum(cpu_seconds(pid) for pid in descendants(root))


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (every process, this one and the server included)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / TICK


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def sample_rss(pid: int, until: float, samples: list[int]) -> None:
    while time.monotonic() < until:
        samples.append(tree_rss(pid))
        await asyncio.sleep(1.0)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Phase:
    normal: Tally
    hostile: Tally
    rss: list[int]
    seconds: float
    client_cpu: float
    server_cpu: float
    machine_cpu: float
    load: tuple[str, str]
    began: float

    @property
    def errors(self) -> dict[int | str, int]:
        return {k: v for k, v in self.normal.statuses.items() if k != 200 and k not in SHED}

    @property
    def p99(self) -> float:
        return pct(self.normal.latencies, 0.99)


def report(name: str, phase: Phase) -> None:
    normal, seconds = phase.normal, phase.seconds
    print(
        f"{name}: {sum(normal.statuses.values())} normal requests, {normal.statuses[200] / seconds:.1f} "
        f"verified/s; load average {phase.load[0]} before, {phase.load[1]} after"
    )
    print(
        f"  normal statuses: {dict(sorted(normal.statuses.items(), key=str))}; "
        f"errors (not 200/429/503): {phase.errors or 0}"
    )
    if phase.hostile.statuses:
        print(f"  hostile statuses: {dict(sorted(phase.hostile.statuses.items(), key=str))}")
    if normal.latencies:
        print(
            f"  normal 200s: p50 {statistics.median(normal.latencies) * 1000:.0f} ms, "
            f"p99 {phase.p99 * 1000:.0f} ms, max {max(normal.latencies) * 1000:.0f} ms"
        )
        windows: dict[int, list[float]] = {}
        for start, latency in zip(normal.started, normal.latencies, strict=True):
            windows.setdefault(int((start - phase.began) // 10), []).append(latency)
        print(
            "  p99 of the 200s by the 10 s in which they were sent: "
            + ", ".join(
                f"{w * 10}-{w * 10 + 10} s {pct(v, 0.99) * 1000:.0f} ms ({len(v)})"
                for w, v in sorted(windows.items())
            )
        )
    other = phase.machine_cpu - phase.client_cpu - phase.server_cpu
    print(
        f"  CPU (cores busy on average): server {phase.server_cpu / seconds:.2f}, "
        f"load generator {phase.client_cpu / seconds:.2f}, everything else on the machine "
        f"{max(other, 0) / seconds:.2f}"
    )
    if phase.rss:
        mib = [r / 2**20 for r in phase.rss]
        print(
            f"  server RSS (all processes): first {mib[0]:.0f} MiB, last {mib[-1]:.0f} MiB, "
            f"peak {max(mib):.0f} MiB"
        )


def report_server_side(log: Path, offset: int) -> None:
    """The server's own time for the verifies it answered 200 (its access log, from the first byte of the
    request head it parsed to the last byte of its answer): the rest of a client's latency is spent before the
    server reads the request (the listen backlog and the event loop's turn)."""
    durations: dict[int, list[float]] = {}
    with log.open("rb") as fh:
        fh.seek(offset)
        for line in fh:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("path") == "/v1/verify" and "duration_ms" in entry:
                durations.setdefault(int(entry["status"]), []).append(float(entry["duration_ms"]) / 1000)
    for status, times in sorted(durations.items()):
        print(
            f"  server-side time of its verify {status}s: p50 {statistics.median(times) * 1000:.0f} ms, "
            f"p99 {pct(times, 0.99) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms ({len(times)} logged)"
        )


def rss_growth(phase: Phase) -> float:
    """Peak RSS of the last half of the phase over the peak of its first half (1.0: no growth)."""
    half = len(phase.rss) // 2
    if half == 0:
        return 1.0
    return max(phase.rss[half:]) / max(phase.rss[:half])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--hostile", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--baseline-connections", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--client-nice",
        type=int,
        default=10,
        help="niceness of the load generator once the server runs (an attacker's CPU is not the server's)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="HALLMARK_X=V",
        help="a service setting (repeatable)",
    )
    args = parser.parse_args()
    raise_fd_limit()
    jpeg = small_jpeg()
    with tempfile.TemporaryDirectory(prefix="hallmark-load-") as tmp:
        env = {
            "HALLMARK_TRUSTED_PROXIES": "127.0.0.1",
            "HALLMARK_LOG_FORMAT": "json",  # the access log's durations are read back (report_server_side)
            **dict(s.split("=", 1) for s in args.setting),
        }
        with serve(
            Path(tmp) / "var", Path(tmp) / "logs", "--dev", "--workers", str(args.workers), **env
        ) as server:
            server.wait_until_ready()
            [api_key] = key_lines(server)
            signed = httpx2.post(
                server.base_url + "/v1/sign",
                headers={"Authorization": f"Bearer {api_key}"},
                files={"file": ("small.jpg", jpeg, "image/jpeg")},
                data={"model_name": "bench-model", "model_version": "1"},
                timeout=60,
            )
            signed.raise_for_status()
            upload = multipart(signed.content, "small.jpg", "image/jpeg")
            os.nice(args.client_nice)
            print(
                f"small signed JPEG: {len(signed.content)} bytes; {args.workers} workers, "
                f"{os.cpu_count()} cores; load generator at nice {os.nice(0)}; "
                f"settings {' '.join(args.setting) or 'defaults'}"
            )

            async def run() -> tuple[Phase, Phase]:
                base = await phase_set(server, upload, args.baseline_connections, 0, args.baseline_seconds)
                report("unloaded", base)
                log_offset = server.stderr_path.stat().st_size
                loaded = await phase_set(server, upload, args.connections, args.hostile, args.seconds)
                report(f"loaded ({args.connections} connections, {args.hostile} hostile)", loaded)
                report_server_side(server.stderr_path, log_offset)
                return base, loaded

            base, loaded = run_loop(run())
            alive = server.proc.poll() is None
            log = server.stderr_path.read_text(errors="replace")
            restarts = log.count(" died")
            ratio = loaded.p99 / base.p99
            growth = rss_growth(loaded)
            print(f"normal p99 loaded / unloaded: {ratio:.2f}x (target <= 3x)")
            print(f"server RSS peak, second half of the load / first half: {growth:.2f} (target <= 1.10)")
            print(f"server still running after the load: {alive}; uvicorn workers replaced: {restarts}")
            if not alive:
                print(f"server exit status {server.proc.returncode}; its log ends:\n{log[-3000:]}")
    missed = [
        what
        for what, bad in (
            ("errors other than 429/503", bool(base.errors or loaded.errors)),
            ("p99 ratio", not ratio <= 3.0),
            ("memory", not growth <= 1.10),
            ("server died", not alive),
            ("workers replaced", restarts > 0),
        )
        if bad
    ]
    print(f"targets missed: {', '.join(missed)}" if missed else "all targets met")
    sys.exit(1 if missed else 0)


def raise_fd_limit() -> None:
    """1,000 connections need more descriptors than the usual soft limit of 1,024: up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_loop(coro: Coroutine[None, None, T]) -> T:
    """On uvloop (installed with uvicorn[standard]): the load generator's CPU is taken from the server's."""
    return uvloop.run(coro)


async def phase_set(
    server: Server, upload: tuple[bytes, str], connections: int, hostile: int, seconds: float
) -> Phase:
    normal, bad = Tally(), Tally()
    rss: list[int] = []
    load_before = load_average()
    cpu = own_cpu(), tree_cpu(server.proc.pid), machine_busy()
    began = time.monotonic()
    until = began + seconds
    tasks = [normal_client(server.port, upload, until, normal) for _ in range(connections)]
    tasks += [hostile_client(server.port, n, until, bad) for n in range(hostile)]
    tasks.append(sample_rss(server.proc.pid, until, rss))
    await asyncio.gather(*tasks)
    return Phase(
        normal,
        bad,
        rss,
        seconds,
        own_cpu() - cpu[0],
        tree_cpu(server.proc.pid) - cpu[1],
        machine_busy() - cpu[2],
        (load_before, load_average()),
        began,
    )


if __name__ == "__main__":
    main()
