"""The hostile-input corpus, long tier: N structure-aware mutants (default 10,000) plus storms and deep
nesting at ten times the fast tier's size, sent through a real `hallmark serve --dev` process over HTTP.

Reports HTTP 500s, statuses the OpenAPI document does not list, answers past the deadline, transport errors,
server crashes (the process exited, or /healthz stopped answering) and the peak resident memory of the
server process and of its largest descendant (workers, fpcalc, ffmpeg), sampled every 50 ms.

The deadline: HALLMARK_VERIFY_DEADLINE_SECONDS when the service has that setting (the isolation pool's
per-file wall clock), else HALLMARK_MEDIA_FINGERPRINT_TIMEOUT_SECONDS (the longest bound a verify has
without the pool); the answer must arrive within it plus 5 s of HTTP and queueing slack.

    .venv/bin/python -m bench.mutations [--count N] [--seed S] [--clients C]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

import httpx2

from app.settings import Settings
from tests.e2e.server import key_lines, serve
from tests.fuzz.inputs import SIGN_FORM, sign_all
from tests.fuzz.mutations import Mutant, corpus
from tests.processes import descendants, rss_bytes

SLACK_S = 5.0
SIGN_SHARE = 20


def deadline_seconds() -> tuple[float, str]:
    return Settings().verify_deadline_seconds, "HALLMARK_VERIFY_DEADLINE_SECONDS"


class MemoryWatch:
    """Peak RSS of a process and of its largest descendant, sampled on a thread."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_main = 0
        self.peak_child = 0
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            main = rss_bytes(self.pid) // 1024
            children = [rss_bytes(p) // 1024 for p in descendants(self.pid)]
            self.peak_main = max(self.peak_main, main)
            self.peak_child = max(self.peak_child, *children, 0)
            self.peak_total = max(self.peak_total, main + sum(children))

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000, help="seeded mutants (storms come on top)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--storm-scale", type=int, default=10, help="storm and nesting size vs the fast tier")
    args = parser.parse_args()
    deadline, source = deadline_seconds()
    limit = deadline + SLACK_S
    print(
        f"deadline {deadline:g} s ({source}) + {SLACK_S:g} s slack; {args.clients} clients; seed {args.seed}"
    )

    with tempfile.TemporaryDirectory(prefix="hallmark-mutations-") as tmp:
        data_dir = Path(tmp) / "var"
        with serve(data_dir, Path(tmp) / "logs", "--dev", HALLMARK_PUBLIC_RATE_LIMIT="0") as server:
            server.wait_until_ready()
            [token] = key_lines(server)
            http = httpx2.Client(base_url=server.base_url, timeout=limit + 30)
            signed = sign_all(http.post, token)
            documented = _documented(http)
            statuses: Counter[str] = Counter()
            problems: list[str] = []
            slowest: list[tuple[float, str]] = []
            lock = threading.Lock()

            def send(indexed: tuple[int, Mutant]) -> None:
                index, m = indexed
                ops: list[tuple[str, dict[str, Any]]] = [("verify", {})]
                if index % SIGN_SHARE == 0:
                    ops.append(("sign", {"data": SIGN_FORM, "headers": {"Authorization": f"Bearer {token}"}}))
                for op, extra in ops:
                    started = time.monotonic()
                    try:
                        response = http.post(f"/v1/{op}", files={"file": ("upload.bin", m.data)}, **extra)
                        status = str(response.status_code)
                    except httpx2.TransportError as exc:
                        status = f"transport:{type(exc).__name__}"
                    elapsed = time.monotonic() - started
                    with lock:
                        statuses[f"{op} {status}"] += 1
                        slowest.append((elapsed, f"{op} {m.name}"))
                        slowest.sort(reverse=True)
                        del slowest[5:]
                        if status == "500" or (status.isdigit() and int(status) not in documented[op]):
                            problems.append(f"{op} {m.name}: {status}")
                        if elapsed > limit:
                            problems.append(f"{op} {m.name}: {elapsed:.1f} s, past the deadline")

            started = time.monotonic()
            with MemoryWatch(server.proc.pid) as memory, ThreadPoolExecutor(args.clients) as pool:
                mutants = enumerate(corpus(signed, args.count, args.seed, storm_scale=args.storm_scale))
                sent = 0
                while batch := list(islice(mutants, 100)):  # bounded: the corpus is made as it is sent
                    list(pool.map(send, batch))
                    sent += len(batch)
                    if sent % 1000 == 0:
                        print(f"  {sent} sent, {time.monotonic() - started:.0f} s", flush=True)
            wall = time.monotonic() - started
            alive = server.proc.poll() is None and _healthy(http)
            http.close()

    total = sum(statuses.values())
    print(
        f"\n{total} requests ({args.count} mutants + storms; every {SIGN_SHARE}th also signed), {wall:.0f} s"
    )
    for key, count in sorted(statuses.items()):
        print(f"  {key}: {count}")
    print(f"HTTP 500: {sum(c for k, c in statuses.items() if k.endswith(' 500'))}")
    print(f"undocumented statuses: {sum(1 for p in problems if p.endswith(tuple('0123456789')))}")
    print(f"past the deadline ({limit:g} s): {sum(1 for p in problems if 'deadline' in p)}")
    print(f"transport errors: {sum(c for k, c in statuses.items() if 'transport' in k)}")
    print(f"server crashed or stopped answering: {'no' if alive else 'YES'}")
    print(f"peak RSS: server {memory.peak_main / 1024:.0f} MiB, largest descendant", end=" ")
    print(f"{memory.peak_child / 1024:.0f} MiB, all together {memory.peak_total / 1024:.0f} MiB")
    print("slowest answers: " + ", ".join(f"{name} {s:.2f} s" for s, name in slowest))
    for line in problems[:30]:
        print("  PROBLEM " + line)
    return 0 if alive and not problems else 1


def _documented(http: httpx2.Client) -> dict[str, set[int]]:
    paths = http.get("/openapi.json").json()["paths"]
    return {op: {int(s) for s in paths[f"/v1/{op}"]["post"]["responses"]} for op in ("verify", "sign")}


def _healthy(http: httpx2.Client) -> bool:
    try:
        return http.get("/healthz", timeout=10).status_code == 200
    except httpx2.TransportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
