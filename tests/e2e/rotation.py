"""The rotation drill, shared by tests/e2e/test_rotation_drill.py (which asserts on it) and
bench/rotation_drill.py (which prints its numbers): a steady signing load against a running server while the
active key is rotated through the CLI. Each rotation waits for an event (the new key has signed), not a
guessed number of seconds."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.server import Server
from tests.waiting import wait_for

HALLMARK = str(Path(sys.executable).with_name("hallmark"))
SIGN_INTERVAL = 0.05  # at most about 20 signs a second
SIGNS_PER_KEY = 10  # outputs each newly activated key must sign before the next rotation
KEY_SWITCH_TIMEOUT_S = 120.0  # generous: a switch takes one keyring poll, and signing shares 2 loaded cores


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([HALLMARK, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise AssertionError(f"hallmark {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def multipart(jpeg: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        (b'Content-Disposition: form-data; name="model_name"', b"drill-model"),
        (b'Content-Disposition: form-data; name="model_version"', b"1"),
        (b'Content-Disposition: form-data; name="file"; filename="a.jpg"\r\nContent-Type: image/jpeg', jpeg),
    ]
    body = b"".join(
        b"--" + boundary.encode() + b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n" for head, data in parts
    )
    return body + b"--" + boundary.encode() + b"--\r\n", f"multipart/form-data; boundary={boundary}"


@dataclass(frozen=True)
class Result:
    status: int  # 0: the connection failed
    body: bytes
    manifest_id: str
    key_id: str  # Hallmark-Signing-Key-Id
    seconds: float  # request latency


class Signer(threading.Thread):
    """Signs the same JPEG every SIGN_INTERVAL until stopped; keeps every response."""

    def __init__(self, server: Server, api_key: str, jpeg: bytes):
        super().__init__(daemon=True)
        self.server = server
        self.api_key = api_key
        self.body, self.content_type = multipart(jpeg)
        self.stop = threading.Event()
        self.results: list[Result] = []

    def signed_by(self, key_id: str) -> int:
        return sum(1 for r in list(self.results) if r.status == 200 and r.key_id == key_id)

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": self.content_type}
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                conn.request("POST", "/v1/sign", body=self.body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.results.append(
                    Result(
                        response.status,
                        data,
                        response.getheader("Hallmark-Manifest-Id") or "",
                        response.getheader("Hallmark-Signing-Key-Id") or "",
                        time.monotonic() - started,
                    )
                )
            except OSError as exc:  # a dropped connection is a failed request too
                self.results.append(Result(0, str(exc).encode(), "", "", time.monotonic() - started))
                conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
            self.stop.wait(max(0.0, SIGN_INTERVAL - (time.monotonic() - started)))


@dataclass
class Drill:
    activated: list[str] = field(default_factory=list)  # key ids in activation order, the first included
    results: list[Result] = field(default_factory=list)
    ledger: dict[str, Any] = field(default_factory=dict)  # manifest id -> audit row
    keyring: dict[str, Any] = field(default_factory=dict)  # key id -> `keys list` entry
    # From running `keys activate` to the first output signed by the new key.
    switch_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0


def expect_signs(load: Signer, key_id: str, count: int) -> None:
    """Wait (bounded) until `key_id` has signed `count` outputs."""
    if not wait_for(lambda: load.signed_by(key_id) >= count, timeout=KEY_SWITCH_TIMEOUT_S):
        raise AssertionError(f"key {key_id} signed {load.signed_by(key_id)} outputs, not {count}")


def run_drill(server: Server, env: dict[str, str], api_key: str, jpeg: bytes, rotations: int) -> Drill:
    """Sign steadily; after SIGNS_PER_KEY outputs by the active key, activate a new one; `rotations` times."""
    drill = Drill()
    first = json.loads(cli(env, "keys", "list", "--json"))
    if [k["state"] for k in first] != ["active"]:
        raise AssertionError(f"the drill starts from one active key: {first}")
    drill.activated.append(first[0]["key_id"])
    load = Signer(server, api_key, jpeg)
    started = time.monotonic()
    load.start()
    try:
        expect_signs(load, drill.activated[-1], SIGNS_PER_KEY)
        for _ in range(rotations):
            new_id = cli(env, "keys", "generate", "--dev").strip().splitlines()[-1]
            activated_at = time.monotonic()  # the CLI's start-up counts: it is part of an operator's switch
            cli(env, "keys", "activate", new_id, "--yes")
            drill.activated.append(new_id)
            expect_signs(load, new_id, 1)
            drill.switch_seconds.append(time.monotonic() - activated_at)
            expect_signs(load, new_id, SIGNS_PER_KEY)
    finally:
        load.stop.set()
        load.join(timeout=30)
    drill.seconds = time.monotonic() - started
    drill.results = list(load.results)
    rows = json.loads(cli(env, "audit", "list", "--limit", "10000", "--json"))
    drill.ledger = {row["manifest_id"]: row for row in rows}
    drill.keyring = {k["key_id"]: k for k in json.loads(cli(env, "keys", "list", "--json"))}
    return drill
