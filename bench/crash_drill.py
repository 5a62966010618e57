"""Crash drill for Idempotency-Key (`.venv/bin/python -m bench.crash_drill`).

Starts the real service (`hallmark serve --dev --workers 2`, temporary SQLite data directory, or
HALLMARK_DATABASE_URL if set), and sends `--requests` sign requests, each with its own Idempotency-Key, from
`--clients` threads. Meanwhile a killer SIGKILLs the whole service (its process group: the supervisor, its
workers and their decode workers) at random moments and starts it again. A client retries the same
request (same key, same bytes) after a connection error, a 5xx or a 409 until it gets a 200; it also drops
`--lose` of its first 200s as if the answer had been lost, and retries those too (they must be replays).

Then it counts, from the database: ledger rows lost for a 200 (a 200's manifest id without its row),
ledger rows without a 200 (a signature no client got), keys answered with two different manifest ids, and
signature rows no Idempotency-Key owns (a second signature for a key); and runs `hallmark audit seal` and
`hallmark audit verify`. Exit 0 only when all four counts are 0 and the audit is intact."""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx2
import sqlalchemy as sa
from PIL import Image

BIN = Path(sys.executable).parent
HALLMARK = str(BIN / "hallmark")
FORM = {"model_name": "drill-diffusion", "model_version": "1.0"}


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 120, 200)).save(out, format="JPEG", quality=85)
    return out.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Service:
    def __init__(self, env: dict[str, str], port: int, workers: int, logs: Path):
        self.env, self.port, self.workers, self.logs = env, port, workers, logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"serve-{self.starts}.log").open("wb")
        args = [HALLMARK, "serve", "--dev", "--workers", str(self.workers), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            args, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"hallmark serve exited with {self.proc.returncode}; see {log.name}")
            try:
                if httpx2.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit("hallmark serve did not become ready within 60 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this drill started: server and children
            self.proc.wait()

    def api_key(self) -> str:
        made = subprocess.run(
            [HALLMARK, "apikey", "create", "--name", "drill", "--scope", "sign"],
            env=self.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return made.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=3.0, help="mean seconds between kills")
    parser.add_argument("--lease", type=float, default=10.0, help="HALLMARK_IDEMPOTENCY_LEASE_SECONDS")
    parser.add_argument(
        "--lose", type=float, default=0.1, help="share of 200s a client drops as if lost, and retries"
    )
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="hallmark-crash-") as tmp:
        data_dir = Path(tmp) / "var"
        env = {
            k: v
            for k, v in os.environ.items()  # noqa: TID251 - the child processes' environment
            if not k.startswith("HALLMARK_") or k == "HALLMARK_DATABASE_URL"
        }
        env.update(
            HALLMARK_DATA_DIR=str(data_dir),
            HALLMARK_IDEMPOTENCY_LEASE_SECONDS=str(args.lease),
            HALLMARK_AUDIT_SEAL_INTERVAL_SECONDS="2",
            PYTHONUNBUFFERED="1",
        )
        logs = Path(tmp) / "logs"
        logs.mkdir()
        service = Service(env, free_port(), args.workers, logs)
        service.start()
        token = service.api_key()
        data = jpeg_bytes()
        keys = [str(uuid.uuid4()) for _ in range(args.requests)]
        answers: dict[str, list[str]] = defaultdict(list)  # key -> manifest ids of its 200s
        attempts = {"total": 0, "transport": 0, "5xx": 0, "409": 0, "other": 0, "replayed": 0, "dropped": 0}
        lock = threading.Lock()
        todo = list(enumerate(keys))
        done = threading.Event()
        kills: list[float] = []

        def client() -> None:
            with httpx2.Client(timeout=60) as http:
                while True:
                    with lock:
                        if not todo:
                            return
                        i, key = todo.pop()
                    while True:
                        with lock:
                            attempts["total"] += 1
                        try:
                            r = http.post(
                                service.url + "/v1/sign",
                                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                                data={**FORM, "title": f"drill {i}"},
                                files={"file": ("in.jpg", data, "image/jpeg")},
                            )
                        except httpx2.TransportError:
                            with lock:
                                attempts["transport"] += 1
                            time.sleep(0.2)
                            continue
                        if r.status_code == 200:
                            with lock:
                                answers[key].append(r.headers["Hallmark-Manifest-Id"])
                                if r.headers.get("Hallmark-Idempotent-Replay") == "true":
                                    attempts["replayed"] += 1
                                lost = len(answers[key]) == 1 and rng.random() < args.lose
                                attempts["dropped"] += lost
                            if not lost:
                                break
                            continue  # as if the answer never arrived: the retry must replay it
                        bucket = "409" if r.status_code == 409 else "5xx" if r.status_code >= 500 else "other"
                        with lock:
                            attempts[bucket] += 1
                        if bucket == "other":
                            print(f"unexpected {r.status_code}: {r.text[:200]}", file=sys.stderr)
                            break
                        time.sleep(min(float(r.headers.get("Retry-After", "0.2")), 1.0))

        def killer() -> None:
            while not done.wait(rng.expovariate(1 / args.kill_every)):
                service.kill()
                kills.append(time.monotonic())
                if done.is_set():
                    return
                service.start()

        started = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        kill_thread = threading.Thread(target=killer)
        kill_thread.start()
        for t in threads:
            t.join()
        done.set()
        kill_thread.join()
        elapsed = time.monotonic() - started
        service.kill()  # the end of the drill; `audit seal` below links every row
        url = env.get("HALLMARK_DATABASE_URL") or f"sqlite:///{data_dir / 'hallmark.db'}"
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            rows = {
                r.manifest_id: r.id for r in conn.execute(sa.text("SELECT id, manifest_id FROM signatures"))
            }
            owned = {
                r.signature_id
                for r in conn.execute(
                    sa.text("SELECT signature_id FROM idempotency_keys WHERE state = 'done'")
                )
            }
        answered = {m for ids in answers.values() for m in ids}
        lost = len(answered - rows.keys())
        unanswered = len(rows.keys() - answered)
        split = sum(1 for ids in answers.values() if len(set(ids)) > 1)
        unowned = len(set(rows.values()) - owned)
        seal = subprocess.run(
            [HALLMARK, "audit", "seal"], env=env, capture_output=True, text=True, check=False
        )
        verify = subprocess.run(
            [HALLMARK, "audit", "verify"], env=env, capture_output=True, text=True, check=False
        )
        print(f"requests {args.requests} (keys), clients {args.clients}, workers {args.workers}, "
              f"service starts {service.starts} (SIGKILLs {len(kills)}), {elapsed:.1f} s")  # fmt: skip
        print(f"HTTP attempts {attempts['total']}: connection errors {attempts['transport']}, 5xx "
              f"{attempts['5xx']}, 409 {attempts['409']}, other {attempts['other']}; 200s dropped by "
              f"the client as lost {attempts['dropped']}, 200s that were replays "
              f"{attempts['replayed']}")  # fmt: skip
        print(f"keys answered 200: {len(answers)}; ledger rows: {len(rows)}")
        print(f"rows lost for a 200: {lost}")
        print(f"rows without a 200: {unanswered}")
        print(f"keys answered with two manifest ids: {split}")
        print(f"signature rows no Idempotency-Key owns (duplicates): {unowned}")
        print(f"audit seal: exit {seal.returncode}; audit verify: exit {verify.returncode}")
        print(verify.stdout.strip())
        ok = (lost, unanswered, split, unowned, verify.returncode) == (0, 0, 0, 0, 0)
        ok = ok and len(answers) == args.requests and attempts["other"] == 0
        ok = ok and attempts["replayed"] >= attempts["dropped"]  # every dropped answer came back replayed
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
