"""Verify under attack: many concurrent small-image verifies against a real `hallmark serve --dev` process,
first alone (the unloaded baseline), then for the same time beside hostile clients that send box storms
and drip-fed uploads (a large declared Content-Length, a few bytes a second).

Prints, for the normal clients: requests, statuses, errors other than an explicit 429/503 (transport errors
included), p50/p99 unloaded and loaded and their ratio (target: loaded p99 within 3x); what the hostile
clients got; the server's RSS (with its child processes) every 10 s.

All clients share one address, so the per-client limits would refuse nearly every request: the bench turns
HALLMARK_PUBLIC_RATE_LIMIT and HALLMARK_PUBLIC_MAX_CONCURRENT_PER_CLIENT off and measures the rest.

    .venv/bin/python -m bench.verify_load [--connections 1000] [--hostile 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx2

from bench.mutations import _descendants, _rss_kib
from tests.e2e.server import key_lines, serve
from tests.fuzz.inputs import jpeg, mp4
from tests.fuzz.mutations import bmff_storm

DRIP_BYTES = 16
DRIP_EVERY_S = 1.0
DECLARED_BYTES = 8 * 1024 * 1024


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def normal_client(
    http: httpx2.AsyncClient, image: bytes, until: float, latencies: list[float], statuses: Counter[str]
) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            response = await http.post("/v1/verify", files={"file": ("small.jpg", image)})
            status = str(response.status_code)
        except httpx2.TransportError as exc:
            status = f"transport:{type(exc).__name__}"
        statuses[status] += 1
        if status == "200":
            latencies.append(time.monotonic() - started)


async def storm_client(http: httpx2.AsyncClient, storm: bytes, until: float, statuses: Counter[str]) -> None:
    while time.monotonic() < until:
        try:
            response = await http.post("/v1/verify", files={"file": ("storm.mp4", storm)})
            statuses[f"storm {response.status_code}"] += 1
        except httpx2.TransportError as exc:
            statuses[f"storm transport:{type(exc).__name__}"] += 1


async def drip_client(port: int, until: float, statuses: Counter[str]) -> None:
    """Declares DECLARED_BYTES and sends DRIP_BYTES a second until the server closes the connection."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            statuses["drip connect-refused"] += 1
            await asyncio.sleep(1)
            continue
        head = (
            "POST /v1/verify HTTP/1.1\r\nHost: bench\r\n"
            "Content-Type: multipart/form-data; boundary=drip\r\n"
            f"Content-Length: {DECLARED_BYTES}\r\n\r\n"
            '--drip\r\nContent-Disposition: form-data; name="file"; filename="drip.jpg"\r\n\r\n'
        )
        outcome = "drip held-open-until-end"
        try:
            writer.write(head.encode())
            await writer.drain()
            while time.monotonic() < until:
                if reader.at_eof():
                    break
                writer.write(b"\xff" * DRIP_BYTES)
                await writer.drain()
                try:
                    line = await asyncio.wait_for(reader.readline(), DRIP_EVERY_S)
                except TimeoutError:
                    continue
                if line:
                    outcome = "drip " + (line.decode(errors="replace").split(" ")[1:2] or ["?"])[0]
                break
        except OSError:
            outcome = "drip closed-by-server"
        finally:
            writer.close()
        statuses[outcome] += 1


async def memory_log(pid: int, until: float, samples: list[tuple[float, int]]) -> None:
    started = time.monotonic()
    while time.monotonic() < until:
        total = _rss_kib(pid) + sum(_rss_kib(p) for p in _descendants(pid))
        samples.append((time.monotonic() - started, total))
        await asyncio.sleep(1.0)


async def phase(
    base_url: str, port: int, pid: int, image: bytes, storm: bytes, args: argparse.Namespace, hostile: int
) -> tuple[list[float], Counter[str], Counter[str], list[tuple[float, int]]]:
    limits = httpx2.Limits(
        max_connections=args.connections + hostile, max_keepalive_connections=args.connections
    )
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    attack: Counter[str] = Counter()
    memory: list[tuple[float, int]] = []
    async with httpx2.AsyncClient(base_url=base_url, limits=limits, timeout=120) as http:
        until = time.monotonic() + args.seconds
        tasks = [normal_client(http, image, until, latencies, statuses) for _ in range(args.connections)]
        tasks += [storm_client(http, storm, until, attack) for _ in range(hostile // 2)]
        tasks += [drip_client(port, until, attack) for _ in range(hostile - hostile // 2)]
        tasks.append(memory_log(pid, until, memory))
        await asyncio.gather(*tasks)
    return latencies, statuses, attack, memory


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=1000, help="concurrent normal clients")
    parser.add_argument("--hostile", type=int, default=20, help="hostile clients (half storms, half drips)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--storm-boxes", type=int, default=10_000)
    args = parser.parse_args()
    env = {"HALLMARK_PUBLIC_RATE_LIMIT": "0", "HALLMARK_PUBLIC_MAX_CONCURRENT_PER_CLIENT": "0"}
    with (
        tempfile.TemporaryDirectory(prefix="hallmark-load-") as tmp,
        serve(Path(tmp) / "var", Path(tmp) / "logs", "--dev", **env) as server,
    ):
        server.wait_until_ready()
        [token] = key_lines(server)
        with httpx2.Client(base_url=server.base_url, timeout=60) as http:
            image = _signed_jpeg(http, token)
            storm = bmff_storm(_signed_mp4(http, token), args.storm_boxes)
        pid = server.proc.pid
        print(f"{args.connections} normal clients, {args.hostile} hostile, {args.seconds:g} s per phase;")
        print(f"a {len(image)} byte signed JPEG; storms of {args.storm_boxes} boxes ({len(storm)} bytes)")
        quiet = asyncio.run(phase(server.base_url, server.port, pid, image, storm, args, 0))
        loud = asyncio.run(phase(server.base_url, server.port, pid, image, storm, args, args.hostile))
        alive = server.proc.poll() is None
    bad = 0
    for name, (latencies, statuses, attack, memory) in (("unloaded", quiet), ("under attack", loud)):
        errors = {k: v for k, v in statuses.items() if k not in ("200", "429", "503")}
        bad += sum(errors.values())
        print(f"\n{name}: {sum(statuses.values())} verifies, {dict(sorted(statuses.items()))}")
        print(f"  p50 {statistics.median(latencies) * 1000 if latencies else float('nan'):.0f} ms,", end=" ")
        p99 = _percentile(latencies, 0.99) * 1000
        print(f"p99 {p99:.0f} ms; errors other than 429/503: {sum(errors.values())}")
        if attack:
            print(f"  hostile clients got: {dict(sorted(attack.items()))}")
        print(
            "  RSS (server + children, MiB) every 10 s: "
            + " ".join(f"{kib / 1024:.0f}" for _, kib in memory[::10])
        )
    ratio = _percentile(loud[0], 0.99) / _percentile(quiet[0], 0.99)
    print(f"\np99 under attack / unloaded p99: {ratio:.2f} (target <= 3)")
    print(f"server still running: {'yes' if alive else 'NO'}")
    return 0 if alive and bad == 0 else 1


def _signed_jpeg(http: httpx2.Client, token: str) -> bytes:
    return _sign(http, token, "small.jpg", jpeg())


def _signed_mp4(http: httpx2.Client, token: str) -> bytes:
    return _sign(http, token, "clip.mp4", mp4())


def _sign(http: httpx2.Client, token: str, name: str, data: bytes) -> bytes:
    response = http.post(
        "/v1/sign",
        files={"file": (name, data)},
        data={"model_name": "load", "model_version": "1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    return response.content


if __name__ == "__main__":
    sys.exit(main())
