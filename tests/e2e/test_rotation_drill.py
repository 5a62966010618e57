"""Rotation drill: a real two-worker server keeps signing at a steady rate while the active key is rotated
several times through the CLI. No request may fail, every output must verify trusted, and the certificate in
each output must be the one of the key its ledger row names."""

from __future__ import annotations

import http.client
import io
import itertools
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import signing
from tests.e2e.server import Server, hallmark_env, key_lines, serve

pytestmark = pytest.mark.e2e

ROTATIONS = 3
SECONDS_BETWEEN_ROTATIONS = 2.5
SIGN_INTERVAL = 0.05  # about 20 signs a second
HALLMARK = str(Path(sys.executable).with_name("hallmark"))


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([HALLMARK, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"hallmark {' '.join(args)} failed: {done.stderr}"
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


class Signer(threading.Thread):
    """Signs the same JPEG every SIGN_INTERVAL until stopped; keeps every response."""

    def __init__(self, server: Server, api_key: str, jpeg: bytes):
        super().__init__(daemon=True)
        self.server = server
        self.api_key = api_key
        self.body, self.content_type = multipart(jpeg)
        self.stop = threading.Event()
        self.results: list[tuple[int, bytes, str]] = []  # status, body, manifest id

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": self.content_type}
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                conn.request("POST", "/v1/sign", body=self.body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.results.append((response.status, data, response.getheader("Hallmark-Manifest-Id") or ""))
            except OSError as exc:  # a dropped connection is a failed request too
                self.results.append((0, str(exc).encode(), ""))
                conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
            self.stop.wait(max(0.0, SIGN_INTERVAL - (time.monotonic() - started)))


def test_rotation_under_load_loses_nothing(tmp_path: Path, interop_dir: Path) -> None:
    jpeg = (interop_dir / "no_manifest.jpg").read_bytes()
    data_dir = tmp_path / "var"
    env = hallmark_env(data_dir)
    poll = {"HALLMARK_KEYRING_POLL_SECONDS": "0.5"}
    with serve(data_dir, tmp_path / "logs", "--dev", "--workers", "2", **poll) as server:
        server.wait_until_ready()
        [api_key] = key_lines(server)
        first = json.loads(cli(env, "keys", "list", "--json"))
        assert [k["state"] for k in first] == ["active"]
        load = Signer(server, api_key, jpeg)
        load.start()
        activated = [first[0]["key_id"]]
        try:
            for _ in range(ROTATIONS):
                time.sleep(SECONDS_BETWEEN_ROTATIONS)
                new_id = cli(env, "keys", "generate", "--dev").strip().splitlines()[-1]
                cli(env, "keys", "activate", new_id, "--yes")
                activated.append(new_id)
            time.sleep(SECONDS_BETWEEN_ROTATIONS)
        finally:
            load.stop.set()
            load.join(timeout=30)
        ledger = {
            row["manifest_id"]: row
            for row in json.loads(cli(env, "audit", "list", "--limit", "10000", "--json"))
        }
        keyring = {k["key_id"]: k for k in json.loads(cli(env, "keys", "list", "--json"))}
        trust = signing.load_trust_dir(data_dir / "trust")

    failures = [(status, body[:200]) for status, body, _ in load.results if status != 200]
    assert not failures, f"{len(failures)} of {len(load.results)} requests failed: {failures[:3]}"
    assert len(load.results) >= 100, "the drill should sign steadily throughout"

    engine = signing.Engine(signing.EngineConfig(trust=trust))
    used: list[str] = []
    for _, body, manifest_id in load.results:
        report = signing.inspect_asset(engine, io.BytesIO(body))
        assert report.outcome is signing.Outcome.TRUSTED, report.summary
        assert report.manifest_id == manifest_id
        row = ledger[manifest_id]
        key = keyring[row["key_id"]]
        # The certificate inside the output is the one of the key the ledger names.
        assert row["certificate_sha256"] == key["certificate_sha256"]
        assert report.signer is not None
        assert f"CN={report.signer.common_name}" in key["subject"]
        used.append(row["key_id"])

    assert [k for k in activated if k in used] == activated, "every activated key should have signed"
    assert used[-1] == activated[-1]
    # Keys only move forward: once a newer key signs, an older one never signs again (per worker, the
    # switch happens once); allow the two workers to switch a poll interval apart.
    order = {k: i for i, k in enumerate(activated)}
    regressions = sum(1 for a, b in itertools.pairwise(used) if order[b] < order[a])
    assert regressions <= 2 * ROTATIONS, f"keys went backwards {regressions} times: {used}"
    assert all(keyring[k]["state"] == "retired" for k in activated[:-1])
    assert keyring[activated[-1]]["state"] == "active"
