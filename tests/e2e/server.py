"""A real `hallmark serve` process for end-to-end tests: free port, drained output, bounded waits."""

from __future__ import annotations

import os
import re
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


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one HTTP/1.1 response read from a raw socket (the
    tests that drip or cut request bodies cannot use an HTTP client)."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        assert got, f"connection closed before a response: {data!r}"
        data += got
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        got = sock.recv(65536)
        assert got, "connection closed in the middle of the response body"
        body += got
    return int(lines[0].split(" ")[1]), headers, body
