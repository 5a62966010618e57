"""End to end: `hallmark serve --dev` as a real process on a free port (what `make run` does), real HTTP.

Every wait is bounded and every process started here is killed in a `finally`, also when a test fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
HALLMARK = BIN / "hallmark"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 30.0
API_KEY_LINE = re.compile(r"^hm_[0-9a-f]{16}_\S+$")
SERVING_LINE = re.compile(r"^Serving on http://")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def hallmark_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLMARK_")}
    env.update(HALLMARK_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", COLUMNS="200", NO_COLOR="1", **extra)
    return env


class Server:
    """A `hallmark serve` process whose stdout is drained by a thread (so a full pipe never blocks it)."""

    def __init__(self, args: list[str], env: dict[str, str], log_dir: Path):
        if not HALLMARK.is_file():
            pytest.fail(f"console script not found at {HALLMARK}: install the project (make install)")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = log_dir / f"serve-{self.port}.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(
            [str(HALLMARK), "serve", *args, "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            out = "\n".join(self.lines)
        return f"stdout:\n{out}\nstderr:\n{self.stderr_path.read_text(errors='replace')}"

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float = START_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((ln for ln in self.lines if pattern.search(ln)), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.5))
        pytest.fail(f"no line matching {pattern.pattern!r} within {timeout}s (exit {self.proc.poll()})")

    def wait_until_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait for the 'Serving on' line, then poll /healthz and /readyz until both answer 200."""
        self.wait_for_line(SERVING_LINE, timeout)
        deadline = time.monotonic() + timeout
        for path in ("/healthz", "/readyz"):
            last: object = None
            while True:
                if self.proc.poll() is not None:
                    pytest.fail(f"server exited with {self.proc.returncode}\n{self.output()}")
                try:
                    response = httpx2.get(self.base_url + path, timeout=2.0)
                    last = (response.status_code, response.text)
                    if response.status_code == 200:
                        break
                except httpx2.TransportError as exc:
                    last = exc
                if time.monotonic() > deadline:
                    pytest.fail(f"{path} not 200 within {timeout}s: {last!r}\n{self.output()}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        self._reader.join(STOP_TIMEOUT_S)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


@contextmanager
def serve(data_dir: Path, log_dir: Path, *args: str, **env: str) -> Iterator[Server]:
    server = Server(list(args), hallmark_env(data_dir, **env), log_dir)
    try:
        yield server
    finally:
        server.stop()


def key_lines(server: Server) -> list[str]:
    with server._cond:
        return [ln for ln in server.lines if API_KEY_LINE.match(ln)]


def sign(server: Server, image: Path, token: str | None, **form: str) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = {"model_name": "e2e-diffusion", "model_version": "3", **form}
    with image.open("rb") as fh:
        return httpx2.post(
            server.base_url + "/v1/sign",
            headers=headers,
            data=data,
            files={"file": ("generated.jpg", fh, "image/jpeg")},
            timeout=HTTP_TIMEOUT_S,
        )


def verify(server: Server, content: bytes) -> httpx2.Response:
    return httpx2.post(
        server.base_url + "/v1/verify",
        files={"file": ("upload.jpg", content, "application/octet-stream")},
        timeout=HTTP_TIMEOUT_S,
    )


def audit(data_dir: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        [str(HALLMARK), "audit", "list", "--json"],
        capture_output=True,
        text=True,
        env=hallmark_env(data_dir),
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    entries: list[dict[str, object]] = json.loads(result.stdout)
    return entries


@pytest.fixture
def image(interop_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "generated.jpg"
    shutil.copyfile(interop_dir / "no_manifest.jpg", target)
    return target


@pytest.fixture
def empty_data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


# --- tests ---------------------------------------------------------------------------------------------


def test_dev_server_signs_and_verifies(empty_data_dir: Path, image: Path, tmp_path: Path) -> None:
    with serve(empty_data_dir, tmp_path / "logs", "--dev") as server:
        token = server.wait_for_line(API_KEY_LINE)
        server.wait_until_ready()
        assert len(key_lines(server)) == 1

        signed = sign(server, image, token)
        assert signed.status_code == 200, signed.text
        manifest_id = signed.headers["Hallmark-Manifest-Id"]
        assert manifest_id.startswith("urn:c2pa:")
        assert signed.headers["content-type"] == "image/jpeg"
        assert signed.content[:2] == b"\xff\xd8"
        assert signed.content != image.read_bytes()

        verified = verify(server, signed.content)
        assert verified.status_code == 200, verified.text
        report = verified.json()
        assert report["outcome"] == "trusted", report
        assert report["manifest_id"] == manifest_id
        assert report["development_trust"] is True
        assert report["signer"]["trust_profile"] == "hallmark-dev"
        assert report["ai"]["model_name"] == "e2e-diffusion"

        unauthenticated = sign(server, image, None)
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["content-type"].startswith("application/problem+json")
        problem = unauthenticated.json()
        assert problem["status"] == 401
        assert problem["type"]
        assert problem["title"]
        assert unauthenticated.headers.get("WWW-Authenticate", "").startswith("Bearer")

        wrong = sign(server, image, token[:-4] + "AAAA")
        assert wrong.status_code == 401
        assert wrong.headers["content-type"].startswith("application/problem+json")

        unsigned = verify(server, image.read_bytes())
        assert unsigned.status_code == 200
        assert unsigned.json()["outcome"] == "none"


def test_restart_reuses_keys_database_and_api_key(empty_data_dir: Path, image: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with serve(empty_data_dir, logs, "--dev") as first:
        token = first.wait_for_line(API_KEY_LINE)
        first.wait_until_ready()
        one = sign(first, image, token)
        assert one.status_code == 200, one.text
    key_files = {
        p: p.read_bytes()
        for p in sorted(empty_data_dir.glob("keys/*.pem")) + sorted(empty_data_dir.glob("trust/*"))
    }
    assert len(key_files) >= 3

    with serve(empty_data_dir, logs, "--dev") as second:
        second.wait_until_ready()
        assert key_lines(second) == [], f"a restart printed a new API key\n{second.output()}"
        assert "exist" in "\n".join(second.lines)  # "API keys exist already; ..."
        two = sign(second, image, token)
        assert two.status_code == 200, two.text
        verified = verify(second, two.content).json()
        assert verified["outcome"] == "trusted"

    assert {p: p.read_bytes() for p in key_files} == key_files, "a restart replaced the keys or trust"
    ids = {one.headers["Hallmark-Manifest-Id"], two.headers["Hallmark-Manifest-Id"]}
    assert len(ids) == 2
    entries = audit(empty_data_dir)
    recorded = {str(e["manifest_id"]): e for e in entries}
    assert ids <= recorded.keys(), entries
    key_id = token.split("_")[1]
    assert {recorded[i]["api_key_id"] for i in ids} == {key_id}


def test_production_refuses_the_dev_data_dir(empty_data_dir: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with serve(empty_data_dir, logs, "--dev") as dev:
        dev.wait_until_ready()

    for args in ((), ("--dev",)):
        with serve(empty_data_dir, logs, *args, HALLMARK_ENV="production") as prod:
            try:
                code = prod.proc.wait(START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"`serve {' '.join(args)}` in production did not refuse within {START_TIMEOUT_S}s"
                )
            prod._reader.join(STOP_TIMEOUT_S)
            output = prod.output()
            assert code != 0, output
            assert re.search(r"[Dd]evelopment (keys|trust|signing)", output), output
            assert "PRIVATE KEY" not in output
            assert key_lines(prod) == []
