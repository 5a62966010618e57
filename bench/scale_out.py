"""Scale-out drill: `hallmark serve` processes sharing one PostgreSQL database and one key store behind a real
load balancer (HAProxy, `bash scripts/bench-deps.sh` installs it), on this machine
(`python -m bench.scale_out`).

1. Throughput: 1 MP JPEG signs through HAProxy with 1, 2 and 3 service processes (`--counts`), each for
   `--seconds`, by `--clients` concurrent clients; signs per second and the ratio to one process.
2. The drill: 3 processes under the same load; halfway, one is killed with SIGKILL (its whole process group:
   the service and its decode workers, as a container kill does). Every request carries an Idempotency-Key;
   a client whose request fails (connection error, 502/503 from the balancer, 409 while the same key is in
   flight) retries it with the same key until it gets an answer.

Printed, from the database afterwards: responses 200 whose manifest id has no ledger row (target 0), ledger
rows no 200 response names (each is a duplicate signature made for a retried key, target 0), requests that
failed for good (target 0), and `hallmark audit seal` + `hallmark audit verify` (target: intact). Exit 1
when a target is missed.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import sqlalchemy as sa
from PIL import Image

from app.store.db import make_engine
from app.store.tables import signatures
from tests.e2e.server import HALLMARK, free_port, hallmark_env
from tests.postgres import start_postgres

RETRY_SECONDS = 60.0  # a request still unanswered after this long counts as failed
READY_SECONDS = 60.0


def one_megapixel_jpeg() -> bytes:
    import numpy as np  # noqa: PLC0415 - only the bench needs a noisy picture

    rng = np.random.default_rng(7)
    pixels = (rng.normal(128, 40, (1000, 1000, 3))).clip(0, 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    port: int

    def kill(self) -> None:
        """SIGKILL the service's whole process group (the service and its decode workers)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def start_service(env: dict[str, str], log_dir: Path, *extra: str) -> Service:
    port = free_port()
    log = (log_dir / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(
        [str(HALLMARK), "serve", "--port", str(port), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # its own process group, so a kill takes its workers too
    )
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"a service exited with {proc.returncode}; see {log.name} in {log_dir}")
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return Service(proc, port)
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    sys.exit(f"a service was not ready within {READY_SECONDS:g} s; see {log_dir}")


def stop_service(service: Service) -> None:
    if service.proc.poll() is None:
        os.killpg(service.proc.pid, signal.SIGTERM)
        try:
            service.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(service.proc.pid, signal.SIGKILL)
            service.proc.wait(10)


HAPROXY_CONFIG = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch
frontend hallmark
    bind 127.0.0.1:{port}
    default_backend services
backend services
    balance leastconn
    option httpchk GET /readyz
{servers}
"""


@contextmanager
def haproxy(services: list[Service], work: Path) -> Iterator[str]:
    binary = shutil.which("haproxy")
    if binary is None:
        sys.exit("haproxy is not installed: run `bash scripts/bench-deps.sh`")
    port = free_port()
    servers = "\n".join(
        f"    server s{i} 127.0.0.1:{s.port} check inter 300 fall 2 rise 2" for i, s in enumerate(services)
    )
    config = work / f"haproxy-{port}.cfg"
    config.write_text(HAPROXY_CONFIG.format(port=port, servers=servers))
    proc = subprocess.Popen(
        [binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx2.TransportError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Outcome:
    manifests: dict[str, str] = field(default_factory=dict)  # idempotency key -> manifest id
    retries: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def sign_until_answered(client: httpx2.Client, url: str, token: str, image: bytes, out: Outcome) -> None:
    key = uuid.uuid4().hex
    give_up = time.monotonic() + RETRY_SECONDS
    attempt = 0
    while True:
        attempt += 1
        try:
            response = client.post(
                url + "/v1/sign",
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                files={"file": ("image.jpg", image, "image/jpeg")},
                data={"model_name": "drill", "model_version": "1"},
            )
            status = response.status_code
        except httpx2.TransportError as exc:
            status, response = 0, None
            reason = type(exc).__name__
        with out.lock:
            out.statuses[status] += 1
            if attempt > 1:
                out.retries += 1
        if status == 200 and response is not None:
            with out.lock:
                out.manifests[key] = response.headers["Hallmark-Manifest-Id"]
            return
        if status not in (0, 409, 429, 502, 503, 504) or time.monotonic() > give_up:
            with out.lock:
                out.failed[str(status) if status else reason] += 1
            return
        time.sleep(0.2)


def load(url: str, token: str, image: bytes, seconds: float, clients: int, kill: Service | None) -> Outcome:
    out = Outcome()
    stop = time.monotonic() + seconds

    def client_loop() -> None:
        with httpx2.Client(timeout=120) as client:
            while time.monotonic() < stop:
                sign_until_answered(client, url, token, image, out)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for t in threads:
        t.start()
    if kill is not None:
        time.sleep(seconds / 2)
        kill.kill()
        print(f"  killed the service on port {kill.port} (SIGKILL, process group) at {seconds / 2:g} s")
    for t in threads:
        t.join()
    return out


def signature_ids(db_url: str) -> set[str]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return {str(r[0]) for r in conn.execute(sa.select(signatures.c.manifest_id))}
    finally:
        engine.dispose()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HALLMARK), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load per phase")
    parser.add_argument("--clients", type=int, default=6, help="concurrent clients")
    parser.add_argument("--counts", default="1,2,3", help="service processes for the throughput phases")
    parser.add_argument("--isolation-workers", default="1", help="HALLMARK_ISOLATION_WORKERS per process")
    args = parser.parse_args()
    image = one_megapixel_jpeg()
    server = start_postgres()
    failures: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="hallmark-scale-") as tmp:
            work = Path(tmp)
            db_url = server.new_database()
            env = hallmark_env(
                work / "data",
                HALLMARK_DATABASE_URL=db_url,
                HALLMARK_ISOLATION_WORKERS=args.isolation_workers,
                HALLMARK_AUDIT_SEAL_INTERVAL_SECONDS="2",
            )
            init = cli(env, "keys", "init", "--dev")
            if init.returncode != 0:
                sys.exit(f"hallmark keys init failed: {init.stderr}")
            created = cli(env, "apikey", "create", "--name", "drill", "--scope", "sign")
            if created.returncode != 0:
                sys.exit(f"hallmark apikey create failed: {created.stderr}")
            token = created.stdout.strip().splitlines()[-1]
            rates: dict[int, float] = {}
            for n in [int(c) for c in args.counts.split(",")]:
                with ExitStack() as stack:
                    services = [start_service(env, work, "--dev") for _ in range(n)]
                    for s in services:
                        stack.callback(stop_service, s)
                    url = stack.enter_context(haproxy(services, work))
                    began = time.monotonic()
                    out = load(url, token, image, args.seconds, args.clients, None)
                    rates[n] = len(out.manifests) / (time.monotonic() - began)
                    done = len(out.manifests)
                    print(f"{n} process(es): {rates[n]:.1f} signs/s ({done} in {args.seconds:g} s), "
                          f"statuses {dict(out.statuses)}")  # fmt: skip
            for n, rate in rates.items():
                if n != 1 and 1 in rates:
                    print(f"  {n} processes / 1: {rate / rates[1]:.2f}x")

            print("drill: 3 processes, one killed halfway")
            before = signature_ids(db_url)
            with ExitStack() as stack:
                services = [start_service(env, work, "--dev") for _ in range(3)]
                for s in services:
                    stack.callback(stop_service, s)
                url = stack.enter_context(haproxy(services, work))
                out = load(url, token, image, args.seconds, args.clients, kill=services[0])
            rows = signature_ids(db_url) - before
            answered = set(out.manifests.values())
            lost = answered - rows
            extra = rows - answered
            print(f"  answered 200: {len(answered)}; retries: {out.retries}; statuses {dict(out.statuses)}")
            print(f"  200s without a ledger row: {len(lost)} (target 0)")
            print(f"  ledger rows no 200 names (duplicates for retried keys): {len(extra)} (target 0)")
            print(f"  failed for good: {sum(out.failed.values())} {dict(out.failed)} (target 0)")
            if lost:
                failures.append("200s without a ledger row")
            if extra:
                failures.append("duplicate signatures")
            if out.failed:
                failures.append("requests failed for good")
            seal = cli(env, "audit", "seal")
            verify = cli(env, "audit", "verify")
            print("  " + (seal.stdout.strip() or seal.stderr.strip()))
            print("  " + "\n  ".join((verify.stdout + verify.stderr).strip().splitlines()[-2:]))
            if seal.returncode != 0 or verify.returncode != 0:
                failures.append("audit verify not intact")
    finally:
        server.stop()
    if failures:
        print("MISSED: " + ", ".join(failures))
        sys.exit(1)
    print("all drill targets met")


if __name__ == "__main__":
    main()
